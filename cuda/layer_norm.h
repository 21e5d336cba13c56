// Layer normalisation on the GPU, forward and fused backward: what ops/normalization.cpp
// calls for CUDA tensors. Same contract as ops/cpu/layer_norm.h: contiguous (rows, n)
// arrays, weight and bias of length n (the op passes ones/zeros when the user gave
// none), mean and rstd saved per row; device pointers.
//
// Kernels (cuda/layer_norm.cu): one warp per row (n <= 1024) or one block per row for
// the forward and for dx; the row's statistics are two reductions (the mean, then the
// mean of squared deviations: no E[x^2] - E[x]^2 cancellation). dweight and dbias sum
// over rows without atomics: a first kernel gives each thread one column and one chunk
// of rows and writes a partial sum per (chunk, column) into the workspace; a second sums
// each column's chunks in order. Deterministic, run to run.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kiln/cuda/entry.h"

namespace kiln::cuda {

template <class T>
KILN_CUDA_ENTRY(void layer_norm_forward(const T* x, const T* weight, const T* bias, T* y, T* mean, T* rstd,
                                        int64_t rows, int64_t n, double eps, int device))

// How many chunks of rows the dweight/dbias partial sums use: enough (chunk, column)
// threads to fill a large GPU, at most one chunk per row.
inline int64_t layer_norm_row_chunks(int64_t rows, int64_t n) {
  const int64_t wanted = (131072 + std::max<int64_t>(n, 1) - 1) / std::max<int64_t>(n, 1);
  return std::clamp<int64_t>(std::min(wanted, rows), 1, 1024);
}

// Elements of T the backward's workspace needs (0 when neither dweight nor dbias is asked for).
inline int64_t layer_norm_backward_workspace(int64_t rows, int64_t n) { return 2 * layer_norm_row_chunks(rows, n) * n; }

// dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat)) with gw = g * weight,
// dweight = sum over rows of g * xhat, dbias = sum over rows of g. Any of dx, dweight,
// dbias may be null; `workspace` (layer_norm_backward_workspace elements) may be null
// when dweight and dbias both are.
template <class T>
KILN_CUDA_ENTRY(void layer_norm_backward(const T* x, const T* mean, const T* rstd, const T* weight, const T* g,
                                         T* dx, T* dweight, T* dbias, int64_t rows, int64_t n, T* workspace,
                                         int device))

}  // namespace kiln::cuda
