// Pooling, as torch.nn.functional's max_pool1d/2d, avg_pool1d/2d and
// adaptive_avg_pool1d/2d. Inputs are (N, C, H, W) or unbatched (C, H, W) for the 2-D
// pools, (N, C, L) or (C, L) for the 1-D ones; every (n, c) plane is pooled alone.
//
//   Tensor y = max_pool2d(x, 2);                                 // 2x2 windows, stride 2
//   Tensor z = avg_pool2d(x, 3, {.stride = 1, .padding = 1});
//
// Output size per spatial dim, as PyTorch: (in + 2 * padding - dilation * (kernel - 1) - 1)
// / stride + 1, rounded down (up with ceil_mode, keeping only windows that start inside
// the input or its left padding). Padding may be at most half the kernel size.
#pragma once

#include <cstdint>

#include "kiln/core/tensor.h"
#include "kiln/ops/window.h"

namespace kiln {

// stride 0 means "equal to the kernel size", PyTorch's default.
struct MaxPool2dOptions {
  Size2 stride = 0;
  Size2 padding = 0;  // implicit -inf on both sides
  Size2 dilation = 1;
  bool ceil_mode = false;
};

struct MaxPool1dOptions {
  int64_t stride = 0;
  int64_t padding = 0;
  int64_t dilation = 1;
  bool ceil_mode = false;
};

struct AvgPool2dOptions {
  Size2 stride = 0;
  Size2 padding = 0;  // implicit zeros on both sides
  bool ceil_mode = false;
  bool count_include_pad = true;  // divide by the window size including padded positions
};

struct AvgPool1dOptions {
  int64_t stride = 0;
  int64_t padding = 0;
  bool ceil_mode = false;
  bool count_include_pad = true;
};

// The maximum of each window. Its gradient goes to the element the maximum was taken
// from (the first one in the window on ties; NaN counts as the maximum).
Tensor max_pool2d(const Tensor& x, Size2 kernel_size, const MaxPool2dOptions& options = {});
Tensor max_pool1d(const Tensor& x, int64_t kernel_size, const MaxPool1dOptions& options = {});

Tensor avg_pool2d(const Tensor& x, Size2 kernel_size, const AvgPool2dOptions& options = {});
Tensor avg_pool1d(const Tensor& x, int64_t kernel_size, const AvgPool1dOptions& options = {});

// Averages over windows chosen so the output has `output_size`: output o along a dim of
// size in covers [floor(o * in / out), ceil((o + 1) * in / out)). Windows overlap when
// in is not a multiple of out; out may exceed in.
Tensor adaptive_avg_pool2d(const Tensor& x, Size2 output_size);
Tensor adaptive_avg_pool1d(const Tensor& x, int64_t output_size);

}  // namespace kiln
