// context_pool_flops.h: the FLOP count of a ContextPool2d forward (header-only), for the
// vit and convnet examples' reports. It follows nn/context_pool.cpp: the predictor is a
// 3x3 conv with one output per learned quantity, and the op visits, for every output
// cell, the cells of its (2W+1) x (2W+1) window that lie inside the grid.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include <kiln/nn/context_pool.h>

namespace kiln::examples {

// Grid positions within `half_width` of position i, summed over every i < n: the cells a
// windowed op visits along one axis (the window is cut at the borders).
inline double cells_in_windows(int64_t n, int64_t half_width, int64_t stride) {
  double total = 0;
  for (int64_t i = 0; i < n; i += stride)
    total += static_cast<double>(std::min(i + half_width, n - 1) - std::max(i - half_width, int64_t{0}) + 1);
  return total;
}

// FLOPs of one ContextPool2d forward on an H x W grid of `channels` features: the
// predictor (a 3x3 conv, channels -> one output per learned quantity) on every cell, and
// the pooling op, which for every output cell and window cell inside the grid does a
// multiply-add per channel for the weighted sum and one for the normaliser (plus O(1)
// work for the Gaussian weight, counted as 4 FLOPs). The window follows the module: the
// option when set, else ceil(3 x the largest size the mode can produce).
inline double context_pool2d_flops(const nn::ContextPoolModuleOptions& o, Size2 grid, int64_t channels) {
  using Mode = nn::ContextPoolMode;
  const bool learns_weights = o.mode == Mode::adaptive || o.mode == Mode::fixed_size || o.mode == Mode::weights_only;
  const bool predicts_size = o.mode == Mode::adaptive || o.mode == Mode::fixed_size || o.mode == Mode::size_only;
  const int64_t predictor_outputs = int64_t{learns_weights} + int64_t{predicts_size};
  const int64_t window = nn::context_pool_window(o);
  const double cells = static_cast<double>(grid.h * grid.w);
  const double predictor = 2.0 * 9 * channels * predictor_outputs * cells;
  const double visits = cells_in_windows(grid.h, window, o.stride) * cells_in_windows(grid.w, window, o.stride);
  return predictor + visits * (2.0 * channels + 2 + 4);
}

}  // namespace kiln::examples
