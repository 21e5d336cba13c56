// Reductions. `dims` lists the dims to reduce (negative counts from the end; empty
// means all dims); keepdim keeps them as size 1, as in PyTorch.
#pragma once

#include <vector>

#include "kiln/core/tensor.h"

namespace kiln {

using Dims = std::vector<int64_t>;

Tensor sum(const Tensor& x);  // over everything, a 0-d tensor
Tensor sum(const Tensor& x, const Dims& dims, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, const Dims& dims, bool keepdim = false);
// Max/min values over one dim (gradient flows to the first extremal element) or all.
Tensor max(const Tensor& x);
Tensor max(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor min(const Tensor& x);
Tensor min(const Tensor& x, int64_t dim, bool keepdim = false);
// Index (i64) of the first max/min along dim.
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim = false);
// Variance / standard deviation with Bessel's `correction` (1 = unbiased, as PyTorch).
Tensor var(const Tensor& x, const Dims& dims, int64_t correction = 1, bool keepdim = false);
Tensor std(const Tensor& x, const Dims& dims, int64_t correction = 1, bool keepdim = false);
// log(sum(exp(x))) over dims, computed stably (max subtracted first).
Tensor logsumexp(const Tensor& x, const Dims& dims, bool keepdim = false);
// p-norm over dims (p = 2 by default; p = 1, 2, inf and any p > 0).
Tensor norm(const Tensor& x, double p = 2.0, const Dims& dims = {}, bool keepdim = false);

// Sums `x` down to `shape` (the inverse of broadcasting `shape` to x.shape()): the
// backward of every broadcasting op uses it.
Tensor sum_to(const Tensor& x, const Shape& shape);

}  // namespace kiln
