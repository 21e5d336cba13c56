#include "kiln/ops/cpu/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kiln/ops/cpu/fast_exp.h"
#include "kiln/ops/cpu/loops.h"

namespace kiln::cpu {

namespace {

template <class T>
constexpr T kMinusInf = -std::numeric_limits<T>::infinity();

// Calls row(offset) for each contiguous row when inner == 1, else tile(offset, width)
// for each tile of up to kSoftmaxTile columns; `offset` is where the row/tile starts.
template <class RowFn, class TileFn>
void for_each_row_or_tile(int64_t outer, int64_t n, int64_t inner, RowFn row, TileFn tile) {
  const bool parallel = outer * n * inner > kParallelThreshold;
  if (inner == 1) {
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t o = 0; o < outer; ++o) row(o * n);
    return;
  }
  const int64_t tiles = (inner + kSoftmaxTile - 1) / kSoftmaxTile;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t task = 0; task < outer * tiles; ++task) {
    const int64_t o = task / tiles, i0 = (task % tiles) * kSoftmaxTile;
    tile(o * n * inner + i0, std::min(kSoftmaxTile, inner - i0));
  }
}

// ---- contiguous rows (inner == 1) ---------------------------------------------------

// The shift that keeps exp(x - shift) from overflowing: the row's max. NaN instead when
// the row's softmax is NaN whatever we do, as in PyTorch: the row holds a NaN, or its max
// is infinite (+inf - inf is NaN; an all -inf row is no distribution). With a finite
// shift every x - shift is <= 0, so the faster fast_exp_nonpositive applies.
template <class T>
T row_shift(const T* x, int64_t n) {
  T max = kMinusInf<T>;
  int64_t nans = 0;
  // A plain comparison, not std::max: GCC vectorises this reduction 15x better.
#pragma omp simd reduction(max : max) reduction(+ : nans)
  for (int64_t j = 0; j < n; ++j) {
    max = x[j] > max ? x[j] : max;
    nans += x[j] != x[j];
  }
  return nans > 0 || std::isinf(max) ? std::numeric_limits<T>::quiet_NaN() : max;
}

template <class T>
void softmax_row(const T* x, T* y, int64_t n) {
  const T shift = row_shift(x, n);
  if (std::isnan(shift)) {
    std::fill_n(y, n, shift);
    return;
  }
  T sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) {
    y[j] = fast_exp_nonpositive(x[j] - shift);
    sum += y[j];
  }
  const T inv_sum = T(1) / sum;
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) y[j] *= inv_sum;
}

template <class T>
void log_softmax_row(const T* x, T* y, int64_t n) {
  const LogSumExp<T> lse = row_log_sum_exp(x, n);
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) y[j] = (x[j] - lse.max) - lse.log_sum;
}

template <class T>
void softmax_backward_row(const T* y, const T* g, T* dx, int64_t n) {
  T dot = 0;
#pragma omp simd reduction(+ : dot)
  for (int64_t j = 0; j < n; ++j) dot += g[j] * y[j];
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) dx[j] = y[j] * (g[j] - dot);
}

template <class T>
void log_softmax_backward_row(const T* y, const T* g, T* dx, int64_t n) {
  T g_sum = 0;
#pragma omp simd reduction(+ : g_sum)
  for (int64_t j = 0; j < n; ++j) g_sum += g[j];
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) dx[j] = g[j] - fast_exp(y[j]) * g_sum;
}

// ---- tiles of columns (inner > 1): row r of the tile starts at r * inner ----------------

// Column maxima of an (n, width) tile. Columns with NaN or infinities need no special
// case here: exp(NaN) and exp(inf - inf) are NaN in fast_exp, which makes the column NaN.
template <class T>
void tile_max(const T* x, int64_t n, int64_t inner, int64_t width, T* max) {
  std::fill_n(max, width, kMinusInf<T>);
  for (int64_t r = 0; r < n; ++r) {
    const T* xr = x + r * inner;
#pragma omp simd
    for (int64_t i = 0; i < width; ++i) max[i] = xr[i] > max[i] ? xr[i] : max[i];
  }
}

template <class T>
void softmax_tile(const T* x, T* y, int64_t n, int64_t inner, int64_t width) {
  T max[kSoftmaxTile], inv_sum[kSoftmaxTile], sum[kSoftmaxTile] = {};
  tile_max(x, n, inner, width, max);
  for (int64_t r = 0; r < n; ++r) {
    const T* xr = x + r * inner;
    T* yr = y + r * inner;
#pragma omp simd
    for (int64_t i = 0; i < width; ++i) {
      yr[i] = fast_exp(xr[i] - max[i]);
      sum[i] += yr[i];
    }
  }
  for (int64_t i = 0; i < width; ++i) inv_sum[i] = T(1) / sum[i];
  for (int64_t r = 0; r < n; ++r) {
    T* yr = y + r * inner;
#pragma omp simd
    for (int64_t i = 0; i < width; ++i) yr[i] *= inv_sum[i];
  }
}

