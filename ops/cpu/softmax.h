// Softmax and log-softmax kernels, forward and backward.
//
// The input is contiguous and viewed as (outer, n, inner); the op normalises over n.
// Each of the outer * inner "rows" is n elements spaced `inner` apart:
//   - inner == 1 (softmax over the last dim, the usual case): rows are contiguous and
//     each is processed in three short passes (max, exp-and-sum, scale) while it sits
//     in L1, so memory is read once and written once.
//   - inner > 1: rather than transposing, tiles of up to kSoftmaxTile neighbouring
//     columns are processed together, which keeps every access contiguous and
//     vectorised along the inner dim.
// Both run OpenMP-parallel over rows (or tiles) above a size threshold.
#pragma once

#include <cstdint>

namespace kiln::cpu {

inline constexpr int64_t kSoftmaxTile = 64;

// y = exp(x - max) / sum(exp(x - max))
template <class T>
void softmax_forward(const T* x, T* y, int64_t outer, int64_t n, int64_t inner);
// y = x - max - log(sum(exp(x - max)))
template <class T>
void log_softmax_forward(const T* x, T* y, int64_t outer, int64_t n, int64_t inner);
// From the forward output y and the output gradient g: dx = y * (g - sum(g * y)).
template <class T>
void softmax_backward(const T* y, const T* g, T* dx, int64_t outer, int64_t n, int64_t inner);
// From the forward output y = log p: dx = g - p * sum(g).
template <class T>
void log_softmax_backward(const T* y, const T* g, T* dx, int64_t outer, int64_t n, int64_t inner);

// A building block for other fused kernels (cross-entropy), on one contiguous row:
// log(sum(exp(x))) = max + log_sum, log_sum = log(sum(exp(x - max))): shifting by the
// max keeps exp from overflowing. The two parts are kept apart so that x - lse can be
// formed as (x - max) - log_sum: rounding their sum would cost precision when the
// logits are large (at 1e4, an f32 ulp is 1e-3). Both are NaN when the row holds a NaN
// or an infinite max (its softmax is NaN, as in PyTorch).
template <class T>
struct LogSumExp {
  T max;
  T log_sum;
};
template <class T>
LogSumExp<T> row_log_sum_exp(const T* x, int64_t n);

}  // namespace kiln::cpu
