// gradcheck: compares autograd's gradients with central finite differences in f64.
//
// For speed it checks a random projection (like PyTorch's fast mode): with a fixed
// vector v, L(x) = sum(fn(x) * v), and each input element's dL/dx from backward must
// match (L(x + eps) - L(x - eps)) / 2eps. A wrong rule for any element shows up.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "kiln/core/tensor.h"

namespace kiln {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-3;
};

struct GradcheckResult {
  bool ok = true;
  double max_abs_error = 0;
  std::string message;  // names the worst element when !ok
};

using GradcheckFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Inputs that require grad must be f64; others (indices, masks) are passed through.
GradcheckResult gradcheck(const GradcheckFn& fn, const std::vector<Tensor>& inputs, GradcheckOptions opts = {});

}  // namespace kiln