template <class T>
void log_softmax_tile(const T* x, T* y, int64_t n, int64_t inner, int64_t width) {
  T max[kSoftmaxTile], sum[kSoftmaxTile] = {};
  tile_max(x, n, inner, width, max);
  for (int64_t r = 0; r < n; ++r) {
    const T* xr = x + r * inner;
#pragma omp simd
    for (int64_t i = 0; i < width; ++i) sum[i] += fast_exp(xr[i] - max[i]);
  }
  T log_sum[kSoftmaxTile];
  for (int64_t i = 0; i < width; ++i) log_sum[i] = std::log(sum[i]);
  for (int64_t r = 0; r < n; ++r) {
    const T* xr = x + r * inner;
    T* yr = y + r * inner;
#pragma omp simd
    for (int64_t i = 0; i < width; ++i) yr[i] = (xr[i] - max[i]) - log_sum[i];
  }
}

template <class T>
void softmax_backward_tile(const T* y, const T* g, T* dx, int64_t n, int64_t inner, int64_t width) {
  T dot[kSoftmaxTile] = {};
  for (int64_t r = 0; r < n; ++r) {
#pragma omp simd
    for (int64_t i = 0; i < width; ++i) dot[i] += g[r * inner + i] * y[r * inner + i];
  }
  for (int64_t r = 0; r < n; ++r) {
    const int64_t at = r * inner;
#pragma omp simd
    for (int64_t i = 0; i < width; ++i) dx[at + i] = y[at + i] * (g[at + i] - dot[i]);
  }
}

template <class T>
void log_softmax_backward_tile(const T* y, const T* g, T* dx, int64_t n, int64_t inner, int64_t width) {
  T g_sum[kSoftmaxTile] = {};
  for (int64_t r = 0; r < n; ++r) {
#pragma omp simd
    for (int64_t i = 0; i < width; ++i) g_sum[i] += g[r * inner + i];
  }
  for (int64_t r = 0; r < n; ++r) {
    const int64_t at = r * inner;
#pragma omp simd
    for (int64_t i = 0; i < width; ++i) dx[at + i] = g[at + i] - fast_exp(y[at + i]) * g_sum[i];
  }
}

}  // namespace

// ---- row building blocks ------------------------------------------------------------------

template <class T>
LogSumExp<T> row_log_sum_exp(const T* x, int64_t n) {
  const T shift = row_shift(x, n);
  if (std::isnan(shift)) return {shift, shift};
  T sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) sum += fast_exp_nonpositive(x[j] - shift);
  return {shift, std::log(sum)};
}

// ---- entry points ----------------------------------------------------------------------

template <class T>
void softmax_forward(const T* x, T* y, int64_t outer, int64_t n, int64_t inner) {
  for_each_row_or_tile(
      outer, n, inner, [&](int64_t at) { softmax_row(x + at, y + at, n); },
      [&](int64_t at, int64_t width) { softmax_tile(x + at, y + at, n, inner, width); });
}

template <class T>
void log_softmax_forward(const T* x, T* y, int64_t outer, int64_t n, int64_t inner) {
  for_each_row_or_tile(
      outer, n, inner, [&](int64_t at) { log_softmax_row(x + at, y + at, n); },
      [&](int64_t at, int64_t width) { log_softmax_tile(x + at, y + at, n, inner, width); });
}

template <class T>
void softmax_backward(const T* y, const T* g, T* dx, int64_t outer, int64_t n, int64_t inner) {
  for_each_row_or_tile(
      outer, n, inner, [&](int64_t at) { softmax_backward_row(y + at, g + at, dx + at, n); },
      [&](int64_t at, int64_t width) { softmax_backward_tile(y + at, g + at, dx + at, n, inner, width); });
}

template <class T>
void log_softmax_backward(const T* y, const T* g, T* dx, int64_t outer, int64_t n, int64_t inner) {
  for_each_row_or_tile(
      outer, n, inner, [&](int64_t at) { log_softmax_backward_row(y + at, g + at, dx + at, n); },
      [&](int64_t at, int64_t width) { log_softmax_backward_tile(y + at, g + at, dx + at, n, inner, width); });
}

#define KILN_INSTANTIATE_SOFTMAX(T)                                                      \
  template void softmax_forward<T>(const T*, T*, int64_t, int64_t, int64_t);             \
  template void log_softmax_forward<T>(const T*, T*, int64_t, int64_t, int64_t);         \
  template void softmax_backward<T>(const T*, const T*, T*, int64_t, int64_t, int64_t);  \
  template void log_softmax_backward<T>(const T*, const T*, T*, int64_t, int64_t, int64_t); \
  template LogSumExp<T> row_log_sum_exp<T>(const T*, int64_t);
KILN_INSTANTIATE_SOFTMAX(float)
KILN_INSTANTIATE_SOFTMAX(double)
#undef KILN_INSTANTIATE_SOFTMAX

}  // namespace kiln::cpu
