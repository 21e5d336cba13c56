// Conv1d and Conv2d layers over ops/conv.h.
//
//   auto conv = std::make_shared<nn::Conv2d>(3, 64, 3, Conv2dOptions{.padding = 1});
//   Tensor y = conv->forward(x);  // (N, 3, H, W) -> (N, 64, H, W)
//
// Weight (out_channels, in_channels / groups, k...) and bias (out_channels) start as in
// PyTorch: kaiming_uniform_(a = sqrt(5)) for the weight, which is U(-1/sqrt(fan_in),
// 1/sqrt(fan_in)) with fan_in = in_channels / groups * prod(kernel_size), and the same
// range for the bias.
#pragma once

#include "kiln/nn/module.h"
#include "kiln/ops/conv.h"

namespace kiln::nn {

class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, Size2 kernel_size, const Conv2dOptions& options = {},
         bool bias = true);
  Tensor forward(const Tensor& x) const;  // (N, C, H, W) or (C, H, W)
  std::string extra_repr() const override;

  Tensor weight, bias;  // bias is undefined when disabled

 private:
  int64_t in_channels_, out_channels_;
  Size2 kernel_size_;
  Conv2dOptions options_;
};

class Conv1d : public Module {
 public:
  Conv1d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, const Conv1dOptions& options = {},
         bool bias = true);
  Tensor forward(const Tensor& x) const;  // (N, C, L) or (C, L)
  std::string extra_repr() const override;

  Tensor weight, bias;  // bias is undefined when disabled

 private:
  int64_t in_channels_, out_channels_, kernel_size_;
  Conv1dOptions options_;
};

}  // namespace kiln::nn
