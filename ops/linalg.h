// Matrix products. GEMMs run through ops/cpu/gemm (Eigen on our buffers, no copies;
// transposed views are read in place).
#pragma once

#include "kiln/core/tensor.h"

namespace kiln {

// NumPy matmul semantics: 1-D x 1-D is a dot product; 1-D operands are promoted to a
// row/column and the added dim removed; N-D operands batch over broadcast leading dims.
Tensor matmul(const Tensor& a, const Tensor& b);
// Batched (B, n, k) x (B, k, m) -> (B, n, m), no broadcasting.
Tensor bmm(const Tensor& a, const Tensor& b);
// x (..., in) · weight (out, in)^T + bias (out): PyTorch's layout for nn::Linear.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = {});

}  // namespace kiln
