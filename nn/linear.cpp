#include "kiln/nn/linear.h"

#include <cmath>

#include "kiln/core/factory.h"
#include "kiln/nn/init.h"
#include "kiln/ops/linalg.h"

namespace kiln::nn {

Linear::Linear(int64_t in_features, int64_t out_features, bool with_bias)
    : in_features_(in_features), out_features_(out_features) {
  KILN_CHECK(in_features > 0 && out_features > 0, "Linear: features must be positive, got in=", in_features,
             ", out=", out_features);
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
  weight = register_parameter("weight", uniform(-bound, bound, {out_features, in_features}));
  if (with_bias) bias = register_parameter("bias", uniform(-bound, bound, {out_features}));
}

Tensor Linear::forward(const Tensor& x) const {
  KILN_CHECK(x.dim() >= 1 && x.size(-1) == in_features_, "Linear: expected input (..., ", in_features_, "), got ",
             describe(x));
  return linear(x, weight, bias);
}

std::string Linear::extra_repr() const {
  return "in_features=" + std::to_string(in_features_) + ", out_features=" + std::to_string(out_features_) +
         ", bias=" + (bias.defined() ? "true" : "false");
}

std::string Flatten::extra_repr() const {
  return "start_dim=" + std::to_string(start_dim_) + ", end_dim=" + std::to_string(end_dim_);
}

}  // namespace kiln::nn
