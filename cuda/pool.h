// Pooling kernels on the GPU, the twins of ops/cpu/pool.h, over `planes` contiguous
// (h.in, w.in) planes (N * C planes for a batch of images; a 1-D pool has h.in = 1).
// Launchers take raw device pointers, sizes and the device index; no CUDA types appear
// here, so ops/pool.cpp (g++) includes this header in every build.
//
// Every kernel owns its outputs: forwards run one thread per output element, backwards
// one thread per INPUT element that gathers from the outputs whose windows hold it. So
// overlapping windows need no atomics, and each input's gradient is summed in the CPU's
// order (outputs in increasing flat index): the results do not vary from run to run.
#pragma once

#include <cstdint>

#include "kiln/cuda/entry.h"
#include "kiln/ops/cpu/window.h"

namespace kiln::cuda {

// ---- max pooling ---------------------------------------------------------------------

// As cpu::max_pool2d_forward: each output the largest input of its dilated window
// (padding excluded, NaN wins, first maximum on ties), and its flat index iy * w.in + ix
// within the plane (-1 for a window entirely in the padding).
template <class T>
KILN_CUDA_ENTRY(void max_pool2d_forward(const T* x, T* y, int64_t* indices, int64_t planes, const cpu::WindowAxis& h,
                                        const cpu::WindowAxis& w, int device))

// dx (overwritten) = dy routed back to each output's maximum, as cpu::max_pool2d_backward,
// for the windows of h and w that produced `indices`.
template <class T>
KILN_CUDA_ENTRY(void max_pool2d_backward(const T* dy, const int64_t* indices, T* dx, int64_t planes,
                                         const cpu::WindowAxis& h, const cpu::WindowAxis& w, int device))

// y[p][o] = x[p][indices[p][o]] (0 where the index is -1), as cpu::gather_from_planes.
template <class T>
KILN_CUDA_ENTRY(void gather_from_planes(const T* x, const int64_t* indices, T* y, int64_t planes, int64_t in_area,
                                        int64_t out_area, int device))

// ---- average pooling -----------------------------------------------------------------

// One axis of an average pool, as the GPU computes its windows: from a closed form per
// output rather than cpu::AverageAxis's tables, but the same windows and divisors as
// cpu::average_windows (sliding) and cpu::adaptive_windows (adaptive).
struct AverageWindows {
  int64_t in = 1, out = 1;
  bool adaptive = false;
  // Sliding windows only (dilation 1): output o starts at o * stride - pad.
  int64_t kernel = 1, stride = 1, pad = 0;
  bool count_include_pad = true;
};

inline AverageWindows sliding_average_windows(const cpu::WindowAxis& a, bool count_include_pad) {
  return {.in = a.in,
          .out = a.out,
          .adaptive = false,
          .kernel = a.kernel,
          .stride = a.stride,
          .pad = a.pad,
          .count_include_pad = count_include_pad};
}

inline AverageWindows adaptive_average_windows(int64_t in, int64_t out) {
  return {.in = in, .out = out, .adaptive = true};
}

// y = the mean of each window (times the divisors' reciprocals of both axes).
template <class T>
KILN_CUDA_ENTRY(void avg_pool2d_forward(const T* x, T* y, int64_t planes, const AverageWindows& h,
                                        const AverageWindows& w, int device))

// dx (overwritten) = the adjoint of the forward applied to dy.
template <class T>
KILN_CUDA_ENTRY(void avg_pool2d_backward(const T* dy, T* dx, int64_t planes, const AverageWindows& h,
                                         const AverageWindows& w, int device))

}  // namespace kiln::cuda
