// Gradient clipping by global norm, as torch.nn.utils.clip_grad_norm_.
//
//   loss.backward();
//   double norm = nn::optim::clip_grad_norm_(model->parameters(), 1.0);
//   opt.step();
#pragma once

#include <vector>

#include "kiln/core/tensor.h"

namespace kiln::nn::optim {

// Treats the gradients of `params` as one long vector and returns its norm_type-norm
// (2 by default; any p > 0, or INFINITY for the largest magnitude). When that exceeds
// max_norm, every gradient is scaled in place by max_norm / (norm + 1e-6), as PyTorch
// does. Parameters without a gradient are ignored (all without: returns 0). A NaN or
// infinite norm leaves the gradients alone, or throws when error_if_nonfinite.
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false);

}  // namespace kiln::nn::optim
