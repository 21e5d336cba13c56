// Sum kernels on a tensor viewed as (outer, R, inner), contiguous: reduce the middle.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

namespace kiln::cpu {

// out[o, i] = sum_r in[o, r, i]
template <class T>
void sum_middle(const T* in, T* out, int64_t outer, int64_t R, int64_t inner) {
  if (inner == 1) {
    // Row sums: accumulate in double for f32 so long rows stay accurate.
    using Acc = std::conditional_t<std::is_same_v<T, float>, double, T>;
#pragma omp parallel for schedule(static) if (outer * R > 32768 && outer > 1)
    for (int64_t o = 0; o < outer; ++o) {
      Acc acc = 0;
      const T* row = in + o * R;
#pragma omp simd reduction(+ : acc)
      for (int64_t r = 0; r < R; ++r) acc += row[r];
      out[o] = static_cast<T>(acc);
    }
    return;
  }
  // Column sums: add rows of a chunk of `inner` elements, which vectorises. Tasks are
  // (outer, chunk) pairs so a single outer (e.g. a bias gradient) still uses all threads.
  constexpr int64_t kChunk = 512;
  const int64_t chunks = (inner + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (outer * R * inner > 32768)
  for (int64_t task = 0; task < outer * chunks; ++task) {
    const int64_t o = task / chunks, i0 = (task % chunks) * kChunk;
    const int64_t len = std::min(kChunk, inner - i0);
    T* dst = out + o * inner + i0;
    for (int64_t i = 0; i < len; ++i) dst[i] = 0;
    for (int64_t r = 0; r < R; ++r) {
      const T* src = in + (o * R + r) * inner + i0;
      for (int64_t i = 0; i < len; ++i) dst[i] += src[i];
    }
  }
}

}  // namespace kiln::cpu
