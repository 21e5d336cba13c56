// What every kiln kernel file shares: launch geometry, the launch check, and warp/block
// reductions. Included by .cu files only (it uses CUDA device syntax).
//
// Conventions, so each kernel file reads the same way:
// - a launcher (declared with KILN_CUDA_ENTRY in a cuda/*.h header) takes raw pointers,
//   sizes and the device index, gets the device's stream with cuda::stream(device),
//   launches, and calls KILN_CUDA_LAUNCH_CHECK() (launch errors become kiln::Error);
// - elementwise-style kernels use one thread per element with a grid-stride loop, so any
//   size fits the grid cap; row-wise kernels (softmax, layer_norm, ...) use one block
//   (or one warp) per row and reduce with block_reduce below;
// - arithmetic runs in Acc<T> (float for f32 and bf16, double for f64, int64_t for i64).
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "kiln/cuda/check.h"
#include "kiln/cuda/stream.h"

#define KILN_CUDA_LAUNCH_CHECK() KILN_CUDA_CHECK(cudaGetLastError())

namespace kiln::cuda {

constexpr int kThreadsPerBlock = 256;
constexpr int kWarpSize = 32;
// Enough blocks to fill every SM of current GPUs many times over; beyond that the
// grid-stride loops give each thread more elements instead of more blocks.
constexpr int64_t kMaxBlocks = 65535;

// Blocks of `threads` threads for a grid-stride loop over n items.
inline unsigned blocks_for(int64_t n, int threads = kThreadsPerBlock) {
  return static_cast<unsigned>(std::clamp<int64_t>((n + threads - 1) / threads, 1, kMaxBlocks));
}

// Index of this thread in a 1-D grid, and the grid-stride step.
__device__ inline int64_t global_thread() { return int64_t(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ inline int64_t grid_stride() { return int64_t(gridDim.x) * blockDim.x; }

// The type arithmetic runs in for elements of type T: f32 for f32 and the 16-bit floats,
// f64 for f64, and the integer itself for integers (a float would lose digits of an i64).
template <class T> struct AccType { using type = float; };
template <> struct AccType<double> { using type = double; };
template <> struct AccType<int64_t> { using type = int64_t; };
template <class T> using Acc = typename AccType<T>::type;

struct SumOp {
  template <class T> __device__ T operator()(T a, T b) const { return a + b; }
};
struct MaxOp {
  // NaN wins, as on the CPU (a row with a NaN has a NaN max).
  template <class T> __device__ T operator()(T a, T b) const { return (a > b || a != a) ? a : b; }
};

// Combines v over the 32 lanes of a warp; every lane gets the result.
template <class T, class Op>
__device__ T warp_reduce(T v, Op op) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Combines v over all threads of the block; every thread gets the result. `scratch`
// holds one value per warp (__shared__ T scratch[kWarpSize] in the caller). Every
// thread of the block must call it, and it may be called again right after.
template <class T, class Op>
__device__ T block_reduce(T v, Op op, T identity, T* scratch) {
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int warps = (blockDim.x + kWarpSize - 1) / kWarpSize;
  v = warp_reduce(v, op);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : identity;
  return warp_reduce(v, op);
}

}  // namespace kiln::cuda
