#include "kiln/nn/normalization.h"

#include <algorithm>

#include "kiln/core/factory.h"
#include "kiln/ops/elementwise.h"
#include "kiln/ops/normalization.h"
#include "kiln/ops/reduce.h"

namespace kiln::nn {

namespace {
// At least one dim, each of positive size (checked before numel_of, which would reject
// a negative size without naming the layer).
bool is_valid_normalized_shape(const Shape& shape) {
  return !shape.empty() && std::all_of(shape.begin(), shape.end(), [](int64_t s) { return s > 0; });
}
}  // namespace

LayerNorm::LayerNorm(Shape normalized_shape, double eps, bool elementwise_affine, bool with_bias)
    : shape_(std::move(normalized_shape)), eps_(eps) {
  KILN_CHECK(is_valid_normalized_shape(shape_), "LayerNorm: normalized_shape ", shape_str(shape_),
             " must be non-empty with positive sizes");
  if (elementwise_affine) {
    weight = register_parameter("weight", ones(shape_));
    if (with_bias) bias = register_parameter("bias", zeros(shape_));
  }
}

Tensor LayerNorm::forward(const Tensor& x) const { return layer_norm(x, shape_, weight, bias, eps_); }

std::string LayerNorm::extra_repr() const {
  return detail::str(shape_str(shape_), ", eps=", eps_, ", elementwise_affine=", weight.defined() ? "true" : "false");
}

RMSNorm::RMSNorm(Shape normalized_shape, double eps, bool elementwise_affine)
    : shape_(std::move(normalized_shape)), eps_(eps) {
  KILN_CHECK(is_valid_normalized_shape(shape_), "RMSNorm: normalized_shape ", shape_str(shape_),
             " must be non-empty with positive sizes");
  if (elementwise_affine) weight = register_parameter("weight", ones(shape_));
}

Tensor RMSNorm::forward(const Tensor& x) const {
  const int64_t n = static_cast<int64_t>(shape_.size());
  KILN_CHECK(x.dim() >= n, "RMSNorm: input ", describe(x), " has fewer dims than normalized_shape ", shape_str(shape_));
  Dims dims;
  for (int64_t d = x.dim() - n; d < x.dim(); ++d) {
    KILN_CHECK(x.size(d) == shape_[d - (x.dim() - n)], "RMSNorm: input ", describe(x),
               " does not end with normalized_shape ", shape_str(shape_));
    dims.push_back(d);
  }
  Tensor y = x * rsqrt(mean(x * x, dims, /*keepdim=*/true) + eps_);
  return weight.defined() ? y * weight : y;
}

std::string RMSNorm::extra_repr() const { return detail::str(shape_str(shape_), ", eps=", eps_); }

}  // namespace kiln::nn
