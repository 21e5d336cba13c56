// The first CUDA kernel: proves that nvcc, the architectures, the launch path and the
// error checks work end to end (tests/test_cuda.cpp checks it against the CPU).
// Like every kiln kernel it sees raw device pointers, never a Tensor.
#pragma once

#include <cstdint>

namespace kiln::cuda {

// y[i] += alpha * x[i] for 0 <= i < n; x and y are device pointers. Runs on the legacy
// default stream and returns once the kernel is queued; launch errors throw kiln::Error.
// For its own test only, on buffers it allocates: kiln's ops run on a non-blocking stream
// (stream.h) that this launch is not ordered with.
void axpy(int64_t n, float alpha, const float* x, float* y);

}  // namespace kiln::cuda
