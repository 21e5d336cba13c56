// Activation functions (elementwise, floating).
#pragma once

#include <string>

#include "kiln/core/tensor.h"

namespace kiln {

Tensor relu(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
// approximate = "none" (exact, erf) or "tanh" (GPT-2's tanh approximation), as in PyTorch.
Tensor gelu(const Tensor& x, const std::string& approximate = "none");
Tensor silu(const Tensor& x);
// log(1 + exp(beta x)) / beta; linear above `threshold` (in units of beta x), as PyTorch.
Tensor softplus(const Tensor& x, double beta = 1.0, double threshold = 20.0);

}  // namespace kiln
