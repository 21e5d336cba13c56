// The training loop of the memory soak, shared by bench/soak.cpp (10 000 steps, RSS
// printed along the way) and tests/test_memory_soak.cpp (a few thousand steps, RSS
// growth asserted): a small GPT with dropout, trained with AdamW, gradient clipping and
// a warmup-cosine schedule on fresh random tokens every step. Each step allocates and
// frees a batch, the activations, the autograd graph, the gradients and the optimizer's
// temporaries, so anything that outlives its step (a leaked graph or tensor, a cache
// that only grows) shows up as resident memory that keeps growing.
#pragma once

#include <cstdint>
#include <memory>

#include <kiln/kiln.h>

#include "process_memory.h"

namespace kiln::soak {

using bench::resident_bytes;

struct SoakConfig {
  nn::GPTConfig model{.vocab_size = 64, .block_size = 32, .n_layer = 2, .n_head = 2, .d_model = 32, .dropout = 0.1};
  int64_t batch_size = 4;
  int64_t total_steps = 10000;  // the schedule's length
};

class SoakLoop {
 public:
  explicit SoakLoop(const SoakConfig& config = {}, uint64_t seed = 1)
      : config_(config),
        model_((manual_seed(seed), std::make_shared<nn::GPT>(config.model))),
        optimizer_(model_->parameters(), nn::optim::AdamWOptions{.lr = 3e-3, .weight_decay = 0.1}),
        schedule_(optimizer_, {.warmup_steps = 100, .total_steps = config.total_steps, .min_lr = 3e-4}) {}

  // One training step on a fresh random batch; returns its loss.
  double step() {
    const int64_t vocab = config_.model.vocab_size, T = config_.model.block_size;
    const Tensor tokens = randint(0, vocab, {config_.batch_size, T + 1});
    const Tensor input = tokens.narrow(1, 0, T), target = tokens.narrow(1, 1, T);
    optimizer_.zero_grad();
    const Tensor loss = cross_entropy(model_->forward(input).reshape({-1, vocab}), target.reshape({-1}));
    loss.backward();
    nn::optim::clip_grad_norm_(model_->parameters(), 1.0);
    optimizer_.step();
    schedule_.step();
    return loss.item<double>();
  }

  nn::GPT& model() { return *model_; }
  const SoakConfig& config() const { return config_; }

 private:
  SoakConfig config_;
  std::shared_ptr<nn::GPT> model_;
  nn::optim::AdamW optimizer_;
  nn::optim::WarmupCosineLR schedule_;
};

}  // namespace kiln::soak
