// Cross-entropy on the GPU, fused forward and backward: what ops/loss.cpp calls for CUDA
// tensors. Same formulas as ops/cpu/cross_entropy.h, on contiguous (rows, C) logits and
// one i64 class index per row (device pointers):
//   loss = (1 - e) (lse - x_target) + e (lse - mean_c x_c),   lse = max + log_sum
//   dlogits = (softmax(x) - q) * dloss,   q_c = (1 - e) [c == target] + e / C
// Rows whose target is ignore_index get loss 0 and gradient 0.
//
// No host synchronisation: the CPU op checks targets on the host and throws for one out
// of range; here that would stall the stream, so a target outside [0, C) (and not
// ignore_index) instead makes its row's loss, gradient and q NaN, which a mean or sum
// carries to the result. The count of non-ignored targets the mean divides by stays on
// the device too (the `valid` flags, summed by the op).
//
// Kernels (cuda/cross_entropy.cu): the forward gives a warp (C <= 1024) or a block to
// each row and reads it once for its max and sum of exponentials together (online
// softmax), once more only with label smoothing; the backward and q are elementwise,
// one thread per logit.
#pragma once

#include <cstdint>

#include "kiln/cuda/entry.h"

namespace kiln::cuda {

// Per row: loss, row_max and row_log_sum (the lse, kept for the backward), and valid =
// 1 unless the target is ignore_index (0).
template <class T>
KILN_CUDA_ENTRY(void cross_entropy_forward(const T* logits, const int64_t* target, T* loss, T* row_max,
                                           T* row_log_sum, T* valid, int64_t rows, int64_t classes,
                                           int64_t ignore_index, double smoothing, int device))

// dlogits[r] = (softmax(x_r) - q_r) * grad[r * grad_stride] * scale, grad_stride 0 for a
// scalar loss gradient; scale = 1 / max(*mean_count, 1) when mean_count (a device
// scalar: the number of non-ignored targets) is given, else 1.
template <class T>
KILN_CUDA_ENTRY(void cross_entropy_backward(const T* logits, const int64_t* target, const T* row_max,
                                            const T* row_log_sum, const T* grad, int64_t grad_stride,
                                            const T* mean_count, T* dlogits, int64_t rows, int64_t classes,
                                            int64_t ignore_index, double smoothing, int device))

// q (rows, C) as above; rows with an ignored target are all 0.
template <class T>
KILN_CUDA_ENTRY(void target_distribution(const int64_t* target, T* q, int64_t rows, int64_t classes,
                                         int64_t ignore_index, double smoothing, int device))

}  // namespace kiln::cuda
