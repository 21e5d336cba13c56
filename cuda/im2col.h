// Convolutions on the GPU: im2col / col2im kernels plus cuBLAS GEMMs, the GPU twins of
// ops/cpu/conv.h (same geometry struct, same three maps: forward, input grad, weight
// grad). Launchers take raw device pointers, the geometry and the device index; no CUDA
// types appear here, so ops/conv.cpp (g++) includes this header in every build.
//
// Images are processed in passes of images_per_pass(g) images: one pass builds the
// column matrices of all its images at once (one launch), so each group needs one
// strided-batched GEMM per pass instead of one GEMM per image. The caller allocates the
// scratch (a kiln Tensor on the device: stream-ordered, from the caching allocator):
//   columns          columns_per_pass(g) elements (none when g.is_pointwise(), except
//                    for the weight grad, which always builds columns)
//   dy_by_channel    weight grad only: dy regrouped as (out_channels, batch * out_area),
//                    batch * out_channels * out_area elements
//
// Determinism: no atomics. col2im gives each input element one thread that sums its own
// contributions, in the CPU's tap order; the weight gradient sums over images inside
// the GEMM's reduction dimension.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kiln/cuda/entry.h"
#include "kiln/ops/cpu/conv.h"

namespace kiln::cuda {

// Column-matrix elements of one image: (in_channels * kh * kw) rows of out_area.
inline int64_t columns_per_image(const cpu::ConvGeometry& g) {
  return g.in_channels * g.h.kernel * g.w.kernel * g.out_area();
}

// Images whose columns one pass builds: as many as fit a budget of 2^25 elements
// (128 MiB in f32), at least one, at most the batch.
inline int64_t images_per_pass(const cpu::ConvGeometry& g) {
  constexpr int64_t kColumnBudget = int64_t(1) << 25;
  const int64_t per_image = std::max<int64_t>(columns_per_image(g), 1);
  return std::clamp<int64_t>(kColumnBudget / per_image, 1, std::max<int64_t>(g.batch, 1));
}

inline int64_t columns_per_pass(const cpu::ConvGeometry& g) { return images_per_pass(g) * columns_per_image(g); }

// y = conv(x, weight) + bias; bias may be null. x, weight, y contiguous as in
// cpu::conv2d_forward; `columns` is unused (may be null) when g.is_pointwise().
template <class T>
KILN_CUDA_ENTRY(void conv2d_forward(const T* x, const T* weight, const T* bias, T* y, T* columns,
                                    const cpu::ConvGeometry& g, int device))

// dx (overwritten) = the gradient of <dy, conv(x, weight)> with respect to x.
template <class T>
KILN_CUDA_ENTRY(void conv2d_input_grad(const T* dy, const T* weight, T* dx, T* columns, const cpu::ConvGeometry& g,
                                       int device))

// dweight (overwritten) = the gradient of <dy, conv(x, weight)> with respect to weight.
// `columns` is always needed here; dy_by_channel is scratch (see the file comment).
template <class T>
KILN_CUDA_ENTRY(void conv2d_weight_grad(const T* x, const T* dy, T* dweight, T* columns, T* dy_by_channel,
                                        const cpu::ConvGeometry& g, int device))

}  // namespace kiln::cuda
