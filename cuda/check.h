// KILN_CUDA_CHECK: every CUDA runtime call in kiln goes through it, so a failure becomes
// a kiln::Error naming the call, CUDA's error and where it happened, never a silent
// wrong result. Backend-internal: includes the CUDA runtime header.
#pragma once

#include <cuda_runtime_api.h>

namespace kiln::cuda::detail {

// Throws kiln::Error("CUDA error: <call> failed with <cudaErrorName> (<message>) at <file>:<line>").
[[noreturn]] void throw_cuda_error(cudaError_t error, const char* call, const char* file, int line);

}  // namespace kiln::cuda::detail

#define KILN_CUDA_CHECK(call)                                                        \
  do {                                                                               \
    const cudaError_t kiln_cuda_error_ = (call);                                     \
    if (kiln_cuda_error_ != cudaSuccess)                                             \
      ::kiln::cuda::detail::throw_cuda_error(kiln_cuda_error_, #call, __FILE__, __LINE__); \
  } while (0)
