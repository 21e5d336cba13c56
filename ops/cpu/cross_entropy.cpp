#include "kiln/ops/cpu/cross_entropy.h"

#include <algorithm>

#include "kiln/ops/cpu/fast_exp.h"
#include "kiln/ops/cpu/loops.h"
#include "kiln/ops/cpu/softmax.h"

namespace kiln::cpu {

TargetScan scan_targets(const int64_t* target, int64_t rows, int64_t classes, int64_t ignore_index) {
  TargetScan scan;
  for (int64_t r = 0; r < rows; ++r) {
    if (target[r] == ignore_index) continue;
    if (target[r] < 0 || target[r] >= classes) {
      scan.first_invalid = r;
      return scan;
    }
    ++scan.valid;
  }
  return scan;
}

template <class T>
void cross_entropy_forward(const T* logits, const int64_t* target, T* loss, T* row_max, T* row_log_sum,
                           int64_t rows, int64_t classes, int64_t ignore_index, double smoothing) {
  const T e = static_cast<T>(smoothing);
#pragma omp parallel for schedule(static) if (rows * classes > kParallelThreshold)
  for (int64_t r = 0; r < rows; ++r) {
    const T* x = logits + r * classes;
    const LogSumExp<T> lse = row_log_sum_exp(x, classes);
    row_max[r] = lse.max;
    row_log_sum[r] = lse.log_sum;
    if (target[r] == ignore_index) {
      loss[r] = 0;
      continue;
    }
    // lse - x_c = log_sum - (x_c - max), formed so for accuracy with large logits.
    const T nll = lse.log_sum - (x[target[r]] - lse.max);
    T mean_shifted = 0;  // mean_c (x_c - max), only needed with smoothing
    if (smoothing != 0) {
#pragma omp simd reduction(+ : mean_shifted)
      for (int64_t c = 0; c < classes; ++c) mean_shifted += x[c] - lse.max;
      mean_shifted /= static_cast<T>(classes);
    }
    loss[r] = (1 - e) * nll + e * (lse.log_sum - mean_shifted);
  }
}

template <class T>
void cross_entropy_backward(const T* logits, const int64_t* target, const T* row_max, const T* row_log_sum,
                            const T* grad, int64_t grad_stride, double scale, T* dlogits, int64_t rows,
                            int64_t classes, int64_t ignore_index, double smoothing) {
  const T off_target = static_cast<T>(smoothing / static_cast<double>(classes));  // q_c for c != target
  const T on_target_extra = static_cast<T>(1 - smoothing);                       // q_target - q_c
#pragma omp parallel for schedule(static) if (rows * classes > kParallelThreshold)
  for (int64_t r = 0; r < rows; ++r) {
    T* dx = dlogits + r * classes;
    if (target[r] == ignore_index) {
      std::fill_n(dx, classes, T(0));
      continue;
    }
    const T* x = logits + r * classes;
    const T max = row_max[r], log_sum = row_log_sum[r];
    const T dloss = grad[r * grad_stride] * static_cast<T>(scale);
#pragma omp simd
    for (int64_t c = 0; c < classes; ++c) dx[c] = (fast_exp((x[c] - max) - log_sum) - off_target) * dloss;
    dx[target[r]] -= on_target_extra * dloss;
  }
}

template <class T>
void target_distribution(const int64_t* target, T* q, int64_t rows, int64_t classes, int64_t ignore_index,
                         double smoothing) {
  const T off_target = static_cast<T>(smoothing / static_cast<double>(classes));
  for (int64_t r = 0; r < rows; ++r) {
    T* qr = q + r * classes;
    const bool ignored = target[r] == ignore_index;
    std::fill_n(qr, classes, ignored ? T(0) : off_target);
    if (!ignored) qr[target[r]] += static_cast<T>(1 - smoothing);
  }
}

#define KILN_INSTANTIATE_CROSS_ENTROPY(T)                                                                    \
  template void cross_entropy_forward<T>(const T*, const int64_t*, T*, T*, T*, int64_t, int64_t, int64_t, double); \
  template void cross_entropy_backward<T>(const T*, const int64_t*, const T*, const T*, const T*, int64_t, double, \
                                          T*, int64_t, int64_t, int64_t, double);                                  \
  template void target_distribution<T>(const int64_t*, T*, int64_t, int64_t, int64_t, double);
KILN_INSTANTIATE_CROSS_ENTROPY(float)
KILN_INSTANTIATE_CROSS_ENTROPY(double)
#undef KILN_INSTANTIATE_CROSS_ENTROPY

}  // namespace kiln::cpu
