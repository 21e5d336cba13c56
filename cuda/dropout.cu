// CUDA dropout (see dropout.h).
#include "kiln/cuda/dropout.h"

#include <cmath>

#include "kiln/core/random.h"
#include "kiln/cuda/launch.cuh"

namespace kiln::cuda {

namespace {

// One thread per Philox block (grid-stride over the (n + 3) / 4 blocks): the thread draws
// the block's four words once and decides the four elements 4b .. 4b + 3 with them, the
// last block stopping at n. A draw is the top 24 bits of its word; the element survives
// when draw >= keep_threshold, as on the CPU.
template <class T>
__global__ void dropout_forward_kernel(const T* __restrict__ x, T* __restrict__ y, T* __restrict__ mask, int64_t n,
                                       uint32_t keep_threshold, T scale, uint64_t seed, uint64_t offset) {
  const int64_t blocks = (n + 3) / 4;
  for (int64_t b = global_thread(); b < blocks; b += grid_stride()) {
    const auto words = Philox::block(seed, offset + static_cast<uint64_t>(b));
    for (int k = 0; k < 4; ++k) {
      const int64_t i = 4 * b + k;
      if (i >= n) break;
      const T m = (words[k] >> 8) >= keep_threshold ? scale : T(0);
      mask[i] = m;
      y[i] = x[i] * m;
    }
  }
}

}  // namespace

template <class T>
void dropout_forward(const T* x, T* y, T* mask, int64_t n, double p, uint64_t seed, uint64_t offset, int device) {
  if (n == 0) return;
  // The threshold and scale are computed on the host exactly as the CPU kernel does, so
  // the two backends compare the same numbers: the masks match bit for bit.
  const uint32_t keep_threshold = static_cast<uint32_t>(std::ceil(p * 16777216.0));
  const T scale = p < 1 ? static_cast<T>(1.0 / (1.0 - p)) : T(0);
  cudaStream_t s = stream(device);
  dropout_forward_kernel<T><<<blocks_for((n + 3) / 4), kThreadsPerBlock, 0, s>>>(x, y, mask, n, keep_threshold, scale,
                                                                                 seed, offset);
  KILN_CUDA_LAUNCH_CHECK();
}

template void dropout_forward<float>(const float*, float*, float*, int64_t, double, uint64_t, uint64_t, int);
template void dropout_forward<double>(const double*, double*, double*, int64_t, double, uint64_t, uint64_t, int);

}  // namespace kiln::cuda
