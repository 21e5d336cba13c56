// Matrix products on the GPU through cuBLAS, in kiln's row-major convention (the same
// arguments as cpu::gemm in ops/cpu/gemm.h). Declared with KILN_CUDA_ENTRY (cuda/entry.h),
// so ops call them in every build.
//
// cuBLAS is column-major. A row-major matrix read as column-major is its transpose, so
// C = op(A) op(B) (row-major) is computed as C^T = op(B)^T op(A)^T (column-major): the
// same call with A and B swapped, and m and n swapped. No data is transposed.
#pragma once

#include <cstdint>

#include "kiln/core/dtype.h"
#include "kiln/cuda/entry.h"

namespace kiln::cuda {

// For each b < batch: C_b = alpha * op(A_b) * op(B_b) + beta * C_b, where X_b starts
// stride_x elements after X_{b-1}; all pointers on `device`, row-major with leading dims
// lda, ldb, ldc. T is float (TF32 tensor cores when allow_tf32() is on) or double.
// Queued on the device's stream; cuBLAS failures throw kiln::Error.
template <class T>
KILN_CUDA_ENTRY(void gemm_strided_batched(int device, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                                          T alpha, const T* A, int64_t lda, int64_t stride_a, const T* B, int64_t ldb,
                                          int64_t stride_b, T beta, T* C, int64_t ldc, int64_t stride_c,
                                          int64_t batch))

// The same product for mixed precision: bf16 A and B, f32 accumulation on tensor cores
// (CUBLAS_COMPUTE_32F), alpha and beta in f32; C in bf16 (rounded once, at the end) or,
// for autocast's products, in f32 (not rounded: the f32 accumulator is the result).
KILN_CUDA_ENTRY(void gemm_strided_batched_bf16(int device, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                                               float alpha, const bfloat16* A, int64_t lda, int64_t stride_a,
                                               const bfloat16* B, int64_t ldb, int64_t stride_b, float beta,
                                               bfloat16* C, int64_t ldc, int64_t stride_c, int64_t batch))
KILN_CUDA_ENTRY(void gemm_strided_batched_bf16(int device, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                                               float alpha, const bfloat16* A, int64_t lda, int64_t stride_a,
                                               const bfloat16* B, int64_t ldb, int64_t stride_b, float beta,
                                               float* C, int64_t ldc, int64_t stride_c, int64_t batch))

}  // namespace kiln::cuda
