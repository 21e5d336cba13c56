#include "kiln/nn/optim/lr_scheduler.h"

#include <cmath>
#include <numbers>

namespace kiln::nn::optim {

void LRScheduler::set_step(int64_t step) {
  KILN_CHECK(step >= 0, "LRScheduler: step must be >= 0, got ", step);
  step_ = step;
  for (size_t g = 0; g < optimizer_.num_param_groups(); ++g)
    optimizer_.set_lr(g, lr_at(step, optimizer_.initial_lr(g)));
}

ConstantLR::ConstantLR(Optimizer& optimizer) : LRScheduler(optimizer) { set_step(0); }

StepLR::StepLR(Optimizer& optimizer, int64_t step_size, double gamma)
    : LRScheduler(optimizer), step_size_(step_size), gamma_(gamma) {
  KILN_CHECK(step_size > 0, "StepLR: step_size must be > 0, got ", step_size);
  KILN_CHECK(gamma >= 0, "StepLR: gamma must be >= 0, got ", gamma);
  set_step(0);
}

double StepLR::lr_at(int64_t step, double base_lr) const {
  return base_lr * std::pow(gamma_, static_cast<double>(step / step_size_));
}

WarmupCosineLR::WarmupCosineLR(Optimizer& optimizer, const WarmupCosineOptions& options)
    : LRScheduler(optimizer), options_(options) {
  KILN_CHECK(options.warmup_steps >= 0, "WarmupCosineLR: warmup_steps must be >= 0, got ", options.warmup_steps);
  KILN_CHECK(options.total_steps > options.warmup_steps, "WarmupCosineLR: total_steps (", options.total_steps,
             ") must be greater than warmup_steps (", options.warmup_steps, ")");
  KILN_CHECK(options.min_lr >= 0, "WarmupCosineLR: min_lr must be >= 0, got ", options.min_lr);
  set_step(0);
}

double WarmupCosineLR::lr_at(int64_t step, double base_lr) const {
  const auto [warmup, total, min_lr] = options_;
  if (step < warmup) return base_lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (step > total) return min_lr;
  const double progress = static_cast<double>(step - warmup) / static_cast<double>(total - warmup);
  return min_lr + (base_lr - min_lr) * 0.5 * (1 + std::cos(std::numbers::pi * progress));
}

}  // namespace kiln::nn::optim
