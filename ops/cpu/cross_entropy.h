// Cross-entropy kernels on contiguous (rows, C) logits with one class index per row.
//
// With label smoothing e, the target of a row is the distribution
//   q_c = (1 - e) [c == target] + e / C
// and its loss is -sum_c q_c log softmax(x)_c, which simplifies to
//   loss = (1 - e) (lse - x_target) + e (lse - mean_c x_c),   lse = log sum_c exp(x_c)
// so one pass over the row (max, then sum of exps) gives it. Rows whose target is
// ignore_index get loss 0 and gradient 0. The backward needs only the logits and the
// lse kept by the forward (as max and log_sum, see LogSumExp in softmax.h):
// dlogits = (softmax(x) - q) * dloss.
#pragma once

#include <cstdint>

namespace kiln::cpu {

struct TargetScan {
  int64_t valid = 0;          // targets that are not ignore_index
  int64_t first_invalid = -1; // index of the first target outside [0, C), or -1
};

// Counts the non-ignored targets and finds the first out-of-range one (serially, so the
// op can throw before any parallel kernel runs).
TargetScan scan_targets(const int64_t* target, int64_t rows, int64_t classes, int64_t ignore_index);

// loss[r], and lse[r] = row_max[r] + row_log_sum[r] for the backward, for every row.
template <class T>
void cross_entropy_forward(const T* logits, const int64_t* target, T* loss, T* row_max, T* row_log_sum,
                           int64_t rows, int64_t classes, int64_t ignore_index, double smoothing);

// dlogits[r] = (softmax(x_r) - q_r) * grad[r * grad_stride] * scale; pass grad_stride 0
// for a scalar (mean/sum) loss gradient.
template <class T>
void cross_entropy_backward(const T* logits, const int64_t* target, const T* row_max, const T* row_log_sum,
                            const T* grad, int64_t grad_stride, double scale, T* dlogits, int64_t rows,
                            int64_t classes, int64_t ignore_index, double smoothing);

// q (rows, C) as defined above; rows with an ignored target are all 0.
template <class T>
void target_distribution(const int64_t* target, T* q, int64_t rows, int64_t classes, int64_t ignore_index,
                         double smoothing);

}  // namespace kiln::cpu
