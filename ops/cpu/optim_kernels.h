// Fused optimizer updates (nn/optim/ calls them once per parameter).
//
// Each kernel makes one pass over a parameter's n contiguous elements: it reads the
// gradient and the state buffers and writes the new parameter and state in place, with
// no temporary tensor. The element formulas follow torch.optim (1.13, single-tensor
// path) operation by operation, scalars rounded to T first as PyTorch does, so results
// match PyTorch to rounding in f32 and f64.
//
// They live here, with the other CPU kernels, rather than in nn/optim/: they never see a
// Tensor, and a CUDA backend adds its own versions beside them (DESIGN §3, optim_kernels).
#pragma once

#include <cstdint>

namespace kiln::cpu {

// SGD, with d = grad + weight_decay * param:
//   buf   = first_step ? d : momentum * buf + (1 - dampening) * d    (only when momentum != 0)
//   d     = nesterov ? d + momentum * buf : buf                      (only when momentum != 0)
//   param = param - lr * d
// first_step means the momentum buffer is empty: it starts as d itself, undampened.
// momentum_buffer may be null when momentum == 0.
struct SgdHyperparameters {
  double lr = 0;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
  bool first_step = false;
};
template <class T>
void sgd_update(T* param, const T* grad, T* momentum_buffer, int64_t n, const SgdHyperparameters& h);

// Adam, and AdamW when decoupled_weight_decay:
//   Adam:  g = grad + weight_decay * param           AdamW:  param = (1 - lr * weight_decay) * param, g = grad
//   exp_avg    = beta1 * exp_avg    + (1 - beta1) * g
//   exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g
//   denom = sqrt(exp_avg_sq) / sqrt(1 - beta2^step) + eps
//   param = param - lr / (1 - beta1^step) * exp_avg / denom
// `step` counts this update too (1 on the first), for the bias corrections.
struct AdamHyperparameters {
  double lr = 0;
  double beta1 = 0;
  double beta2 = 0;
  double eps = 0;
  double weight_decay = 0;
  bool decoupled_weight_decay = false;
  int64_t step = 1;
};
template <class T>
void adam_update(T* param, const T* grad, T* exp_avg, T* exp_avg_sq, int64_t n, const AdamHyperparameters& h);

}  // namespace kiln::cpu
