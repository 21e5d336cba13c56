// LayerNorm and RMSNorm over the trailing `normalized_shape` dims.
#pragma once

#include "kiln/nn/module.h"

namespace kiln::nn {

// Fused layer_norm; weight = 1, bias = 0 at init (elementwise_affine).
class LayerNorm : public Module {
 public:
  explicit LayerNorm(Shape normalized_shape, double eps = 1e-5, bool elementwise_affine = true, bool bias = true);
  Tensor forward(const Tensor& x) const;
  std::string extra_repr() const override;

  Tensor weight, bias;

 private:
  Shape shape_;
  double eps_;
};

// x / sqrt(mean(x^2) + eps) * weight (Zhang & Sennrich, 2019), as torch.nn.RMSNorm.
class RMSNorm : public Module {
 public:
  explicit RMSNorm(Shape normalized_shape, double eps = 1e-6, bool elementwise_affine = true);
  Tensor forward(const Tensor& x) const;
  std::string extra_repr() const override;

  Tensor weight;

 private:
  Shape shape_;
  double eps_;
};

}  // namespace kiln::nn
