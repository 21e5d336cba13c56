// The CUDA runtime and cuBLAS calls of kiln's backend files (allocator.cu, stream.cu, copy.cu,
// event.cu, device.cu, blas.cu), for tools/cuda_emulator/suite.sh: with them the whole library
// and its [cuda] tests build with the backend emulated on the CPU (cpemu.h includes this file).
//
// The model: one device, "cuda:0", whose memory is the host's heap; a stream is a token, and
// every launch, copy and GEMM has finished when its call returns, so synchronising waits for
// nothing; events read the host clock when recorded; cuBLAS's strided-batched GEMMs are host
// loops (column-major, as cuBLAS) accumulating in float (double for f64). Errors are modelled
// where kiln's tests provoke them: a device index other than 0, and allocations above the
// emulated device's memory (kCpemuDeviceBytes).
#pragma once

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <type_traits>

// ---- errors -----------------------------------------------------------------------------------

inline const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
  }
  return "cudaErrorUnknown";
}
inline const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
  }
  return "unknown error";
}

// ---- devices ----------------------------------------------------------------------------------

inline thread_local int cpemu_current_device = 0;

inline cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int device) {
  if (device != 0) return cpemu_fail(cudaErrorInvalidDevice);
  cpemu_current_device = device;
  return cudaSuccess;
}
inline cudaError_t cudaGetDevice(int* device) {
  *device = cpemu_current_device;
  return cudaSuccess;
}
struct cudaDeviceProp {
  char name[256];
};
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* props, int device) {
  if (device != 0) return cpemu_fail(cudaErrorInvalidDevice);
  std::strcpy(props->name, "cpemu (CUDA emulated on the CPU)");
  return cudaSuccess;
}

// ---- memory -----------------------------------------------------------------------------------

inline cudaError_t cudaFree(void* p) {
  std::free(p);
  return cudaSuccess;
}
inline cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  *total_bytes = kCpemuDeviceBytes;
  *free_bytes = kCpemuDeviceBytes;
  return cudaSuccess;
}
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4
};
inline cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind) {
  if (n) std::memmove(dst, src, n);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind kind, cudaStream_t) {
  return cudaMemcpy(dst, src, n, kind);
}
inline cudaError_t cudaMemcpyPeerAsync(void* dst, int, const void* src, int, size_t n, cudaStream_t) {
  return cudaMemcpy(dst, src, n, cudaMemcpyDefault);
}

// ---- streams and events -----------------------------------------------------------------------

constexpr unsigned cudaStreamNonBlocking = 1, cudaEventDisableTiming = 2;
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
  static int token;
  *s = &token;
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }

struct CUevent_st {
  std::chrono::steady_clock::time_point at;
};
typedef CUevent_st* cudaEvent_t;
inline cudaError_t cudaEventCreate(cudaEvent_t* e) {
  *e = new CUevent_st{};
  return cudaSuccess;
}
inline cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) { return cudaEventCreate(e); }
inline cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
  e->at = std::chrono::steady_clock::now();
  return cudaSuccess;
}
inline cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
inline cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned) { return cudaSuccess; }
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  *ms = std::chrono::duration<float, std::milli>(end->at - start->at).count();
  return cudaSuccess;
}

// ---- cuBLAS -----------------------------------------------------------------------------------

