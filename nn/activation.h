// Activation modules (thin wrappers over ops/activation.h) and Dropout.
#pragma once

#include <string>

#include "kiln/nn/module.h"
#include "kiln/ops/activation.h"
#include "kiln/ops/dropout.h"

namespace kiln::nn {

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) const { return relu(x); }
};

class GELU : public Module {
 public:
  explicit GELU(std::string approximate = "none") : approximate_(std::move(approximate)) {}
  Tensor forward(const Tensor& x) const { return gelu(x, approximate_); }
  std::string extra_repr() const override { return "approximate='" + approximate_ + "'"; }

 private:
  std::string approximate_;
};

class SiLU : public Module {
 public:
  Tensor forward(const Tensor& x) const { return silu(x); }
};

class Tanh : public Module {
 public:
  Tensor forward(const Tensor& x) const { return tanh(x); }
};

// Active only in training mode (see Module::train/eval).
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5) : p_(p) {
    KILN_CHECK(p >= 0.0 && p <= 1.0, "Dropout: p must be in [0, 1], got ", p);
  }
  Tensor forward(const Tensor& x) const { return dropout(x, p_, is_training()); }
  std::string extra_repr() const override { return detail::str("p=", p_); }

 private:
  double p_;
};

}  // namespace kiln::nn
