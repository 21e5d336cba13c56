// Learning-rate schedules. A schedule is a function lr(step, base_lr) of the step
// number; applying it sets every parameter group's lr, scaled from the group's
// initial_lr, so groups with different lrs keep their ratio.
//
//   nn::optim::AdamW opt(model->parameters(), {.lr = 6e-4});
//   nn::optim::WarmupCosineLR schedule(opt, {.warmup_steps = 100, .total_steps = 5000, .min_lr = 6e-5});
//   for (int64_t step = 0; step < 5000; ++step) {
//     ...; opt.step();
//     schedule.step();  // as in PyTorch: after the optimizer's step
//   }
//
// Steps are 0-based: constructing a schedule applies lr(0), the lr of the first update;
// each step() moves on by one. A resumed run calls set_step(n) to land on step n.
#pragma once

#include <cstdint>

#include "kiln/nn/optim/optimizer.h"

namespace kiln::nn::optim {

class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  // The lr at `step` for a group that started at base_lr.
  virtual double lr_at(int64_t step, double base_lr) const = 0;

  // Advances one step and sets every group's lr for it.
  void step() { set_step(step_ + 1); }
  // Jumps to `step` (>= 0) and sets every group's lr for it.
  void set_step(int64_t step);
  int64_t current_step() const { return step_; }

 protected:
  // Derived constructors check their settings, then call set_step(0).
  explicit LRScheduler(Optimizer& optimizer) : optimizer_(optimizer) {}

 private:
  Optimizer& optimizer_;
  int64_t step_ = 0;
};

// Every group keeps its initial lr.
class ConstantLR : public LRScheduler {
 public:
  explicit ConstantLR(Optimizer& optimizer);
  double lr_at(int64_t step, double base_lr) const override { return base_lr; }
};

// base_lr * gamma^floor(step / step_size), as torch.optim.lr_scheduler.StepLR.
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& optimizer, int64_t step_size, double gamma = 0.1);
  double lr_at(int64_t step, double base_lr) const override;

 private:
  int64_t step_size_;
  double gamma_;
};

// Linear warmup, then a half cosine down to min_lr (GPT-2 / nanoGPT / llm.c):
//   step <  warmup_steps:  base_lr * (step + 1) / warmup_steps
//   step <= total_steps:   min_lr + (base_lr - min_lr) * (1 + cos(pi * r)) / 2,
//                          r = (step - warmup_steps) / (total_steps - warmup_steps)
//   step >  total_steps:   min_lr
// min_lr is absolute and shared by all groups, like PyTorch's eta_min.
struct WarmupCosineOptions {
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;  // where the decay reaches min_lr; > warmup_steps
  double min_lr = 0;
};

class WarmupCosineLR : public LRScheduler {
 public:
  WarmupCosineLR(Optimizer& optimizer, const WarmupCosineOptions& options);
  double lr_at(int64_t step, double base_lr) const override;

 private:
  WarmupCosineOptions options_;
};

}  // namespace kiln::nn::optim
