// Pooling kernels on the GPU (see pool.h). Every kernel is a grid-stride loop with one
// thread per element it writes; windows are small, so each thread walks its window (or,
// in a backward, the outputs whose windows hold its input) and tests each tap against
// the padding, as the CPU loops do.
#include "kiln/cuda/pool.h"

#include <math_constants.h>

#include "kiln/cuda/launch.cuh"

namespace kiln::cuda {

namespace {

using cpu::floor_div;
using cpu::WindowAxis;

// ---- max pooling ---------------------------------------------------------------------

// One thread per output (plane p, oy, ox): the CPU's scan of the window, row by row, so
// ties and NaNs pick the same element (a NaN replaces anything; a later NaN replaces it).
template <class T>
__global__ void max_pool_forward_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t* __restrict__ indices,
                                        int64_t planes, WindowAxis h, WindowAxis w) {
  const int64_t out_area = h.out * w.out, total = planes * out_area;
  for (int64_t idx = global_thread(); idx < total; idx += grid_stride()) {
    const int64_t p = idx / out_area, oy = (idx % out_area) / w.out, ox = idx % w.out;
    const T* plane = x + p * h.in * w.in;
    T best = -static_cast<T>(CUDART_INF);
    int64_t best_at = -1;  // stays -1 only for a window entirely in the padding
    for (int64_t i = 0; i < h.kernel; ++i) {
      const int64_t iy = oy * h.stride - h.pad + i * h.dilation;
      if (iy < 0 || iy >= h.in) continue;
      for (int64_t j = 0; j < w.kernel; ++j) {
        const int64_t ix = ox * w.stride - w.pad + j * w.dilation;
        if (ix < 0 || ix >= w.in) continue;
        const T v = plane[iy * w.in + ix];
        if (v > best || v != v) best = v, best_at = iy * w.in + ix;
      }
    }
    y[idx] = best;
    indices[idx] = best_at;
  }
}

// One thread per input element (plane p, iy, ix): visits every output whose window
// reads this element (at most one per tap (i, j); taps in decreasing order give outputs
// in increasing order, the CPU's summation order) and adds the gradient of those whose
// recorded maximum is this element.
template <class T>
__global__ void max_pool_backward_kernel(const T* __restrict__ dy, const int64_t* __restrict__ indices,
                                         T* __restrict__ dx, int64_t planes, WindowAxis h, WindowAxis w) {
  const int64_t in_area = h.in * w.in, out_area = h.out * w.out, total = planes * in_area;
  for (int64_t idx = global_thread(); idx < total; idx += grid_stride()) {
    const int64_t p = idx / in_area, at = idx % in_area, iy = at / w.in, ix = at % w.in;
    const int64_t* plane_indices = indices + p * out_area;
    const T* plane_dy = dy + p * out_area;
    Acc<T> sum = 0;
    for (int64_t i = h.kernel - 1; i >= 0; --i) {
      const int64_t oy = h.output_reading(iy, i);
      if (oy < 0) continue;
      for (int64_t j = w.kernel - 1; j >= 0; --j) {
        const int64_t ox = w.output_reading(ix, j);
        if (ox < 0) continue;
        const int64_t o = oy * w.out + ox;
        if (plane_indices[o] == at) sum += plane_dy[o];
      }
    }
    dx[idx] = static_cast<T>(sum);
  }
}

// One thread per output: the input at its recorded index.
template <class T>
__global__ void gather_from_planes_kernel(const T* __restrict__ x, const int64_t* __restrict__ indices,
                                          T* __restrict__ y, int64_t planes, int64_t in_area, int64_t out_area) {
  const int64_t total = planes * out_area;
  for (int64_t idx = global_thread(); idx < total; idx += grid_stride()) {
    const int64_t at = indices[idx];
    y[idx] = at >= 0 ? x[(idx / out_area) * in_area + at] : T(0);
  }
}

// ---- average pooling -----------------------------------------------------------------

// Output o's window [begin, end) along one axis and its weight 1 / divisor.
struct AverageWindow {
  int64_t begin, end;
  double scale;
};

// The formulas of cpu::average_windows and cpu::adaptive_windows, for one output.
__device__ inline AverageWindow average_window(const AverageWindows& a, int64_t o) {
  if (a.adaptive) {
    const int64_t begin = o * a.in / a.out, end = ((o + 1) * a.in + a.out - 1) / a.out;  // floor, ceil
    return {begin, end, 1.0 / static_cast<double>(end - begin)};
  }
  const int64_t start = o * a.stride - a.pad;
  const int64_t stop = min(start + a.kernel, a.in + a.pad);  // a last ceil_mode window may be cut short
  const int64_t begin = max(start, int64_t(0)), end = min(stop, a.in);
  const int64_t count = a.count_include_pad ? stop - start : end - begin;
  return {begin, end, count > 0 ? 1.0 / static_cast<double>(count) : 0.0};
}

// A range of outputs [first, last] that includes every output whose window holds input
// i: the closed forms below, widened by one on each side. Callers test each candidate
// with average_window, so the range only bounds the scan and a widened one is harmless.
struct OutputRange {
  int64_t first, last;
};

__device__ inline OutputRange outputs_covering(const AverageWindows& a, int64_t i) {
  int64_t first, last;
  if (a.adaptive) {  // floor(o * in / out) <= i < ceil((o + 1) * in / out)
    first = i * a.out / a.in;
    last = ((i + 1) * a.out + a.in - 1) / a.in - 1;
  } else {  // o * stride - pad <= i < o * stride - pad + kernel
    first = floor_div(i + a.pad - a.kernel, a.stride) + 1;
    last = floor_div(i + a.pad, a.stride);
  }
  return {max(first - 1, int64_t(0)), min(last + 1, a.out - 1)};
}

// One thread per output: the window's sum times both axes' scales (the scale product in
// double, then cast, as on the CPU).
template <class T>
__global__ void avg_pool_forward_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t planes,
                                        AverageWindows h, AverageWindows w) {
  const int64_t out_area = h.out * w.out, total = planes * out_area;
  for (int64_t idx = global_thread(); idx < total; idx += grid_stride()) {
    const int64_t p = idx / out_area, oy = (idx % out_area) / w.out, ox = idx % w.out;
    const AverageWindow wy = average_window(h, oy), wx = average_window(w, ox);
    const T* plane = x + p * h.in * w.in;
    Acc<T> sum = 0;
    for (int64_t iy = wy.begin; iy < wy.end; ++iy)
      for (int64_t ix = wx.begin; ix < wx.end; ++ix) sum += plane[iy * w.in + ix];
    y[idx] = static_cast<T>(sum) * static_cast<T>(wy.scale * wx.scale);
  }
}

