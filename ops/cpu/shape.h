// CPU kernels for the shape ops (ops/shape.cpp): block copies for cat/stack and strided
// region copies for cat of non-contiguous inputs and for pad. They only move bytes, so
// they work for every dtype.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "kiln/ops/cpu/loops.h"

namespace kiln::cpu {

// Copies `rows` blocks of `block_bytes` bytes from a contiguous `src` (blocks back to back)
// into `dst`, where consecutive blocks start `dst_stride_bytes` apart. This is one input of
// cat seen as a (outer, size * inner) array landing in a wider (outer, total * inner) one.
inline void copy_blocks(char* dst, int64_t dst_stride_bytes, const char* src, int64_t rows, int64_t block_bytes) {
  constexpr int64_t kParallelBytes = int64_t{1} << 20;  // below 1 MiB one thread saturates memory
#pragma omp parallel for schedule(static) if (rows > 1 && rows * block_bytes > kParallelBytes)
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(dst + r * dst_stride_bytes, src + r * block_bytes, static_cast<size_t>(block_bytes));
}

// dst[i] = src[i] for every index i of `shape`, both operands strided (in elements).
template <class T>
void copy_strided(T* dst, const int64_t* dst_strides, const T* src, const int64_t* src_strides,
                  const std::vector<int64_t>& shape) {
  unary_loop(dst, dst_strides, src, src_strides, shape, [](T v) { return v; });
}

}  // namespace kiln::cpu
