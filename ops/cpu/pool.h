// Pooling kernels over `planes` contiguous (h.in, w.in) planes (a batch of images is
// N * C planes; a 1-D pool is the case h.in = 1). Planes are independent, so every
// kernel spreads them over the OpenMP threads.
#pragma once

#include <cstdint>
#include <vector>

#include "kiln/ops/cpu/window.h"

namespace kiln::cpu {

// ---- max pooling ---------------------------------------------------------------------
// Each output takes the largest input in its (dilated) window, padding excluded, and
// records where it was as a flat index y * w.in + x within its plane (PyTorch's
// convention). NaN counts as the largest value, so it propagates.
template <class T>
void max_pool2d_forward(const T* x, T* y, int64_t* indices, int64_t planes, const WindowAxis& h, const WindowAxis& w);

// dx = 0, then dx[p][indices[p][o]] += dy[p][o]: each output's gradient goes back to its
// maximum (planes of in_area elements; dy and indices have out_area per plane).
template <class T>
void max_pool2d_backward(const T* dy, const int64_t* indices, T* dx, int64_t planes, int64_t in_area, int64_t out_area);

// y[p][o] = x[p][indices[p][o]]: the adjoint of max_pool2d_backward (its own gradient).
template <class T>
void gather_from_planes(const T* x, const int64_t* indices, T* y, int64_t planes, int64_t in_area, int64_t out_area);

// ---- average pooling -----------------------------------------------------------------
// Every average pool in kiln (avg_pool with or without padding counted, adaptive) has a
// rectangular window whose divisor is (its height) x (its width), so each axis can be
// described alone: output o covers inputs [begin[o], end[o]) and weighs them by scale[o];
// an output is the window's sum times the scales of both axes.
struct AverageAxis {
  int64_t in = 1;
  std::vector<int64_t> begin, end;
  std::vector<double> scale;
  int64_t out() const { return static_cast<int64_t>(begin.size()); }
};

// avg_pool's windows: kernel, stride and padding from `a` (dilation 1). With
// count_include_pad the divisor counts padded positions (but not past the padding).
AverageAxis average_windows(const WindowAxis& a, bool count_include_pad);
// adaptive_avg_pool's windows: [floor(o * in / out), ceil((o + 1) * in / out)).
AverageAxis adaptive_windows(int64_t in, int64_t out);

template <class T>
void avg_pool2d_forward(const T* x, T* y, int64_t planes, const AverageAxis& h, const AverageAxis& w);

// dx = the adjoint of the forward applied to dy: each output's gradient, times its
// scales, added to every input of its window (dx is overwritten).
template <class T>
void avg_pool2d_backward(const T* dy, T* dx, int64_t planes, const AverageAxis& h, const AverageAxis& w);

}  // namespace kiln::cpu
