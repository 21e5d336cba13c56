// charlm: a character-level GPT (nn::GPT over bytes), optionally with ContextPool in
// every block (Huang et al., ICML 2022), trained on enwik8, text8 or any text file.
//
//   charlm                                     train on the default corpus (the license texts
//                                              in /usr/share/common-licenses)
//   charlm --data enwik8 --steps 20000         train on enwik8 (standard 90M/5M/5M split)
//   charlm --context-pool --layers 2           ... with a causal ContextPool in every block
//   charlm --resume                            continue from the checkpoint in --checkpoint-dir
//   charlm --device cuda                       train (and sample) on the first GPU
//   charlm --generate --prompt "The "          only sample from the checkpoint
//   charlm --visualize pool.html               colour a text by the pool's learned support sizes
//   charlm --demo                              vanilla vs ContextPool with fewer layers (make demo)
//
// It prints the parameter count and FLOPs per token (flops.cpp), the training loss and the
// validation bits per character as it goes (evaluate.h), and a generated sample at the end.
// `charlm --help` lists every flag with its default; README.md walks through them.
#include <omp.h>

#include <cstdio>
#include <string>

#include <kiln/core/error.h>
#include <kiln/core/random.h>
#include <kiln/cuda/device.h>

#include "../common/device.h"
#include "../common/flags.h"
#include "corpus.h"
#include "demo.h"
#include "model_file.h"
#include "options.h"
#include "sampling.h"
#include "train.h"
#include "visualize.h"

