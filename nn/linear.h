// Linear (y = x W^T + b) and Flatten.
#pragma once

#include "kiln/nn/module.h"

namespace kiln::nn {

// Weight (out, in) and bias (out) initialised as PyTorch does: U(-1/sqrt(in), 1/sqrt(in)).
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  Tensor forward(const Tensor& x) const;
  std::string extra_repr() const override;

  Tensor weight, bias;  // bias is undefined when disabled

 private:
  int64_t in_features_, out_features_;
};

// Flattens dims [start_dim, end_dim] (by default everything but the batch dim).
class Flatten : public Module {
 public:
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1) : start_dim_(start_dim), end_dim_(end_dim) {}
  Tensor forward(const Tensor& x) const { return x.flatten(start_dim_, end_dim_); }
  std::string extra_repr() const override;

 private:
  int64_t start_dim_, end_dim_;
};

}  // namespace kiln::nn
