// Convolutions, as torch.nn.functional.conv1d / conv2d (cross-correlation, no kernel
// flip), computed by im2col + GEMM (ops/cpu/conv.h).
//
//   Tensor y = conv2d(x, weight, bias, {.stride = 2, .padding = 1});
//
// Shapes: x (N, C, H, W) or unbatched (C, H, W); weight (O, C / groups, kH, kW);
// bias (O) or undefined; y (N, O, H_out, W_out) with
//   H_out = (H + 2 * padding.h - dilation.h * (kH - 1) - 1) / stride.h + 1   (same for W).
// conv1d is the same on (N, C, L) / (C, L) with weight (O, C / groups, k).
//
// Gradients flow to x, weight and bias, and are differentiable again (double backward).
#pragma once

#include <cstdint>

#include "kiln/core/tensor.h"
#include "kiln/ops/window.h"

namespace kiln {

struct Conv2dOptions {
  Size2 stride = 1;
  Size2 padding = 0;  // zeros added on both sides of each spatial dim
  Size2 dilation = 1;
  int64_t groups = 1;  // must divide both channel counts
};

struct Conv1dOptions {
  int64_t stride = 1;
  int64_t padding = 0;
  int64_t dilation = 1;
  int64_t groups = 1;
};

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = {}, const Conv2dOptions& options = {});
Tensor conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias = {}, const Conv1dOptions& options = {});

}  // namespace kiln
