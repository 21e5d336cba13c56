// The geometry of a sliding window along one spatial axis, shared by the convolution
// (im2col) and pooling kernels. Output position o with kernel tap k reads input index
//
//   o * stride - pad + k * dilation
//
// which lies in the (implicit) padding when it is < 0 or >= in. WindowAxis is compiled
// for both backends (KILN_HOST_DEVICE): the CUDA im2col and pooling kernels
// (cuda/im2col.cu, cuda/pool.cu) index with the same functions.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kiln/core/host_device.h"

namespace kiln::cpu {

// Floor division for a positive divisor (C++'s / truncates towards zero).
KILN_HOST_DEVICE inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

struct WindowAxis {
  int64_t in = 1, out = 1;  // input and output sizes
  int64_t kernel = 1, stride = 1, pad = 0, dilation = 1;

  KILN_HOST_DEVICE int64_t input_index(int64_t o, int64_t k) const { return o * stride - pad + k * dilation; }
  // The output o whose tap k reads input index i, or -1 when none does
  // (i + pad - k * dilation must be a non-negative multiple of stride, below out * stride).
  KILN_HOST_DEVICE int64_t output_reading(int64_t i, int64_t k) const {
    const int64_t t = i + pad - k * dilation;  // = o * stride
    if (t < 0 || t % stride != 0) return -1;
    const int64_t o = t / stride;
    return o < out ? o : -1;
  }
  // The outputs whose tap k lands inside the input form one range [first_inside, end_inside):
  // kernels copy that range and zero-fill the rest, with no test per element.
  KILN_HOST_DEVICE int64_t first_inside(int64_t k) const {
    const int64_t lead = pad - k * dilation;  // o * stride must reach at least this
    return std::clamp<int64_t>(lead <= 0 ? 0 : (lead + stride - 1) / stride, 0, out);
  }
  KILN_HOST_DEVICE int64_t end_inside(int64_t k) const {
    return std::clamp<int64_t>(floor_div(in - 1 + pad - k * dilation, stride) + 1, first_inside(k), out);
  }
  // The dilated kernel's extent in input elements.
  KILN_HOST_DEVICE int64_t span() const { return (kernel - 1) * dilation + 1; }
};

// Output size of a window sliding over `in` elements padded by `pad` on both sides, as
// PyTorch computes it. With ceil_mode a last, partial window is kept when it starts
// inside the input or the left padding. May be <= 0 (callers report that).
inline int64_t window_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation,
                                  bool ceil_mode = false) {
  const int64_t reach = in + 2 * pad - (kernel - 1) * dilation - 1;  // last start position, from -pad
  int64_t out = floor_div(reach + (ceil_mode ? stride - 1 : 0), stride) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

}  // namespace kiln::cpu
