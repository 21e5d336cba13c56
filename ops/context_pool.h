// ContextPool: adaptive context pooling (Huang, Talbott, Jaitly, Susskind, "Efficient
// Representation Learning via Adaptive Context Pooling", ICML 2022), the op. Every output
// token i is a weighted average of its neighbours j, with a per-token pooling weight m_j
// and a Gaussian of per-token width s_i:
//
//   g_i(j) = exp(-(i - j)^2 / (2 s_i^2))        over the window |i - j| <= W (j <= i if causal)
//   y_i    = sum_j g_i(j) m_j x_j / (sum_j g_i(j) m_j + eps)
//
// The module that learns m and s lives in nn/context_pool.h; docs/contextpool.md says
// what the paper states and what is our reconstruction. The kernels are fused: cost
// O(B n (2W+1) d) forward and backward, and no n x n matrix is ever formed.
//
//   Tensor y = context_pool(x, m, s, {.causal = true, .window = 12});   // x (B, n, d)
//   Tensor z = context_pool2d(img, m2, s2, {.window = 6, .stride = 2});  // img (B, H, W, d)
#pragma once

#include <cstdint>

#include "kiln/core/tensor.h"

namespace kiln {

struct ContextPoolOptions {
  // 1-D only: token i pools only j <= i, so y_i never depends on a later token.
  bool causal = false;
  // The window's half-width W (in tokens, or grid cells per axis in 2-D). 0 means
  // ceil(3 * max(s)), read from s: beyond 3 s the Gaussian is below 1.2% of its peak.
  // A window wider than the sequence (grid) changes nothing and is cut to its size.
  int64_t window = 0;
  // Output token o sits at input position o * stride (both axes in 2-D); stride 1 keeps
  // every token. Output length ceil(n / stride). With stride > 1, s is given per OUTPUT
  // token and m per input token.
  int64_t stride = 1;
  // Keeps y finite where every weight in a window is ~0; y_i -> 0 there. Must be >= 0.
  double eps = 1e-6;
};

// x (B, n, d), m (B, n) in (0, 1), s (B, n_out) > 0, all one float dtype, one device (CPU
// or CUDA). s may be +inf: g = 1 over the whole window (a flat average when m = 1), which
// needs options.window. Returns y (B, n_out, d), n_out = ceil(n / stride). Differentiable
// in x, m and s.
// Checked on the CPU: every s > 0 (s <= 0 and NaN throw; the scan is B * n_out reads, and
// gives the max(s) that window = 0 needs). On CUDA, s is read on the host only when
// window = 0 (a wait for the GPU); with an explicit window it is not scanned, so a bad s
// gives NaN outputs rather than an error (nn::ContextPool always passes a window).
// m is not scanned: any m >= 0 gives a weighted average.
// Empty sizes (B, n or d = 0) give an empty y. Backward runs fused kernels at the forward's
// cost; backward with create_graph (double backward) works too, through a dense
// (n_out x n) form of the same formulas, so it costs O(n_out * n) memory.
Tensor context_pool(const Tensor& x, const Tensor& m, const Tensor& s, const ContextPoolOptions& options = {});

// Tokens on an H x W grid, channels last: x (B, H, W, d), m (B, H, W), s (B, H_out, W_out).
// An isotropic Gaussian on the grid, g_o(q) = exp(-|p_o - q|^2 / (2 s_o^2)) over the square
// window |di|, |dj| <= W; positions outside the grid count as zero (zero padding: they add
// nothing to the sum or to the normaliser). causal must be false.
// Returns y (B, H_out, W_out, d), H_out = ceil(H / stride), W_out = ceil(W / stride).
Tensor context_pool2d(const Tensor& x, const Tensor& m, const Tensor& s, const ContextPoolOptions& options = {});

}  // namespace kiln
