#include "demo.h"

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <kiln/core/random.h>

#include "corpus.h"
#include "sampling.h"
#include "train.h"

namespace charlm {

namespace {

// The demo's sizes, chosen to fit ~3 minutes on 2 cores (README.md has the measurements).
// Both models share everything but depth and the pool.
void apply_demo_sizes(const kiln::examples::Flags& flags, Settings& s) {
  auto set = [&](const char* flag, auto& field, auto value) {
    if (!flags.given(flag)) field = value;
  };
  set("--layers", s.model.layers, int64_t{4});
  set("--d-model", s.model.d_model, int64_t{128});
  set("--heads", s.model.heads, int64_t{4});
  set("--seq-len", s.model.seq_len, int64_t{128});
  set("--batch", s.train.batch, int64_t{16});
  set("--steps", s.train.steps, int64_t{1000});
  set("--lr", s.train.lr, 3e-3);
  set("--warmup", s.train.warmup, int64_t{30});
  set("--min-lr", s.train.min_lr, 3e-4);
  set("--eval-interval", s.train.eval_interval, int64_t{250});
  set("--val-windows", s.train.val_windows, int64_t{128});
  set("--checkpoint-interval", s.train.checkpoint_interval, int64_t{0});
  set("--length", s.sample.length, int64_t{240});
  if (!flags.given("--checkpoint-dir")) s.train.checkpoint_dir.clear();
}

struct Contender {
  std::string name;
  Settings settings;
  TrainOutcome outcome;
  std::string sample;
};

Contender make_contender(const std::string& name, Settings settings, bool context_pool, int64_t layers) {
  settings.model.context_pool = context_pool;
  settings.model.layers = layers;
  if (!settings.train.checkpoint_dir.empty())
    settings.train.checkpoint_dir = (std::filesystem::path(settings.train.checkpoint_dir) / name).string();
  return {.name = name, .settings = settings, .outcome = {}, .sample = {}};
}

std::string format(const char* pattern, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, pattern, value);
  return buffer;
}

void print_row(const std::string& label, const std::string& a, const std::string& b) {
  std::printf("  %-22s %14s %14s\n", label.c_str(), a.c_str(), b.c_str());
}

void print_table(const Contender& a, const Contender& b) {
  std::printf("\n== charlm demo: %s vs %s ==\n", a.name.c_str(), b.name.c_str());
  print_row("", a.name, b.name);
  print_row("layers", std::to_string(a.settings.model.layers), std::to_string(b.settings.model.layers));
  print_row("parameters", format_count(static_cast<double>(a.outcome.parameters)),
            format_count(static_cast<double>(b.outcome.parameters)));
  print_row("FLOPs/token (train)", format_count(a.outcome.flops.training), format_count(b.outcome.flops.training));
  print_row("FLOPs/token (forward)", format_count(a.outcome.flops.forward), format_count(b.outcome.flops.forward));
  print_row("val bpc", format("%.3f", a.outcome.validation.bpc), format("%.3f", b.outcome.validation.bpc));
  print_row("wall time (s)", format("%.1f", a.outcome.seconds), format("%.1f", b.outcome.seconds));
  std::printf("  (val bpc: mean over the same %lld validation windows of %lld characters; lower is better)\n",
              static_cast<long long>(a.outcome.validation.windows), static_cast<long long>(a.settings.model.seq_len));
  std::printf("%s: %.2fx the training FLOPs per token and %.2fx the parameters of %s; val bpc %+.3f\n",
              b.name.c_str(), b.outcome.flops.training / a.outcome.flops.training,
              static_cast<double>(b.outcome.parameters) / static_cast<double>(a.outcome.parameters), a.name.c_str(),
              b.outcome.validation.bpc - a.outcome.validation.bpc);
}

}  // namespace

int run_demo(const kiln::examples::Flags& flags, Settings settings) {
  apply_demo_sizes(flags, settings);
  const kiln::nn::data::ByteCorpus corpus = load_corpus(settings.train.data);
  std::vector<Contender> contenders = {
      make_contender("vanilla", settings, false, settings.model.layers),
      make_contender("context_pool", settings, true, settings.run.demo_pool_layers)};

  std::printf("charlm demo: two char-level GPTs, %lld steps of %lld x %lld characters each, on '%s'\n",
              static_cast<long long>(settings.train.steps), static_cast<long long>(settings.train.batch),
              static_cast<long long>(settings.model.seq_len), corpus.name().c_str());
  for (size_t i = 0; i < contenders.size(); ++i) {
    Contender& c = contenders[i];
    std::printf("\n== [%zu/%zu] %s ==\n", i + 1, contenders.size(), c.name.c_str());
    std::fflush(stdout);
    c.outcome = train_model(c.settings, corpus, "[" + c.name + "]");
    kiln::manual_seed(c.settings.train.seed);
    c.sample = generate(*c.outcome.model, c.settings.sample);
  }

  print_table(contenders[0], contenders[1]);
  for (const Contender& c : contenders)
    std::printf("\n---- %s sample (temperature %g) ----\n%s\n", c.name.c_str(), c.settings.sample.temperature,
                c.sample.c_str());
  std::printf("----\n");
  if (!settings.train.checkpoint_dir.empty())
    std::printf("\nModels saved in %s/{vanilla,context_pool}. See what the pools learned:\n"
                "  charlm --visualize pool.html --checkpoint-dir %s/context_pool\n",
                settings.train.checkpoint_dir.c_str(), settings.train.checkpoint_dir.c_str());
  std::fflush(stdout);
  return 0;
}

}  // namespace charlm
