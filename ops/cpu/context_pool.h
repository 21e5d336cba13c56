// ContextPool kernels (ops/context_pool.h has the op's definition), forward and backward.
//
// One kernel serves both forms: tokens sit on an (height x width) grid, channels last,
// and a 1-D sequence of n tokens is the grid of height 1 (its row window then holds only
// row 0, so the 2-D formula reduces exactly to the 1-D one). Output o = (oi, oj) is
// centred on input position (oi * stride, oj * stride) and pools the square window of
// half-width `window` around it, cut at the grid's borders (zero padding) and, when
// causal, to the columns at or left of the centre.
//
// Cost: O(batch * outputs * window cells * channels) for both passes; the only scratch is
// one window of weights per thread (forward) and two band buffers of outputs x window
// cells (backward), never an outputs x inputs matrix.
#pragma once

#include <cstdint>

namespace kiln::cpu {

struct ContextPoolGeometry {
  int64_t batch = 0;
  int64_t height = 1, width = 0;          // input grid (height 1 for a sequence)
  int64_t out_height = 1, out_width = 0;  // ceil(height / stride), ceil(width / stride)
  int64_t channels = 0;                   // d
  int64_t stride = 1;
  int64_t window = 0;  // half-width W >= 0, already resolved (never "0 = from s")
  bool causal = false;
  double eps = 1e-6;

  int64_t inputs() const { return height * width; }
  int64_t outputs() const { return out_height * out_width; }
};

// x (batch, height, width, channels), m (batch, height, width), s (batch, out_height,
// out_width), all contiguous; writes y (batch, out_height, out_width, channels).
template <class T>
void context_pool_forward(const ContextPoolGeometry& g, const T* x, const T* m, const T* s, T* y);

// From the forward's inputs, its output y and the output gradient gy (same layout as y),
// writes the gradients dx, dm, ds (laid out as x, m, s). Any of them may be null: it is
// then neither computed nor written.
template <class T>
void context_pool_backward(const ContextPoolGeometry& g, const T* x, const T* m, const T* s, const T* y, const T* gy,
                           T* dx, T* dm, T* ds);

}  // namespace kiln::cpu
