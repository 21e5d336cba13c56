#include "kiln/ops/cpu/layer_norm.h"

#include <omp.h>

#include <cmath>
#include <vector>

#include "kiln/ops/cpu/loops.h"

namespace kiln::cpu {

namespace {

template <class T>
void layer_norm_row(const T* x, const T* weight, const T* bias, T* y, T* mean, T* rstd, int64_t n, double eps) {
  double sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) sum += x[j];
  const double mu = sum / static_cast<double>(n);
  double squares = 0;
#pragma omp simd reduction(+ : squares)
  for (int64_t j = 0; j < n; ++j) {
    const double d = x[j] - mu;
    squares += d * d;
  }
  const double rs = 1.0 / std::sqrt(squares / static_cast<double>(n) + eps);
  *mean = static_cast<T>(mu);
  *rstd = static_cast<T>(rs);
  const T mu_t = static_cast<T>(mu), rs_t = static_cast<T>(rs);
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) y[j] = (x[j] - mu_t) * rs_t * weight[j] + bias[j];
}

// dx of one row, and this row's share of dweight/dbias added into the caller's sums.
template <class T>
void layer_norm_backward_row(const T* x, T mean, T rstd, const T* weight, const T* g, T* dx, T* dweight_sum,
                             T* dbias_sum, int64_t n) {
  if (dx) {
    T sum_gw = 0, sum_gw_xhat = 0;
#pragma omp simd reduction(+ : sum_gw, sum_gw_xhat)
    for (int64_t j = 0; j < n; ++j) {
      const T gw = g[j] * weight[j];
      sum_gw += gw;
      sum_gw_xhat += gw * (x[j] - mean) * rstd;
    }
    const T mean_gw = sum_gw / static_cast<T>(n), mean_gw_xhat = sum_gw_xhat / static_cast<T>(n);
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      const T xhat = (x[j] - mean) * rstd;
      dx[j] = rstd * (g[j] * weight[j] - mean_gw - xhat * mean_gw_xhat);
    }
  }
  if (dweight_sum) {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) dweight_sum[j] += g[j] * (x[j] - mean) * rstd;
  }
  if (dbias_sum) {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) dbias_sum[j] += g[j];
  }
}

}  // namespace

template <class T>
void layer_norm_forward(const T* x, const T* weight, const T* bias, T* y, T* mean, T* rstd, int64_t rows,
                        int64_t n, double eps) {
#pragma omp parallel for schedule(static) if (rows * n > kParallelThreshold)
  for (int64_t r = 0; r < rows; ++r)
    layer_norm_row(x + r * n, weight, bias, y + r * n, mean + r, rstd + r, n, eps);
}

template <class T>
void layer_norm_backward(const T* x, const T* mean, const T* rstd, const T* weight, const T* g, T* dx, T* dweight,
                         T* dbias, int64_t rows, int64_t n) {
  const int threads = rows * n > kParallelThreshold ? omp_get_max_threads() : 1;
  // dweight and dbias sum over rows: each thread adds its rows into its own slice of
  // `partial` (no atomics, no races), and the slices are summed at the end.
  const bool param_grads = dweight || dbias;
  std::vector<T> partial(param_grads ? static_cast<size_t>(threads) * 2 * n : 0, T(0));
#pragma omp parallel num_threads(threads)
  {
    T* dweight_sum = nullptr;
    T* dbias_sum = nullptr;
    if (param_grads) {
      T* slice = partial.data() + static_cast<int64_t>(omp_get_thread_num()) * 2 * n;
      if (dweight) dweight_sum = slice;
      if (dbias) dbias_sum = slice + n;
    }
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r)
      layer_norm_backward_row(x + r * n, mean[r], rstd[r], weight, g + r * n, dx ? dx + r * n : nullptr,
                              dweight_sum, dbias_sum, n);
  }
  for (int64_t j = 0; j < n && param_grads; ++j) {
    T w = 0, b = 0;
    for (int t = 0; t < threads; ++t) {
      w += partial[static_cast<size_t>(t) * 2 * n + j];
      b += partial[static_cast<size_t>(t) * 2 * n + n + j];
    }
    if (dweight) dweight[j] = w;
    if (dbias) dbias[j] = b;
  }
}

template void layer_norm_forward<float>(const float*, const float*, const float*, float*, float*, float*, int64_t,
                                        int64_t, double);
template void layer_norm_forward<double>(const double*, const double*, const double*, double*, double*, double*,
                                         int64_t, int64_t, double);
template void layer_norm_backward<float>(const float*, const float*, const float*, const float*, const float*, float*,
                                         float*, float*, int64_t, int64_t);
template void layer_norm_backward<double>(const double*, const double*, const double*, const double*,
                                          const double*, double*, double*, double*, int64_t, int64_t);

}  // namespace kiln::cpu
