// cuBLAS: one handle per device, bound to kiln's stream (see blas.h).
#include "kiln/cuda/blas.h"

#include <cublas_v2.h>

#include <atomic>
#include <limits>
#include <mutex>
#include <vector>

#include "kiln/core/error.h"
#include "kiln/cuda/check.h"
#include "kiln/cuda/device.h"
#include "kiln/cuda/stream.h"

#define KILN_CUBLAS_CHECK(call)                                                                          \
  do {                                                                                                   \
    const cublasStatus_t kiln_cublas_status_ = (call);                                                   \
    if (kiln_cublas_status_ != CUBLAS_STATUS_SUCCESS)                                                    \
      throw ::kiln::Error(::kiln::detail::str("cuBLAS error: ", #call, " failed with ",                  \
                                              cublasGetStatusName(kiln_cublas_status_), " (",            \
                                              cublasGetStatusString(kiln_cublas_status_), ") at ", __FILE__, \
                                              ":", __LINE__));                                          \
  } while (0)

namespace kiln::cuda {

namespace {

std::atomic<bool> g_allow_tf32{false};

// The device's handle, created on first use and bound to its stream. Never destroyed
// (see stream.cu: teardown order at exit).
cublasHandle_t handle(int device) {
  static std::mutex mutex;
  static auto* handles = new std::vector<cublasHandle_t>;
  cudaStream_t s = stream(device);  // also checks the index and makes the device current
  std::lock_guard<std::mutex> lock(mutex);
  if (handles->size() <= static_cast<size_t>(device)) handles->resize(device + 1, nullptr);
  cublasHandle_t& h = (*handles)[device];
  if (h == nullptr) {
    KILN_CUBLAS_CHECK(cublasCreate(&h));
    KILN_CUBLAS_CHECK(cublasSetStream(h, s));
  }
  return h;
}

int checked_int(int64_t v, const char* what) {
  KILN_CHECK(v >= 0 && v <= std::numeric_limits<int>::max(), "cuda gemm: ", what, " = ", v,
             " does not fit cuBLAS's int arguments");
  return static_cast<int>(v);
}

cublasOperation_t op(bool transpose) { return transpose ? CUBLAS_OP_T : CUBLAS_OP_N; }

}  // namespace

void set_allow_tf32(bool allow) { g_allow_tf32.store(allow); }
bool allow_tf32() { return g_allow_tf32.load(); }

template <>
void gemm_strided_batched<float>(int device, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                                 const float* A, int64_t lda, int64_t stride_a, const float* B, int64_t ldb,
                                 int64_t stride_b, float beta, float* C, int64_t ldc, int64_t stride_c,
                                 int64_t batch) {
  if (m == 0 || n == 0 || batch == 0) return;
  const cublasComputeType_t compute = allow_tf32() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  // Column-major C^T (n x m) = op(B)^T (n x k) * op(A)^T (k x m): see blas.h.
  KILN_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      handle(device), op(trans_b), op(trans_a), checked_int(n, "n"), checked_int(m, "m"), checked_int(k, "k"),
      &alpha, B, CUDA_R_32F, checked_int(ldb, "ldb"), stride_b, A, CUDA_R_32F, checked_int(lda, "lda"), stride_a,
      &beta, C, CUDA_R_32F, checked_int(ldc, "ldc"), stride_c, checked_int(batch, "batch"), compute,
      CUBLAS_GEMM_DEFAULT));
}

template <>
void gemm_strided_batched<double>(int device, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                                  double alpha, const double* A, int64_t lda, int64_t stride_a, const double* B,
                                  int64_t ldb, int64_t stride_b, double beta, double* C, int64_t ldc,
                                  int64_t stride_c, int64_t batch) {
  if (m == 0 || n == 0 || batch == 0) return;
  KILN_CUBLAS_CHECK(cublasDgemmStridedBatched(handle(device), op(trans_b), op(trans_a), checked_int(n, "n"),
                                              checked_int(m, "m"), checked_int(k, "k"), &alpha, B,
                                              checked_int(ldb, "ldb"), stride_b, A, checked_int(lda, "lda"),
                                              stride_a, &beta, C, checked_int(ldc, "ldc"), stride_c,
                                              checked_int(batch, "batch")));
}

namespace {

// bf16 A and B, C of type c_type (bf16 or f32), f32 accumulation.
void gemm_bf16_operands(int device, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                        const bfloat16* A, int64_t lda, int64_t stride_a, const bfloat16* B, int64_t ldb,
                        int64_t stride_b, float beta, void* C, cudaDataType c_type, int64_t ldc, int64_t stride_c,
                        int64_t batch) {
  if (m == 0 || n == 0 || batch == 0) return;
  KILN_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      handle(device), op(trans_b), op(trans_a), checked_int(n, "n"), checked_int(m, "m"), checked_int(k, "k"),
      &alpha, B, CUDA_R_16BF, checked_int(ldb, "ldb"), stride_b, A, CUDA_R_16BF, checked_int(lda, "lda"), stride_a,
      &beta, C, c_type, checked_int(ldc, "ldc"), stride_c, checked_int(batch, "batch"), CUBLAS_COMPUTE_32F,
      CUBLAS_GEMM_DEFAULT));
}

}  // namespace

void gemm_strided_batched_bf16(int device, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                               const bfloat16* A, int64_t lda, int64_t stride_a, const bfloat16* B, int64_t ldb,
                               int64_t stride_b, float beta, bfloat16* C, int64_t ldc, int64_t stride_c,
                               int64_t batch) {
  gemm_bf16_operands(device, trans_a, trans_b, m, n, k, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C,
                     CUDA_R_16BF, ldc, stride_c, batch);
}

void gemm_strided_batched_bf16(int device, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                               const bfloat16* A, int64_t lda, int64_t stride_a, const bfloat16* B, int64_t ldb,
                               int64_t stride_b, float beta, float* C, int64_t ldc, int64_t stride_c,
                               int64_t batch) {
  gemm_bf16_operands(device, trans_a, trans_b, m, n, k, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C,
                     CUDA_R_32F, ldc, stride_c, batch);
}

}  // namespace kiln::cuda
