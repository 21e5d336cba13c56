// The dropout kernel: draws the keep/drop mask from Philox and applies it in one pass.
#pragma once

#include <cstdint>

namespace kiln::cpu {

// Element i is kept with probability 1 - p: its draw is word i % 4 of Philox block
// (offset + i / 4) under `seed`, so the mask depends only on (seed, offset), not on
// the thread count. mask[i] = kept ? 1 / (1 - p) : 0 (0 everywhere when p == 1) and
// y[i] = x[i] * mask[i]. Uses (n + 3) / 4 Philox blocks.
template <class T>
void dropout_forward(const T* x, T* y, T* mask, int64_t n, double p, uint64_t seed, uint64_t offset);

}  // namespace kiln::cpu
