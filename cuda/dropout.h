// CUDA dropout kernel, the GPU twin of ops/cpu/dropout.h: the same Philox counters give
// the same mask on both backends for the same seed.
#pragma once

#include <cstdint>

#include "kiln/cuda/entry.h"

namespace kiln::cuda {

// Element i is kept with probability 1 - p: its draw is word i % 4 of Philox block
// (offset + i / 4) under `seed`, exactly as on the CPU. mask[i] = kept ? 1 / (1 - p) : 0
// (0 everywhere when p == 1) and y[i] = x[i] * mask[i]. x, y and mask are contiguous.
// Uses (n + 3) / 4 Philox blocks.
template <class T>
KILN_CUDA_ENTRY(void dropout_forward(const T* x, T* y, T* mask, int64_t n, double p, uint64_t seed, uint64_t offset,
                                     int device))

}  // namespace kiln::cuda
