// The GPT training step the benchmarks time (bench_train_step, bench_cpu_allocator):
// nn::GPT (pre-LN blocks, GELU-tanh MLP x4, learned positions, the head tied to the token
// embedding, dropout 0) on one fixed batch of random tokens, cross-entropy, backward,
// AdamW, on the CPU or a GPU; and the flags that size it, which bench/torch_train_step.py
// takes too.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>

#include <kiln/core/profiler.h>
#include <kiln/kiln.h>

namespace kiln::bench {

struct GptStepFlags {
  int64_t vocab = 256, d = 256, layers = 4, heads = 4, seq = 256, batch = 16;
  int64_t threads = 2, steps = 10, warmup = 3;
  bool context_pool = false;
  std::string device = "cpu";  // "cpu" or "cuda" (the first GPU)
  bool bf16 = false;           // bf16 autocast of the matrix products (GPU only)
};

[[noreturn]] inline void usage_error(const char* program, const std::string& message) {
  std::fprintf(stderr,
               "%s: %s\nusage: %s [--vocab N] [--d N] [--layers N] [--heads N] [--seq N] [--batch N] "
               "[--threads N] [--steps N] [--warmup N] [--context-pool] [--device cpu|cuda] [--bf16]\n",
               program, message.c_str(), program);
  std::exit(2);
}

inline int64_t positive_int(const char* program, const std::string& flag, const char* text) {
  char* end = nullptr;
  const long long v = std::strtoll(text, &end, 10);
  if (*text == '\0' || *end != '\0' || v <= 0)
    usage_error(program, flag + " needs a positive integer, got '" + text + "'");
  return v;
}

// Parses argv over `defaults` (each program picks its own step counts); exits with a
// usage line on anything it does not understand.
inline GptStepFlags parse_gpt_step_flags(int argc, char** argv, const char* program, GptStepFlags defaults = {}) {
  GptStepFlags f = defaults;
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
    if (flag == "--bf16") {
      f.bf16 = true;
      continue;
    }
    if (flag == "--device") {
      if (i + 1 >= argc) usage_error(program, "--device needs a value");
      f.device = argv[++i];
      if (f.device != "cpu" && f.device != "cuda")
        usage_error(program, "--device expects cpu or cuda, got '" + f.device + "'");
      continue;
    }
    const auto value = values.find(flag);
    if (value == values.end()) usage_error(program, "unknown flag '" + flag + "'");
    if (i + 1 >= argc) usage_error(program, flag + " needs a value");
    *value->second = positive_int(program, flag, argv[++i]);
  }
  if (f.d % f.heads != 0) usage_error(program, "--d must be a multiple of --heads");
  return f;
}

// The device the flags name: "cpu", or the first GPU ("cuda").
inline Device step_device(const GptStepFlags& f) { return f.device == "cuda" ? Device::cuda(0) : Device::cpu(); }

inline nn::GPTConfig gpt_config(const GptStepFlags& f) {
  nn::GPTConfig c{.vocab_size = f.vocab, .block_size = f.seq, .n_layer = f.layers, .n_head = f.heads,
                  .d_model = f.d, .dropout = 0.0};
  if (f.context_pool) c.context_pool = nn::ContextPoolModuleOptions{};  // causal: GPT forces it
  return c;
}

// The model on `device`, built (and initialised) on the CPU as on every device, so the
// weights are the same wherever it trains.
inline std::shared_ptr<nn::GPT> gpt_on(const nn::GPTConfig& config, Device device) {
  auto model = std::make_shared<nn::GPT>(config);
  model->to(device);
  return model;
}

// The model, its optimizer and one fixed batch, all on one device: everything a step touches.
struct GptTraining {
  std::shared_ptr<nn::GPT> model;
  nn::optim::AdamW optimizer;
  Tensor idx, targets;
  int64_t vocab;

  GptTraining(const nn::GPTConfig& config, int64_t batch, Device device = Device::cpu())
      : model(gpt_on(config, device)),
        optimizer(model->parameters(), {.lr = 1e-4}),
        idx(randint(0, config.vocab_size, {batch, config.block_size}).to(device)),
        targets(randint(0, config.vocab_size, {batch, config.block_size}).to(device)),
        vocab(config.vocab_size) {}

  // One training step; returns its loss, detached, where it was computed. On a GPU the
  // step is only queued when this returns: reading the loss, or cuda::synchronize(),
  // waits for it. The optimizer's two phases get profiler rows of their own (they run
  // outside the autograd graph).
  Tensor step() {
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
    return loss.detach();
  }
};

}  // namespace kiln::bench
