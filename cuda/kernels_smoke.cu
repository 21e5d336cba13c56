// axpy on the GPU: one thread per element, grid-stride so any n fits any grid.
#include "kiln/cuda/kernels_smoke.h"

#include <algorithm>

#include "kiln/cuda/check.h"

namespace kiln::cuda {

namespace {

constexpr int kThreadsPerBlock = 256;
// Enough blocks to fill every SM of current GPUs several times over; beyond that,
// the grid-stride loop gives each thread more elements instead of more blocks.
constexpr int64_t kMaxBlocks = 4096;

__global__ void axpy_kernel(int64_t n, float alpha, const float* __restrict__ x, float* __restrict__ y) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    y[i] += alpha * x[i];
  }
}

}  // namespace

void axpy(int64_t n, float alpha, const float* x, float* y) {
  if (n <= 0) return;
  const int64_t blocks = std::min((n + kThreadsPerBlock - 1) / kThreadsPerBlock, kMaxBlocks);
  axpy_kernel<<<static_cast<unsigned>(blocks), kThreadsPerBlock>>>(n, alpha, x, y);
  KILN_CUDA_CHECK(cudaGetLastError());  // launch errors (bad configuration, no device...)
}

}  // namespace kiln::cuda
