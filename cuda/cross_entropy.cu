// Cross-entropy kernels (see cross_entropy.h for the formulas and the mapping of threads
// to work). Arithmetic in Acc<T>.
#include "kiln/cuda/cross_entropy.h"

#include "kiln/cuda/softmax.cuh"

namespace kiln::cuda {

namespace {

using namespace softmax_detail;

__device__ bool target_in_range(int64_t t, int64_t classes) { return t >= 0 && t < classes; }

// A team (warp or block) per row: one read for max and sum of exp(x - max), one more for
// mean_c (x_c - max) when smoothing; lane 0 writes the row's four outputs.
template <bool kWarpTeams, class T>
__global__ void cross_entropy_forward_kernel(const T* __restrict__ logits, const int64_t* __restrict__ target,
                                             T* __restrict__ loss, T* __restrict__ row_max,
                                             T* __restrict__ row_log_sum, T* __restrict__ valid, int64_t rows,
                                             int64_t classes, int64_t ignore_index, double smoothing) {
  using A = Acc<T>;
  __shared__ MaxSum<A> scratch[kWarpSize];
  __shared__ A sum_scratch[kWarpSize];
  const Team<kWarpTeams> team;
  const A e = A(smoothing);
  for (int64_t row = team.first; row < rows; row += team.count) {
    const T* x = logits + row * classes;
    MaxSum<A> ms = empty_max_sum<A>();
    for (int64_t c = team.lane; c < classes; c += team.size) ms = absorb(ms, A(x[c]));
    ms = team_merge<kWarpTeams>(ms, scratch);
    // As cpu::row_log_sum_exp: both parts NaN when the row's softmax is.
    const bool nan_row = is_nan_row(ms.max);
    const A max = nan_row ? A(NAN) : ms.max, log_sum = nan_row ? A(NAN) : log(ms.sum);
    A mean_shifted = 0;  // mean_c (x_c - max), only needed with smoothing
    if (smoothing != 0) {
      for (int64_t c = team.lane; c < classes; c += team.size) mean_shifted += A(x[c]) - max;
      mean_shifted = team_sum<kWarpTeams>(mean_shifted, sum_scratch) / A(classes);
    }
    if (team.lane != 0) continue;
    const int64_t t = target[row];
    row_max[row] = T(max);
    row_log_sum[row] = T(log_sum);
    valid[row] = t == ignore_index ? T(0) : T(1);
    if (t == ignore_index) {
      loss[row] = T(0);
    } else if (!target_in_range(t, classes)) {
      loss[row] = T(NAN);
    } else {
      // lse - x_t = log_sum - (x_t - max), formed so for accuracy with large logits.
      const A nll = log_sum - (A(x[t]) - max);
      loss[row] = T((1 - e) * nll + e * (log_sum - mean_shifted));
    }
  }
}

// One thread per logit (grid-stride): dx = (p - q) * dloss, p = exp((x - max) - log_sum).
template <class T>
__global__ void cross_entropy_backward_kernel(const T* __restrict__ logits, const int64_t* __restrict__ target,
                                              const T* __restrict__ row_max, const T* __restrict__ row_log_sum,
                                              const T* __restrict__ grad, int64_t grad_stride,
                                              const T* __restrict__ mean_count, T* __restrict__ dlogits,
                                              int64_t rows, int64_t classes, int64_t ignore_index, double smoothing) {
  using A = Acc<T>;
  const A off_target = A(smoothing / static_cast<double>(classes));  // q_c for c != target
  const A on_target_extra = A(1 - smoothing);                        // q_target - q_c
  const A scale = mean_count ? A(1) / max(A(*mean_count), A(1)) : A(1);
  for (int64_t i = global_thread(); i < rows * classes; i += grid_stride()) {
    const int64_t r = i / classes, c = i % classes, t = target[r];
    if (t == ignore_index) {
      dlogits[i] = T(0);
      continue;
    }
    if (!target_in_range(t, classes)) {
      dlogits[i] = T(NAN);
      continue;
    }
    const A dloss = A(grad[r * grad_stride]) * scale;
    const A p = exp((A(logits[i]) - A(row_max[r])) - A(row_log_sum[r]));
    const A q = off_target + (c == t ? on_target_extra : A(0));
    dlogits[i] = T((p - q) * dloss);
  }
}

template <class T>
__global__ void target_distribution_kernel(const int64_t* __restrict__ target, T* __restrict__ q, int64_t rows,
                                           int64_t classes, int64_t ignore_index, double smoothing) {
  const T off_target = T(smoothing / static_cast<double>(classes));
  const T on_target = T(smoothing / static_cast<double>(classes) + (1 - smoothing));
  for (int64_t i = global_thread(); i < rows * classes; i += grid_stride()) {
    const int64_t t = target[i / classes], c = i % classes;
    if (t == ignore_index) q[i] = T(0);
    else if (!target_in_range(t, classes)) q[i] = T(NAN);
    else q[i] = c == t ? on_target : off_target;
  }
}

}  // namespace

template <class T>
void cross_entropy_forward(const T* logits, const int64_t* target, T* loss, T* row_max, T* row_log_sum, T* valid,
                           int64_t rows, int64_t classes, int64_t ignore_index, double smoothing, int device) {
  if (rows == 0) return;
  cudaStream_t s = stream(device);
  if (classes <= kWarpRowLimit) {
    cross_entropy_forward_kernel<true><<<team_blocks(rows, true), kThreadsPerBlock, 0, s>>>(
        logits, target, loss, row_max, row_log_sum, valid, rows, classes, ignore_index, smoothing);
  } else {
    cross_entropy_forward_kernel<false><<<team_blocks(rows, false), kThreadsPerBlock, 0, s>>>(
        logits, target, loss, row_max, row_log_sum, valid, rows, classes, ignore_index, smoothing);
  }
  KILN_CUDA_LAUNCH_CHECK();
}

template <class T>
void cross_entropy_backward(const T* logits, const int64_t* target, const T* row_max, const T* row_log_sum,
                            const T* grad, int64_t grad_stride, const T* mean_count, T* dlogits, int64_t rows,
                            int64_t classes, int64_t ignore_index, double smoothing, int device) {
  if (rows * classes == 0) return;
  cross_entropy_backward_kernel<<<blocks_for(rows * classes), kThreadsPerBlock, 0, stream(device)>>>(
      logits, target, row_max, row_log_sum, grad, grad_stride, mean_count, dlogits, rows, classes, ignore_index,
      smoothing);
  KILN_CUDA_LAUNCH_CHECK();
}

template <class T>
void target_distribution(const int64_t* target, T* q, int64_t rows, int64_t classes, int64_t ignore_index,
                         double smoothing, int device) {
  if (rows * classes == 0) return;
  target_distribution_kernel<<<blocks_for(rows * classes), kThreadsPerBlock, 0, stream(device)>>>(
      target, q, rows, classes, ignore_index, smoothing);
  KILN_CUDA_LAUNCH_CHECK();
}

#define KILN_INSTANTIATE_CROSS_ENTROPY(T)                                                                          \
  template void cross_entropy_forward<T>(const T*, const int64_t*, T*, T*, T*, T*, int64_t, int64_t, int64_t,     \
                                         double, int);                                                            \
  template void cross_entropy_backward<T>(const T*, const int64_t*, const T*, const T*, const T*, int64_t,        \
                                          const T*, T*, int64_t, int64_t, int64_t, double, int);                  \
  template void target_distribution<T>(const int64_t*, T*, int64_t, int64_t, int64_t, double, int);
KILN_INSTANTIATE_CROSS_ENTROPY(float)
KILN_INSTANTIATE_CROSS_ENTROPY(double)
#undef KILN_INSTANTIATE_CROSS_ENTROPY

}  // namespace kiln::cuda