enum cublasStatus_t { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_INVALID_VALUE = 7 };
enum cublasOperation_t { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
enum cudaDataType { CUDA_R_32F = 0, CUDA_R_64F = 1, CUDA_R_16BF = 14 };
enum cublasComputeType_t { CUBLAS_COMPUTE_32F = 68, CUBLAS_COMPUTE_32F_FAST_TF32 = 77 };
enum cublasGemmAlgo_t { CUBLAS_GEMM_DEFAULT = -1 };
struct cublasContext {};
typedef cublasContext* cublasHandle_t;

inline const char* cublasGetStatusName(cublasStatus_t s) {
  return s == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "CUBLAS_STATUS_INVALID_VALUE";
}
inline const char* cublasGetStatusString(cublasStatus_t s) {
  return s == CUBLAS_STATUS_SUCCESS ? "success" : "an invalid value was used as an argument";
}
inline cublasStatus_t cublasCreate(cublasHandle_t* h) {
  *h = new cublasContext;
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasSetStream(cublasHandle_t, cudaStream_t) { return CUBLAS_STATUS_SUCCESS; }

namespace cpemu {

inline double load_element(const void* p, cudaDataType t, int64_t i) {
  switch (t) {
    case CUDA_R_32F: return static_cast<const float*>(p)[i];
    case CUDA_R_64F: return static_cast<const double*>(p)[i];
    case CUDA_R_16BF: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
  }
  die("cuBLAS stand-in: unknown data type");
}
inline void store_element(void* p, cudaDataType t, int64_t i, double v) {
  switch (t) {
    case CUDA_R_32F: static_cast<float*>(p)[i] = float(v); return;
    case CUDA_R_64F: static_cast<double*>(p)[i] = v; return;
    case CUDA_R_16BF: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(float(v)); return;
  }
  die("cuBLAS stand-in: unknown data type");
}

// C_b = alpha op(A_b) op(B_b) + beta C_b, column-major, for each batch b; sums in double
// for f64 C and in float otherwise (cuBLAS's compute types). C is not read when beta == 0.
inline cublasStatus_t gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, double alpha,
                           const void* A, cudaDataType at, int lda, long long sa, const void* B, cudaDataType bt, int ldb,
                           long long sb, double beta, void* C, cudaDataType ct, int ldc, long long sc, int batch) {
  if (m < 0 || n < 0 || k < 0 || batch < 0) return CUBLAS_STATUS_INVALID_VALUE;
  const bool wide = ct == CUDA_R_64F;
  for (int b = 0; b < batch; ++b)
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < m; ++i) {
        double acc_d = 0;
        float acc_f = 0;
        for (int p = 0; p < k; ++p) {
          const double a = load_element(A, at, sa * b + (ta == CUBLAS_OP_N ? i + int64_t(p) * lda : p + int64_t(i) * lda));
          const double v = load_element(B, bt, sb * b + (tb == CUBLAS_OP_N ? p + int64_t(j) * ldb : j + int64_t(p) * ldb));
          if (wide) acc_d += a * v;
          else acc_f += float(a) * float(v);
        }
        const int64_t c = sc * b + i + int64_t(j) * ldc;
        const double sum = wide ? acc_d : double(acc_f);
        store_element(C, ct, c, alpha * sum + (beta == 0 ? 0.0 : beta * load_element(C, ct, c)));
      }
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace cpemu

inline cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m,
                                                 int n, int k, const void* alpha, const void* A, cudaDataType at,
                                                 int lda, long long sa, const void* B, cudaDataType bt, int ldb,
                                                 long long sb, const void* beta, void* C, cudaDataType ct, int ldc,
                                                 long long sc, int batch, cublasComputeType_t, cublasGemmAlgo_t) {
  // alpha and beta are floats for every compute type kiln uses with this call.
  return cpemu::gemm(ta, tb, m, n, k, *static_cast<const float*>(alpha), A, at, lda, sa, B, bt, ldb, sb,
                     *static_cast<const float*>(beta), C, ct, ldc, sc, batch);
}
inline cublasStatus_t cublasDgemmStridedBatched(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m,
                                                int n, int k, const double* alpha, const double* A, int lda,
                                                long long sa, const double* B, int ldb, long long sb,
                                                const double* beta, double* C, int ldc, long long sc, int batch) {
  return cpemu::gemm(ta, tb, m, n, k, *alpha, A, CUDA_R_64F, lda, sa, B, CUDA_R_64F, ldb, sb, *beta, C, CUDA_R_64F,
                     ldc, sc, batch);
}