// One thread per input element: the sum, over the outputs whose windows hold it (in
// increasing order), of their gradient times their scales.
template <class T>
__global__ void avg_pool_backward_kernel(const T* __restrict__ dy, T* __restrict__ dx, int64_t planes,
                                         AverageWindows h, AverageWindows w) {
  const int64_t in_area = h.in * w.in, out_area = h.out * w.out, total = planes * in_area;
  for (int64_t idx = global_thread(); idx < total; idx += grid_stride()) {
    const int64_t p = idx / in_area, iy = (idx % in_area) / w.in, ix = idx % w.in;
    const OutputRange rows = outputs_covering(h, iy), cols = outputs_covering(w, ix);
    const T* plane_dy = dy + p * out_area;
    Acc<T> sum = 0;
    for (int64_t oy = rows.first; oy <= rows.last; ++oy) {
      const AverageWindow wy = average_window(h, oy);
      if (iy < wy.begin || iy >= wy.end) continue;
      for (int64_t ox = cols.first; ox <= cols.last; ++ox) {
        const AverageWindow wx = average_window(w, ox);
        if (ix < wx.begin || ix >= wx.end) continue;
        sum += plane_dy[oy * w.out + ox] * static_cast<T>(wy.scale * wx.scale);
      }
    }
    dx[idx] = static_cast<T>(sum);
  }
}

}  // namespace

template <class T>
void max_pool2d_forward(const T* x, T* y, int64_t* indices, int64_t planes, const WindowAxis& h, const WindowAxis& w,
                        int device) {
  const int64_t total = planes * h.out * w.out;
  if (total == 0) return;
  max_pool_forward_kernel<T><<<blocks_for(total), kThreadsPerBlock, 0, stream(device)>>>(x, y, indices, planes, h, w);
  KILN_CUDA_LAUNCH_CHECK();
}

template <class T>
void max_pool2d_backward(const T* dy, const int64_t* indices, T* dx, int64_t planes, const WindowAxis& h,
                         const WindowAxis& w, int device) {
  const int64_t total = planes * h.in * w.in;
  if (total == 0) return;
  max_pool_backward_kernel<T><<<blocks_for(total), kThreadsPerBlock, 0, stream(device)>>>(dy, indices, dx, planes,
                                                                                          h, w);
  KILN_CUDA_LAUNCH_CHECK();
}

template <class T>
void gather_from_planes(const T* x, const int64_t* indices, T* y, int64_t planes, int64_t in_area, int64_t out_area,
                        int device) {
  const int64_t total = planes * out_area;
  if (total == 0) return;
  gather_from_planes_kernel<T><<<blocks_for(total), kThreadsPerBlock, 0, stream(device)>>>(x, indices, y, planes,
                                                                                           in_area, out_area);
  KILN_CUDA_LAUNCH_CHECK();
}

template <class T>
void avg_pool2d_forward(const T* x, T* y, int64_t planes, const AverageWindows& h, const AverageWindows& w,
                        int device) {
  const int64_t total = planes * h.out * w.out;
  if (total == 0) return;
  avg_pool_forward_kernel<T><<<blocks_for(total), kThreadsPerBlock, 0, stream(device)>>>(x, y, planes, h, w);
  KILN_CUDA_LAUNCH_CHECK();
}

template <class T>
void avg_pool2d_backward(const T* dy, T* dx, int64_t planes, const AverageWindows& h, const AverageWindows& w,
                         int device) {
  const int64_t total = planes * h.in * w.in;
  if (total == 0) return;
  avg_pool_backward_kernel<T><<<blocks_for(total), kThreadsPerBlock, 0, stream(device)>>>(dy, dx, planes, h, w);
  KILN_CUDA_LAUNCH_CHECK();
}

#define KILN_INSTANTIATE_CUDA_POOL(T)                                                                               \
  template void max_pool2d_forward<T>(const T*, T*, int64_t*, int64_t, const WindowAxis&, const WindowAxis&, int);  \
  template void max_pool2d_backward<T>(const T*, const int64_t*, T*, int64_t, const WindowAxis&, const WindowAxis&, \
                                       int);                                                                        \
  template void gather_from_planes<T>(const T*, const int64_t*, T*, int64_t, int64_t, int64_t, int);                \
  template void avg_pool2d_forward<T>(const T*, T*, int64_t, const AverageWindows&, const AverageWindows&, int);    \
  template void avg_pool2d_backward<T>(const T*, T*, int64_t, const AverageWindows&, const AverageWindows&, int);
KILN_INSTANTIATE_CUDA_POOL(float)
KILN_INSTANTIATE_CUDA_POOL(double)
#undef KILN_INSTANTIATE_CUDA_POOL

}  // namespace kiln::cuda
