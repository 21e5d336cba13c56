// Pooling kernels (see pool.h): plain loops over each plane's windows, planes spread
// over threads. Windows are small, so the loops test each tap against the padding.
#include "kiln/ops/cpu/pool.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kiln/ops/cpu/loops.h"

namespace kiln::cpu {

namespace {

// Whether `work` (element visits) over `planes` is worth forking threads for.
bool worth_parallel(int64_t planes, double work) {
  return planes > 1 && work > static_cast<double>(kParallelThreshold);
}

}  // namespace

// ---- max pooling ---------------------------------------------------------------------

template <class T>
void max_pool2d_forward(const T* x, T* y, int64_t* indices, int64_t planes, const WindowAxis& h, const WindowAxis& w) {
  const int64_t in_area = h.in * w.in, out_area = h.out * w.out;
  const double work = static_cast<double>(planes * out_area) * static_cast<double>(h.kernel * w.kernel);
#pragma omp parallel for schedule(static) if (worth_parallel(planes, work))
  for (int64_t p = 0; p < planes; ++p) {
    const T* plane = x + p * in_area;
    for (int64_t oy = 0; oy < h.out; ++oy) {
      for (int64_t ox = 0; ox < w.out; ++ox) {
        T best = -std::numeric_limits<T>::infinity();
        int64_t best_at = -1;  // stays -1 only for a window entirely in the padding
        for (int64_t i = 0; i < h.kernel; ++i) {
          const int64_t iy = h.input_index(oy, i);
          if (iy < 0 || iy >= h.in) continue;
          for (int64_t j = 0; j < w.kernel; ++j) {
            const int64_t ix = w.input_index(ox, j);
            if (ix < 0 || ix >= w.in) continue;
            const T v = plane[iy * w.in + ix];
            if (v > best || std::isnan(v)) best = v, best_at = iy * w.in + ix;
          }
        }
        y[p * out_area + oy * w.out + ox] = best;
        indices[p * out_area + oy * w.out + ox] = best_at;
      }
    }
  }
}

template <class T>
void max_pool2d_backward(const T* dy, const int64_t* indices, T* dx, int64_t planes, int64_t in_area,
                         int64_t out_area) {
#pragma omp parallel for schedule(static) if (worth_parallel(planes, static_cast<double>(planes * in_area)))
  for (int64_t p = 0; p < planes; ++p) {
    T* plane = dx + p * in_area;
    std::fill(plane, plane + in_area, T(0));
    for (int64_t o = 0; o < out_area; ++o) {
      const int64_t at = indices[p * out_area + o];
      if (at >= 0) plane[at] += dy[p * out_area + o];  // overlapping windows may share a maximum
    }
  }
}

template <class T>
void gather_from_planes(const T* x, const int64_t* indices, T* y, int64_t planes, int64_t in_area, int64_t out_area) {
#pragma omp parallel for schedule(static) if (worth_parallel(planes, static_cast<double>(planes * out_area)))
  for (int64_t p = 0; p < planes; ++p) {
    for (int64_t o = 0; o < out_area; ++o) {
      const int64_t at = indices[p * out_area + o];
      y[p * out_area + o] = at >= 0 ? x[p * in_area + at] : T(0);
    }
  }
}

// ---- average pooling -----------------------------------------------------------------

AverageAxis average_windows(const WindowAxis& a, bool count_include_pad) {
  AverageAxis axis{.in = a.in, .begin = {}, .end = {}, .scale = {}};
  for (int64_t o = 0; o < a.out; ++o) {
    const int64_t start = a.input_index(o, 0);
    const int64_t stop = std::min(start + a.kernel, a.in + a.pad);  // a last ceil_mode window may be cut short
    const int64_t begin = std::max<int64_t>(start, 0), end = std::min(stop, a.in);
    const int64_t count = count_include_pad ? stop - start : end - begin;
    axis.begin.push_back(begin);
    axis.end.push_back(end);
    axis.scale.push_back(count > 0 ? 1.0 / static_cast<double>(count) : 0.0);
  }
  return axis;
}

AverageAxis adaptive_windows(int64_t in, int64_t out) {
  AverageAxis axis{.in = in, .begin = {}, .end = {}, .scale = {}};
  for (int64_t o = 0; o < out; ++o) {
    const int64_t begin = o * in / out, end = ((o + 1) * in + out - 1) / out;  // floor, ceil
    axis.begin.push_back(begin);
    axis.end.push_back(end);
    axis.scale.push_back(1.0 / static_cast<double>(end - begin));
  }
  return axis;
}

namespace {

// Visit-count estimate for the threading decision: outputs times the first window's size.
double average_work(int64_t planes, const AverageAxis& h, const AverageAxis& w) {
  const auto window = [](const AverageAxis& a) { return a.out() > 0 ? a.end[0] - a.begin[0] : 0; };
  return static_cast<double>(planes * h.out() * w.out()) * static_cast<double>(window(h) * window(w) + 1);
}

}  // namespace

template <class T>
void avg_pool2d_forward(const T* x, T* y, int64_t planes, const AverageAxis& h, const AverageAxis& w) {
  const int64_t in_area = h.in * w.in, out_area = h.out() * w.out();
#pragma omp parallel for schedule(static) if (worth_parallel(planes, average_work(planes, h, w)))
  for (int64_t p = 0; p < planes; ++p) {
    const T* plane = x + p * in_area;
    for (int64_t oy = 0; oy < h.out(); ++oy) {
      for (int64_t ox = 0; ox < w.out(); ++ox) {
        T sum = 0;
        for (int64_t iy = h.begin[oy]; iy < h.end[oy]; ++iy)
          for (int64_t ix = w.begin[ox]; ix < w.end[ox]; ++ix) sum += plane[iy * w.in + ix];
        y[p * out_area + oy * w.out() + ox] = sum * static_cast<T>(h.scale[oy] * w.scale[ox]);
      }
    }
  }
}

template <class T>
void avg_pool2d_backward(const T* dy, T* dx, int64_t planes, const AverageAxis& h, const AverageAxis& w) {
  const int64_t in_area = h.in * w.in, out_area = h.out() * w.out();
#pragma omp parallel for schedule(static) if (worth_parallel(planes, average_work(planes, h, w)))
  for (int64_t p = 0; p < planes; ++p) {
    T* plane = dx + p * in_area;
    std::fill(plane, plane + in_area, T(0));
    for (int64_t oy = 0; oy < h.out(); ++oy) {
      for (int64_t ox = 0; ox < w.out(); ++ox) {
        const T share = dy[p * out_area + oy * w.out() + ox] * static_cast<T>(h.scale[oy] * w.scale[ox]);
        for (int64_t iy = h.begin[oy]; iy < h.end[oy]; ++iy)
          for (int64_t ix = w.begin[ox]; ix < w.end[ox]; ++ix) plane[iy * w.in + ix] += share;
      }
    }
  }
}

#define KILN_INSTANTIATE_POOL(T)                                                                              \
  template void max_pool2d_forward<T>(const T*, T*, int64_t*, int64_t, const WindowAxis&, const WindowAxis&); \
  template void max_pool2d_backward<T>(const T*, const int64_t*, T*, int64_t, int64_t, int64_t);              \
  template void gather_from_planes<T>(const T*, const int64_t*, T*, int64_t, int64_t, int64_t);               \
  template void avg_pool2d_forward<T>(const T*, T*, int64_t, const AverageAxis&, const AverageAxis&);         \
  template void avg_pool2d_backward<T>(const T*, T*, int64_t, const AverageAxis&, const AverageAxis&);
KILN_INSTANTIATE_POOL(float)
KILN_INSTANTIATE_POOL(double)
#undef KILN_INSTANTIATE_POOL

}  // namespace kiln::cpu