namespace {

using charlm::Settings;
using kiln::examples::Flags;

void add_flags(Flags& flags, Settings& s) {
  flags.section("data");
  flags.add("--data", s.train.data, "a text file: enwik8, text8 (unpacked) or any text; split 90/5/5 %")
      .placeholder("PATH");

  flags.section("model");
  flags.add("--layers", s.model.layers, "transformer blocks");
  flags.add("--d-model", s.model.d_model, "width of the residual stream (a multiple of --heads)");
  flags.add("--heads", s.model.heads, "attention heads");
  flags.add("--seq-len", s.model.seq_len, "context: characters per window, and the model's positions");
  flags.add("--dropout", s.model.dropout, "dropout on embeddings, attention probabilities and sub-layer outputs");

  flags.section("ContextPool (causal in a language model)");
  flags.add("--context-pool", s.model.context_pool, "add a ContextPool sub-layer to every block");
  flags.add("--pool-mode", s.model.pool_mode, "what is learned (adaptive: the paper's module; the rest: ablations)",
            {"adaptive", "fixed_size", "weights_only", "size_only", "uniform"});
  flags.add("--pool-s-min", s.model.pool_s_min, "smallest learned support size, in characters");
  flags.add("--pool-s-max", s.model.pool_s_max, "largest learned support size, in characters");
  flags.add("--pool-placement", s.model.pool_placement, "where each block pools", {"after_attention", "after_block"});

  flags.section("training");
  flags.add("--batch", s.train.batch, "windows per step");
  flags.add("--steps", s.train.steps, "optimizer steps (AdamW)");
  flags.add("--lr", s.train.lr, "peak learning rate");
  flags.add("--schedule", s.train.schedule, "learning-rate schedule", {"cosine", "constant"});
  flags.add("--warmup", s.train.warmup, "linear warmup steps of the cosine schedule");
  flags.add("--min-lr", s.train.min_lr, "learning rate at the end of the cosine");
  flags.add("--weight-decay", s.train.weight_decay, "AdamW weight decay (matrices only)");
  flags.add("--clip", s.train.clip, "clip the global gradient norm to this; 0 = off");
  flags.add("--seed", s.train.seed, "seed of the weights, dropout, training windows and sampling");
  flags.add("--eval-interval", s.train.eval_interval, "steps between validation evals; 0 = only at the end");
  flags.add("--val-windows", s.train.val_windows, "validation windows (of --seq-len characters) per eval");
  flags.add("--checkpoint-dir", s.train.checkpoint_dir, "checkpoints and the model's settings go here; \"\" = none")
      .placeholder("DIR");
  flags.add("--checkpoint-interval", s.train.checkpoint_interval, "steps between checkpoints (and at the end); 0 = at the end");
  flags.add("--resume", s.train.resume, "continue from the checkpoint in --checkpoint-dir");
  flags.add("--progress", s.train.progress, "progress display", {"auto", "bar", "lines", "none"});

  flags.section("sampling (after training, and --generate)");
  flags.add("--generate", s.run.generate, "only sample from the checkpoint in --checkpoint-dir");
  flags.add("--prompt", s.sample.prompt, "text the sample continues").placeholder("TEXT");
  flags.add("--length", s.sample.length, "characters to generate");
  flags.add("--temperature", s.sample.temperature, "softmax temperature: < 1 sharper, > 1 more random");
  flags.add("--top-k", s.sample.top_k, "sample among the k likeliest characters; 0 = all");

  flags.section("seeing ContextPool");
  flags.add("--visualize", s.run.visualize,
            "write an HTML page of the learned sizes and weights (from the checkpoint, on the CPU)")
      .placeholder("OUT.html");
  flags.add("--text", s.run.text, "text for --visualize; empty = the start of the validation split").placeholder("TEXT");

  flags.section("demo");
  flags.add("--demo", s.run.demo, "train a vanilla model and a ContextPool model with fewer layers, compare them");
  flags.add("--demo-pool-layers", s.run.demo_pool_layers, "layers of the demo's ContextPool model");

  flags.section("machine");
  flags.add("--device", s.run.device, kiln::examples::kDeviceHelp, {"cpu", "cuda"});
  flags.add("--bf16", s.run.bf16, kiln::examples::kBf16Help);
  flags.add("--threads", s.run.threads, "OpenMP threads; 0 = OMP_NUM_THREADS or every core");
}

// Mistakes found by looking at the values together; each exits with code 2.
void check_settings(const Flags& flags, const Settings& s) {
  const charlm::ModelSettings& m = s.model;
  const charlm::TrainSettings& t = s.train;
  auto require = [&](bool ok, const std::string& message) {
    if (!ok) flags.fail(message);
  };
  require(m.layers >= 1 && m.d_model >= 1 && m.heads >= 1 && m.seq_len >= 1,
          "--layers, --d-model, --heads and --seq-len must be >= 1");
  require(m.d_model % m.heads == 0,
          "--d-model " + std::to_string(m.d_model) + " is not a multiple of --heads " + std::to_string(m.heads));
  require(m.dropout >= 0 && m.dropout < 1, "--dropout must be in [0, 1)");
  require(m.pool_s_min > 0 && m.pool_s_min < m.pool_s_max, "need 0 < --pool-s-min < --pool-s-max");
  require(t.batch >= 1 && t.steps >= 1, "--batch and --steps must be >= 1");
  require(t.lr > 0 && t.min_lr >= 0 && t.min_lr <= t.lr, "need --lr > 0 and 0 <= --min-lr <= --lr");
  require(t.warmup >= 0 && t.weight_decay >= 0 && t.clip >= 0, "--warmup, --weight-decay and --clip must be >= 0");
  require(t.eval_interval >= 0 && t.checkpoint_interval >= 0, "--eval-interval and --checkpoint-interval must be >= 0");
  require(t.val_windows >= 1, "--val-windows must be >= 1");
  require(s.sample.length >= 0 && s.sample.top_k >= 0, "--length and --top-k must be >= 0");
  require(s.sample.temperature > 0, "--temperature must be > 0");
  require(s.run.threads >= 0, "--threads must be >= 0");
  require(s.run.demo_pool_layers >= 1, "--demo-pool-layers must be >= 1");
  const int modes = int{s.run.generate} + int{!s.run.visualize.empty()} + int{s.run.demo};
  require(modes <= 1, "--generate, --visualize and --demo are separate modes: give one");
  require(!(t.resume && modes > 0), "--resume continues training; it does not combine with another mode");
  require(!(t.resume || s.run.generate || !s.run.visualize.empty()) || !t.checkpoint_dir.empty(),
          "--resume, --generate and --visualize read the checkpoint: they need --checkpoint-dir");
}

// The settings saved with the checkpoint. A model flag given on the command line must
// agree with them: the network cannot change shape under a checkpoint.
charlm::ModelSettings checkpoint_model_settings(const Flags& flags, const charlm::ModelSettings& from_flags,
                                                const std::string& checkpoint_dir) {
  const charlm::ModelSettings saved = charlm::load_model_settings(checkpoint_dir);
  const auto wanted = charlm::to_key_values(from_flags), stored = charlm::to_key_values(saved);
  for (size_t i = 0; i < wanted.size(); ++i) {
    const auto& [key, value] = wanted[i];
    if (flags.given("--" + key) && value != stored[i].second)
      flags.fail("--" + key + " " + value + " differs from the checkpoint's model (" + key + " = " +
                 stored[i].second + " in " + charlm::config_path(checkpoint_dir) + ")");
  }
  return saved;
}

void print_sample(const std::string& title, const std::string& text) {
  std::printf("---- %s ----\n%s\n----\n", title.c_str(), text.c_str());
  std::fflush(stdout);
}

std::string sample_title(const charlm::SampleSettings& sample) {
  return kiln::detail::str("sample, temperature ", sample.temperature, ", top-k ",
                           sample.top_k > 0 ? std::to_string(sample.top_k) : std::string("all"));
}

int generate_only(const Settings& s) {
  auto model = charlm::load_trained_model(s.train.checkpoint_dir);
  model->to(kiln::examples::select_device(s.run.device));
  std::printf("charlm: %s\ncharlm: %s\n", charlm::describe(s.model).c_str(),
              charlm::describe_cost(model->num_parameters(), charlm::flops_per_token(*model)).c_str());
  kiln::manual_seed(s.train.seed);
  print_sample(sample_title(s.sample), charlm::generate(*model, s.sample));
  return 0;
}

int visualize(const Settings& s) {
  auto model = charlm::load_trained_model(s.train.checkpoint_dir);
  const std::string text = s.run.text.empty()
                               ? charlm::validation_excerpt(charlm::load_corpus(s.train.data), 4 * s.model.seq_len)
                               : s.run.text;
  charlm::write_pool_page(*model, s.model, text, s.run.visualize);
  std::printf("charlm: wrote %s (%zu characters, %lld layers)\n", s.run.visualize.c_str(), text.size(),
              static_cast<long long>(s.model.layers));
  return 0;
}

int train_and_sample(const Settings& s) {
  const kiln::nn::data::ByteCorpus corpus = charlm::load_corpus(s.train.data);
  charlm::TrainOutcome outcome = charlm::train_model(s, corpus, "charlm");
  kiln::manual_seed(s.train.seed);
  print_sample(sample_title(s.sample), charlm::generate(*outcome.model, s.sample));
  return 0;
}

int run(const Flags& flags, Settings s) {
  const kiln::Device device = kiln::examples::select_device(s.run.device);  // fails early without a GPU
  // Everything below, training and evaluation, runs its matrix products and attention in bf16 with --bf16.
  const kiln::AutocastGuard mixed_precision(kiln::examples::use_bf16(s.run.bf16, device));
  if (device.is_cuda()) std::printf("charlm: on %s\n", kiln::cuda::device_name(device.index).c_str());
  if (s.run.threads > 0) omp_set_num_threads(static_cast<int>(s.run.threads));
  if (s.run.demo) return charlm::run_demo(flags, s);
  if (s.train.resume || s.run.generate || !s.run.visualize.empty())
    s.model = checkpoint_model_settings(flags, s.model, s.train.checkpoint_dir);
  if (s.run.generate) return generate_only(s);
  if (!s.run.visualize.empty()) return visualize(s);
  return train_and_sample(s);
}

}  // namespace

int main(int argc, char** argv) {
  Settings settings;
  Flags flags("charlm",
              "Trains a character-level GPT (optionally with ContextPool), reports validation bits per character,\n"
              "and samples text. Modes: train (default), --generate, --visualize OUT.html, --demo.");
  add_flags(flags, settings);
  flags.parse(argc, argv);
  check_settings(flags, settings);
  try {
    return run(flags, settings);
  } catch (const kiln::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "charlm: %s\n", e.what());
    return 1;
  }
}
