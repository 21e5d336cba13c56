// 2-D convolution kernels: im2col + GEMM per image, on contiguous raw buffers.
//
//   x (batch, in_channels, h.in, w.in) * weight (out_channels, in_channels / groups, h.kernel, w.kernel)
//     -> y (batch, out_channels, h.out, w.out)
//
// Channels split into `groups` independent convolutions: group g maps input channels
// [g*Cg, (g+1)*Cg) to output channels [g*Og, (g+1)*Og). For one image and group,
//
//   forward       y_g  (Og, oh*ow)      = W_g (Og, Cg*kh*kw) · cols (Cg*kh*kw, oh*ow)
//   input grad    dx_g                  = col2im( W_g^T · dy_g )
//   weight grad   dW_g (Og, Cg*kh*kw)  += dy_g · cols^T            (summed over the batch)
//
// A 1-D convolution is the case h.in = h.kernel = h.out = 1.
//
// Threads: with at least one image per thread, images are spread over threads (each
// thread owns one column buffer and runs its GEMMs alone); otherwise images run in turn
// and Eigen parallelises each GEMM.
#pragma once

#include <cstdint>

#include "kiln/ops/cpu/window.h"

namespace kiln::cpu {

struct ConvGeometry {
  int64_t batch = 1, in_channels = 1, out_channels = 1, groups = 1;
  WindowAxis h, w;

  int64_t group_in() const { return in_channels / groups; }
  int64_t group_out() const { return out_channels / groups; }
  int64_t col_rows() const { return group_in() * h.kernel * w.kernel; }  // = a weight row's length
  int64_t in_area() const { return h.in * w.in; }
  int64_t out_area() const { return h.out * w.out; }
  // A 1x1 kernel with stride 1 and no padding reads each image as its own column matrix.
  bool is_pointwise() const {
    return h.kernel == 1 && w.kernel == 1 && h.stride == 1 && w.stride == 1 && h.pad == 0 && w.pad == 0;
  }
};

// y = conv(x, weight) + bias; bias (out_channels) may be null.
template <class T>
void conv2d_forward(const T* x, const T* weight, const T* bias, T* y, const ConvGeometry& g);

// dx = the gradient of <dy, conv(x, weight)> with respect to x (dx is overwritten).
template <class T>
void conv2d_input_grad(const T* dy, const T* weight, T* dx, const ConvGeometry& g);

// dweight = the gradient of <dy, conv(x, weight)> with respect to weight (overwritten).
template <class T>
void conv2d_weight_grad(const T* x, const T* dy, T* dweight, const ConvGeometry& g);

}  // namespace kiln::cpu
