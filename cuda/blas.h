// Matrix products on the GPU through cuBLAS, in kiln's row-major convention (the same
// arguments as cpu::gemm in ops/cpu/gemm.h). Backend-internal.
//
// cuBLAS is column-major. A row-major matrix read as column-major is its transpose, so
// C = op(A) op(B) (row-major) is computed as C^T = op(B)^T op(A)^T (column-major): the
// same call with A and B swapped, and m and n swapped. No data is transposed.
#pragma once

#include <cstdint>

namespace kiln::cuda {

// For each b < batch: C_b = alpha * op(A_b) * op(B_b) + beta * C_b, where X_b starts
// stride_x elements after X_{b-1}; all pointers on `device`, row-major with leading dims
// lda, ldb, ldc. f32 uses TF32 tensor cores when allow_tf32() is on. Queued on the
// device's stream; cuBLAS failures throw kiln::Error.
template <class T>
void gemm_strided_batched(int device, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha,
                          const T* A, int64_t lda, int64_t stride_a, const T* B, int64_t ldb, int64_t stride_b,
                          T beta, T* C, int64_t ldc, int64_t stride_c, int64_t batch);

}  // namespace kiln::cuda
