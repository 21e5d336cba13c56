// Size2: the (height, width) pair that 2-D sliding-window ops (conv2d, the pools)
// take for kernel size, stride, padding and dilation. One value sets both, as in
// PyTorch where kernel_size=3 means (3, 3):
//
//   conv2d(x, w, b, {.stride = 2, .padding = {1, 0}});
//
// The options structs of conv and pool are taken by const reference, not by value:
// GCC 12.2 with -march=native (AVX-512) miscompiles the copy of a constant-initialised
// struct into a by-value argument (e.g. {1, 1, 0, 0, 1} arrives as {1, 1, 1, 1, 1}).
#pragma once

#include <cstdint>

namespace kiln {

struct Size2 {
  int64_t h, w;
  Size2(int64_t both) : h(both), w(both) {}  // NOLINT: implicit on purpose (see above)
  Size2(int64_t h, int64_t w) : h(h), w(w) {}
  bool operator==(const Size2&) const = default;
};

}  // namespace kiln
