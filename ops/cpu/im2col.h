// im2col / col2im: the layout change that turns a convolution into one GEMM.
//
// For one image of `channels` planes (channels, h.in, w.in), the column matrix has one
// row per (channel, kernel row, kernel col) tap and one column per output position:
//
//   cols[(c * kh + i) * kw + j][oy * w.out + ox] = image[c][oy*sh - ph + i*dh][ox*sw - pw + j*dw]
//
// (0 where that index falls in the padding). A convolution is then weight (O, C*kh*kw)
// times cols (C*kh*kw, oh*ow). col2im is the adjoint: it adds every column entry back
// onto the image pixel it was read from, which is how the input gradient is formed.
//
// Both run on one thread: the convolution kernels parallelise over the batch.
#pragma once

#include <cstdint>

#include "kiln/ops/cpu/window.h"

namespace kiln::cpu {

// cols (channels * h.kernel * w.kernel, h.out * w.out) from a contiguous image.
template <class T>
void im2col(const T* image, int64_t channels, const WindowAxis& h, const WindowAxis& w, T* cols);

// image += the columns scattered back to their pixels (image is not cleared first).
template <class T>
void col2im(const T* cols, int64_t channels, const WindowAxis& h, const WindowAxis& w, T* image);

}  // namespace kiln::cpu
