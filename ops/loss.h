// Loss functions. `reduction` is one of "mean", "sum", "none", as in PyTorch.
#pragma once

#include <string>

#include "kiln/core/tensor.h"

namespace kiln {

struct CrossEntropyOptions {
  int64_t ignore_index = -100;  // targets equal to this contribute nothing
  double label_smoothing = 0.0;
  std::string reduction = "mean";  // mean over non-ignored targets
};

// logits (N, C) or (N, C, d1, ...) with class-index targets (N) or (N, d1, ...), i64.
// Fused log_softmax + nll in one kernel with its own backward.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& opts = {});
// log_probs (N, C) and targets (N), i64; ignore_index and reduction as above.
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, int64_t ignore_index = -100,
                const std::string& reduction = "mean");
Tensor mse_loss(const Tensor& input, const Tensor& target, const std::string& reduction = "mean");

}  // namespace kiln
