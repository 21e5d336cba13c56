// Softmax and log-softmax on the GPU, forward and backward: what ops/normalization.cpp
// calls for CUDA tensors. Same contract as ops/cpu/softmax.h: contiguous tensors viewed
// as (outer, n, inner), normalised over n; device pointers.
//
// NaN and infinities behave as on the CPU: a row holding a NaN, or whose max is +inf or
// -inf (an all -inf row is no distribution), comes out all NaN.
//
// Kernels (cuda/softmax.cu): for inner == 1 one warp per row (n <= 1024) or one block
// per row, which reads the row twice: once for its max and sum of exponentials together
// (the "online" softmax: the running sum is rescaled whenever the max grows), once to
// write. For inner > 1 the rows are strided; rather than transposing, one thread per
// (outer, inner) column walks its n elements, neighbouring threads on neighbouring
// columns so every step is a coalesced load.
#pragma once

#include <cstdint>

#include "kiln/cuda/entry.h"

namespace kiln::cuda {

// y = exp(x - max) / sum(exp(x - max))
template <class T>
KILN_CUDA_ENTRY(void softmax_forward(const T* x, T* y, int64_t outer, int64_t n, int64_t inner, int device))
// y = (x - max) - log(sum(exp(x - max)))
template <class T>
KILN_CUDA_ENTRY(void log_softmax_forward(const T* x, T* y, int64_t outer, int64_t n, int64_t inner, int device))
// From the forward output y and the output gradient g: dx = y * (g - sum(g * y)).
template <class T>
KILN_CUDA_ENTRY(void softmax_backward(const T* y, const T* g, T* dx, int64_t outer, int64_t n, int64_t inner,
                                      int device))
// From the forward output y = log p: dx = g - exp(y) * sum(g).
template <class T>
KILN_CUDA_ENTRY(void log_softmax_backward(const T* y, const T* g, T* dx, int64_t outer, int64_t n, int64_t inner,
                                          int device))

}  // namespace kiln::cuda
