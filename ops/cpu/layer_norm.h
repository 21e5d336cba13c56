// Layer normalisation kernels on a contiguous (rows, n) array: each row is normalised
// over its n elements, then scaled and shifted per column.
//
//   mean = sum(x) / n,  rstd = 1 / sqrt(sum((x - mean)^2) / n + eps)
//   xhat = (x - mean) * rstd,  y = xhat * weight + bias
//
// The forward keeps mean and rstd per row for the backward. Statistics are accumulated
// in double (also for f32) and the variance is the mean of squared deviations from the
// mean, computed in a second sweep over the row while it is still in L1: exact as a
// two-pass algorithm, no E[x^2] - E[x]^2 cancellation, and one read of x from memory.
#pragma once

#include <cstdint>

namespace kiln::cpu {

// weight and bias are length-n arrays (the op passes ones/zeros when the user gave none).
// mean and rstd receive one value per row.
template <class T>
void layer_norm_forward(const T* x, const T* weight, const T* bias, T* y, T* mean, T* rstd, int64_t rows,
                        int64_t n, double eps);

// With xhat as above and gw = g * weight:
//   dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat))      (means over the row)
//   dweight = sum over rows of g * xhat,  dbias = sum over rows of g
// Any of dx, dweight, dbias may be null when that gradient is not needed.
template <class T>
void layer_norm_backward(const T* x, const T* mean, const T* rstd, const T* weight, const T* g, T* dx, T* dweight,
                         T* dbias, int64_t rows, int64_t n);

}  // namespace kiln::cpu
