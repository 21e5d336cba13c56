// One GPT training step (forward, cross-entropy, backward, AdamW), timed. Its PyTorch twin,
// bench/torch_train_step.py, builds the same model layer for layer and takes the same
// flags; bench/compare.sh runs both and prints the ratio.
//
//   bench_train_step [--vocab 256] [--d 256] [--layers 4] [--heads 4] [--seq 256] [--batch 16]
//                    [--threads 2] [--steps 10] [--warmup 3] [--context-pool]
//
// The model is nn::GPT (pre-LN blocks, GELU-tanh MLP x4, learned positions, the head tied
// to the token embedding, dropout 0) on random tokens. After the warm-up steps it times
// `steps` steps and prints one line from their median:
//
//   RESULT step_ms=.. tokens_per_s=.. peak_rss_mb=.. impl=kiln vocab=.. d=.. ...
//
// peak_rss_mb is the process's high-water mark (getrusage), warm-up included; base_rss_mb
// the mark before the model was built.
// With KILN_PROFILE=1 the per-op table of the timed steps goes to stderr at exit.
#include <kiln/core/profiler.h>
#include <kiln/kiln.h>
#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

using namespace kiln;

namespace {

struct Flags {
  int64_t vocab = 256, d = 256, layers = 4, heads = 4, seq = 256, batch = 16;
  int64_t threads = 2, steps = 10, warmup = 3;
  bool context_pool = false;
};

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr,
               "bench_train_step: %s\nusage: bench_train_step [--vocab N] [--d N] [--layers N] [--heads N] "
               "[--seq N] [--batch N] [--threads N] [--steps N] [--warmup N] [--context-pool]\n",
               message.c_str());
  std::exit(2);
}

int64_t positive_int(const std::string& flag, const char* text) {
  char* end = nullptr;
  const long long v = std::strtoll(text, &end, 10);
  if (*text == '\0' || *end != '\0' || v <= 0) usage_error(flag + " needs a positive integer, got '" + text + "'");
  return v;
}

Flags parse_flags(int argc, char** argv) {
  Flags f;
  const std::map<std::string, int64_t*> values = {
      {"--vocab", &f.vocab},     {"--d", &f.d},         {"--layers", &f.layers}, {"--heads", &f.heads},
      {"--seq", &f.seq},         {"--batch", &f.batch}, {"--threads", &f.threads}, {"--steps", &f.steps},
      {"--warmup", &f.warmup}};
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--context-pool") {
      f.context_pool = true;
      continue;
    }
    const auto value = values.find(flag);
    if (value == values.end()) usage_error("unknown flag '" + flag + "'");
    if (i + 1 >= argc) usage_error(flag + " needs a value");
    *value->second = positive_int(flag, argv[++i]);
  }
  if (f.d % f.heads != 0) usage_error("--d must be a multiple of --heads");
  return f;
}

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports kilobytes
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// The model, its optimizer and one fixed batch: everything a step touches.
struct GptTraining {
  std::shared_ptr<nn::GPT> model;
  nn::optim::AdamW optimizer;
  Tensor idx, targets;
  int64_t vocab;

  GptTraining(const nn::GPTConfig& config, int64_t batch)
      : model(std::make_shared<nn::GPT>(config)),
        optimizer(model->parameters(), {.lr = 1e-4}),
        idx(randint(0, config.vocab_size, {batch, config.block_size})),
        targets(randint(0, config.vocab_size, {batch, config.block_size})),
        vocab(config.vocab_size) {}

  // One training step; returns its loss. The optimizer's two phases get profiler rows
  // of their own (they run outside the autograd graph).
  double step() {
    {
      profiler::Scope scope("zero_grad", profiler::Pass::other);
      optimizer.zero_grad();
    }
    const Tensor logits = model->forward(idx);
    const Tensor loss = cross_entropy(logits.view({-1, vocab}), targets.view({-1}));
    loss.backward();
    {
      profiler::Scope scope("AdamW.step", profiler::Pass::other);
      optimizer.step();
    }
    return loss.item();
  }
};

nn::GPTConfig model_config(const Flags& f) {
  nn::GPTConfig c{.vocab_size = f.vocab, .block_size = f.seq, .n_layer = f.layers, .n_head = f.heads,
                  .d_model = f.d, .dropout = 0.0};
  if (f.context_pool) c.context_pool = nn::ContextPoolModuleOptions{};  // causal: GPT forces it
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  const Flags f = parse_flags(argc, argv);
  omp_set_num_threads(static_cast<int>(f.threads));
  manual_seed(0);
  const double base_rss_mb = peak_rss_mb();
  GptTraining training(model_config(f), f.batch);
  std::fprintf(stderr, "# kiln train_step: GPT vocab=%ld d=%ld layers=%ld heads=%ld seq=%ld batch=%ld, %.2fM params, "
                       "%ld threads%s\n",
               f.vocab, f.d, f.layers, f.heads, f.seq, f.batch, training.model->num_parameters() * 1e-6, f.threads,
               f.context_pool ? ", ContextPool on every block" : "");

  double first_loss = 0, last_loss = 0;
  for (int64_t i = 0; i < f.warmup; ++i) {
    const double loss = training.step();
    if (i == 0) first_loss = loss;
  }
  profiler::reset();  // the profile covers the timed steps only
  std::vector<double> seconds;
  for (int64_t i = 0; i < f.steps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    last_loss = training.step();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  const double step_s = median(seconds);
  std::fprintf(stderr, "# loss %.4f (first warm-up step) -> %.4f (last step); steps %.0f..%.0f ms\n", first_loss,
               last_loss, *std::min_element(seconds.begin(), seconds.end()) * 1e3,
               *std::max_element(seconds.begin(), seconds.end()) * 1e3);
  std::printf("RESULT step_ms=%.1f tokens_per_s=%.0f peak_rss_mb=%.0f impl=kiln vocab=%ld d=%ld layers=%ld heads=%ld "
              "seq=%ld batch=%ld threads=%ld context_pool=%d steps=%ld base_rss_mb=%.0f\n",
              step_s * 1e3, static_cast<double>(f.batch * f.seq) / step_s, peak_rss_mb(), f.vocab, f.d, f.layers,
              f.heads, f.seq, f.batch, f.threads, f.context_pool ? 1 : 0, f.steps, base_rss_mb);
}
