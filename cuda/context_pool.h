// ContextPool kernels on the GPU, the twins of ops/cpu/context_pool.h: same geometry
// struct, same formulas (derived in ops/cpu/context_pool.cpp), same two-pass backward
// through "band" buffers, so no atomics and no outputs x inputs matrix: cost
// O(batch * outputs * window cells * channels) for both passes. Launchers take raw
// device pointers and the device index; no CUDA types appear here, so
// ops/context_pool.cpp (g++) includes this header in every build.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kiln/cuda/entry.h"
#include "kiln/ops/cpu/context_pool.h"

namespace kiln::cuda {

// The band of window offsets every output's window fits in, numbered as the CPU kernel
// numbers them: (2 half_rows + 1) rows of `cols` columns around the centre, cols =
// 2 half_cols + 1 (half_cols + 1 when causal: offsets -half_cols..0).
struct ContextPoolBand {
  int64_t half_rows = 0, half_cols = 0;
  int64_t cols = 1, cells = 1;
  bool causal = false;
};

inline ContextPoolBand context_pool_band(const cpu::ContextPoolGeometry& g) {
  ContextPoolBand band;
  band.half_rows = std::max<int64_t>(0, std::min(g.window, g.height - 1));
  band.half_cols = std::max<int64_t>(0, std::min(g.window, g.width - 1));
  band.cols = g.causal ? band.half_cols + 1 : 2 * band.half_cols + 1;
  band.cells = (2 * band.half_rows + 1) * band.cols;
  band.causal = g.causal;
  return band;
}

// Elements of each band buffer the backward needs: one band per output row.
inline int64_t context_pool_band_elements(const cpu::ContextPoolGeometry& g) {
  return g.batch * g.outputs() * context_pool_band(g).cells;
}

// x (batch, height, width, channels), m (batch, height, width), s (batch, out_height,
// out_width), all contiguous on `device`; writes y (batch, out_height, out_width, channels).
template <class T>
KILN_CUDA_ENTRY(void context_pool_forward(const cpu::ContextPoolGeometry& g, const T* x, const T* m, const T* s,
                                          T* y, int device))

// As cpu::context_pool_backward: dx, dm, ds (any may be null: neither computed nor
// written). dx_band and dm_band are scratch of context_pool_band_elements(g) elements,
// needed when dx (resp. dm) is requested (null otherwise).
template <class T>
KILN_CUDA_ENTRY(void context_pool_backward(const cpu::ContextPoolGeometry& g, const T* x, const T* m, const T* s,
                                           const T* y, const T* gy, T* dx, T* dm, T* ds, T* dx_band, T* dm_band,
                                           int device))

}  // namespace kiln::cuda
