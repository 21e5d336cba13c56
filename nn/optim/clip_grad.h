// Gradient clipping by global norm, as torch.nn.utils.clip_grad_norm_.
//
//   loss.backward();
//   double norm = nn::optim::clip_grad_norm_(model->parameters(), 1.0);
//   opt.step();
//
// clip_grad_norm_ reads the norm on the host, so on a GPU it waits for the device. A loop
// that reads other values each step anyway (the Trainer reads its losses) can split it, as
// PyTorch's get_total_norm and clip_grads_with_norm_ do, and read the norm in the same copy:
//
//   Tensor norm = nn::optim::get_total_norm(nn::optim::gradients(model->parameters()));
//   ... read norm with the losses, one wait ...
//   nn::optim::clip_grads_with_norm_(model->parameters(), 1.0, norm_read_on_host);
#pragma once

#include <vector>

#include "kiln/core/tensor.h"

namespace kiln::nn::optim {

// The gradients of `params` that are defined, in order (parameters without one are skipped).
std::vector<Tensor> gradients(const std::vector<Tensor>& params);

// The norm_type-norm (2 by default; any p > 0, or INFINITY for the largest magnitude) of
// `tensors` taken as one long vector, as a 0-d f64 tensor on their device. Nothing is read
// on the host: on a GPU this only queues work. Undefined tensors are skipped; with none the
// norm is 0 (on the CPU). The norm lives on the first tensor's device; norms of tensors on
// another device are copied there (as PyTorch does).
Tensor get_total_norm(const std::vector<Tensor>& tensors, double norm_type = 2.0);

// Scales every gradient of `params` in place by max_norm / (total_norm + 1e-6) when that
// is below 1, as PyTorch does; total_norm is their norm, read on the host (from
// get_total_norm). A NaN or infinite total_norm leaves the gradients alone.
void clip_grads_with_norm_(const std::vector<Tensor>& params, double max_norm, double total_norm);

// get_total_norm of the gradients of `params`, read on the host, then clip_grads_with_norm_;
// returns the norm before clipping. A NaN or infinite norm leaves the gradients alone, or
// throws when error_if_nonfinite.
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false);

}  // namespace kiln::nn::optim
