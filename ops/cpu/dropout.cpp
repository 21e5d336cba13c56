#include "kiln/ops/cpu/dropout.h"

#include <algorithm>
#include <cmath>

#include "kiln/core/random.h"
#include "kiln/ops/cpu/loops.h"

namespace kiln::cpu {

namespace {

// Philox blocks per task: 256 elements, whose draws fit in a small stack buffer.
constexpr int64_t kChunkBlocks = 64;

// words[4 * b + k] = word k of Philox block (first + b), for b < blocks. A separate loop
// so the compiler vectorises Philox across blocks (its 32x32->64-bit multiplies map to
// vpmuludq): about 30x faster than one block at a time.
void philox_words(uint64_t seed, uint64_t first, int64_t blocks, uint32_t* words) {
#pragma omp simd
  for (int64_t b = 0; b < blocks; ++b) {
    const auto w = Philox::block(seed, first + static_cast<uint64_t>(b));
    for (int k = 0; k < 4; ++k) words[4 * b + k] = w[k];
  }
}

}  // namespace

template <class T>
void dropout_forward(const T* x, T* y, T* mask, int64_t n, double p, uint64_t seed, uint64_t offset) {
  // A draw is the top 24 bits of a Philox word, uniform on [0, 2^24). It survives when
  // draw >= p * 2^24, i.e. draw >= ceil(p * 2^24): probability 1 - p, never when p == 1.
  const uint32_t keep_threshold = static_cast<uint32_t>(std::ceil(p * 16777216.0));
  const T scale = p < 1 ? static_cast<T>(1.0 / (1.0 - p)) : T(0);
  const int64_t blocks = (n + 3) / 4, chunks = (blocks + kChunkBlocks - 1) / kChunkBlocks;
#pragma omp parallel for schedule(static) if (n > kParallelThreshold)
  for (int64_t c = 0; c < chunks; ++c) {
    uint32_t words[4 * kChunkBlocks];
    const int64_t first_block = c * kChunkBlocks;
    philox_words(seed, offset + static_cast<uint64_t>(first_block), std::min(kChunkBlocks, blocks - first_block),
                 words);
    const int64_t first = 4 * first_block, count = std::min(4 * kChunkBlocks, n - first);
#pragma omp simd
    for (int64_t j = 0; j < count; ++j) {
      const T m = (words[j] >> 8) >= keep_threshold ? scale : T(0);
      mask[first + j] = m;
      y[first + j] = x[first + j] * m;
    }
  }
}

template void dropout_forward<float>(const float*, float*, float*, int64_t, double, uint64_t, uint64_t);
template void dropout_forward<double>(const double*, double*, double*, int64_t, double, uint64_t, uint64_t);

}  // namespace kiln::cpu
