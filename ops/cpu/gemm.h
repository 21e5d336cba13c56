// GEMM on raw row-major buffers, with BLAS's argument convention:
//
//   C (m x n) = alpha * op(A) (m x k) * op(B) (k x n) + beta * C
//
// op(X) is X, or X^T when trans_x is set; X is then stored as the transposed matrix
// (k x m for A), row-major, which is exactly how a transposed view of a row-major
// tensor is laid out, so such views are read in place. Leading dims (lda, ldb, ldc)
// are the distances, in elements, between consecutive stored rows. C must not overlap
// A or B. With beta == 0, C is write-only (its old contents, even NaN, are ignored).
//
// The product runs in OpenBLAS when ops/cpu/blas_loader found it (see there; kiln
// does not link it), else in Eigen (Map over these buffers, no copies). Either way a
// GEMM called outside a parallel region uses all OpenMP threads, and one called
// inside a parallel region stays on the calling thread.
#pragma once

#include <cstdint>

namespace kiln::cpu {

// The library a GEMM runs in. gemm() chooses (`automatic`): OpenBLAS when it is
// loaded and can take the arguments (int-sized dims, leading dims BLAS accepts),
// Eigen otherwise. Naming one is for tests and benchmarks; asking for OpenBLAS when
// it is not loaded throws kiln::Error, and arguments BLAS cannot take still go to Eigen.
enum class GemmLibrary { automatic, eigen, openblas };

template <class T>
void gemm_with(GemmLibrary library, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha,
               const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

template <class T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// `batch` GEMMs of one shape and layout: entry i reads A + a_offsets[i] and
// B + b_offsets[i] and writes C + c_offsets[i] (offsets in elements). Offsets may
// repeat for A and B (a broadcast operand is read in place, never materialised), but
// each entry must write its own region of C.
//
// Threads go where they pay: small GEMMs run one per thread across the batch; large
// ones run one after another, each parallelised inside the GEMM. The two never nest.
template <class T>
void gemm_batched(int64_t batch, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha,
                  const T* A, int64_t lda, const int64_t* a_offsets, const T* B, int64_t ldb,
                  const int64_t* b_offsets, T beta, T* C, int64_t ldc, const int64_t* c_offsets);

}  // namespace kiln::cpu
