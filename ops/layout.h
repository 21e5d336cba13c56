// Merging the dims of N same-shape operands where every operand is laid out back to back
// along them, so a contiguous tensor becomes one long dim and a broadcast row becomes
// (rows, inner) whatever its rank. Backend-neutral: the CPU loops (ops/cpu/loops.h) and
// the CUDA elementwise kernels (cuda/map.cu) both start from it.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace kiln::ops {

// Shape + strides of N operands after merging contiguous dims.
template <size_t N>
struct MergedLayout {
  std::vector<int64_t> shape;
  std::array<std::vector<int64_t>, N> strides;

  MergedLayout(const std::vector<int64_t>& s, const std::array<const int64_t*, N>& st) {
    for (size_t d = 0; d < s.size(); ++d) {
      if (s[d] == 1) continue;  // size-1 dims contribute nothing
      if (!shape.empty()) {
        bool mergeable = true;  // (shape.back(), s[d]) can merge into one dim?
        for (size_t k = 0; k < N; ++k) mergeable &= strides[k].back() == st[k][d] * s[d];
        if (mergeable) {
          shape.back() *= s[d];
          for (size_t k = 0; k < N; ++k) strides[k].back() = st[k][d];
          continue;
        }
      }
      shape.push_back(s[d]);
      for (size_t k = 0; k < N; ++k) strides[k].push_back(st[k][d]);
    }
    if (shape.empty()) {  // a scalar, or all dims of size 1
      shape.push_back(1);
      for (size_t k = 0; k < N; ++k) strides[k].push_back(0);
    }
  }
  int64_t inner() const { return shape.back(); }
  int64_t rows() const {
    int64_t r = 1;
    for (size_t d = 0; d + 1 < shape.size(); ++d) r *= shape[d];
    return r;
  }
  // Element offset of operand k at the start of row `row`.
  int64_t row_offset(size_t k, int64_t row) const {
    int64_t off = 0;
    for (size_t d = shape.size() - 1; d-- > 0;) {
      off += (row % shape[d]) * strides[k][d];
      row /= shape[d];
    }
    return off;
  }
};

}  // namespace kiln::ops
