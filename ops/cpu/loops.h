// N-d elementwise loops over strided operands, shared by the CPU kernels.
//
// Operands are raw pointers with a shape and strides (in elements) already expanded
// to the output shape: a broadcast dim simply has stride 0. The loops first merge
// dims that are laid out back to back (ops/layout.h: a contiguous tensor becomes one
// long dim), then run an inner loop over the last dim and an OpenMP-parallel loop over
// the rest.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "kiln/ops/layout.h"

namespace kiln::cpu {

// Work below this many elements runs on one thread: forking costs more than it saves.
inline constexpr int64_t kParallelThreshold = 32768;

// The operands' dims merged where they are laid out back to back (ops/layout.h).
template <size_t N>
using Layout = ops::MergedLayout<N>;

// Work is cut into tasks of (row, block of the inner dim), so a single long contiguous
// row is split across threads too.
inline constexpr int64_t kBlock = 8192;

// out[i] = f(in[i]) over a strided input and a strided output.
template <class Out, class In, class F>
void unary_loop(Out* out, const int64_t* out_strides, const In* in, const int64_t* in_strides,
                const std::vector<int64_t>& shape, F f) {
  const Layout<2> L(shape, {out_strides, in_strides});
  const int64_t rows = L.rows(), n = L.inner(), blocks = (n + kBlock - 1) / kBlock;
  const int64_t so = L.strides[0].back(), si = L.strides[1].back();
#pragma omp parallel for schedule(static) if (rows * n > kParallelThreshold)
  for (int64_t task = 0; task < rows * blocks; ++task) {
    const int64_t r = task / blocks, j0 = (task % blocks) * kBlock, j1 = std::min(n, j0 + kBlock);
    Out* o = out + L.row_offset(0, r);
    const In* a = in + L.row_offset(1, r);
    if (so == 1 && si == 1) {
      for (int64_t j = j0; j < j1; ++j) o[j] = f(a[j]);  // the vectorisable case
    } else {
      for (int64_t j = j0; j < j1; ++j) o[j * so] = f(a[j * si]);
    }
  }
}

// out[i] = f(a[i], b[i]); a and b are already broadcast to out's shape (stride 0).
template <class Out, class A, class B, class F>
void binary_loop(Out* out, const int64_t* out_strides, const A* a, const int64_t* a_strides, const B* b,
                 const int64_t* b_strides, const std::vector<int64_t>& shape, F f) {
  const Layout<3> L(shape, {out_strides, a_strides, b_strides});
  const int64_t rows = L.rows(), n = L.inner(), blocks = (n + kBlock - 1) / kBlock;
  const int64_t so = L.strides[0].back(), sa = L.strides[1].back(), sb = L.strides[2].back();
#pragma omp parallel for schedule(static) if (rows * n > kParallelThreshold)
  for (int64_t task = 0; task < rows * blocks; ++task) {
    const int64_t r = task / blocks, j0 = (task % blocks) * kBlock, j1 = std::min(n, j0 + kBlock);
    Out* o = out + L.row_offset(0, r);
    const A* x = a + L.row_offset(1, r);
    const B* y = b + L.row_offset(2, r);
    if (so == 1 && sa == 1 && sb == 1) {
      for (int64_t j = j0; j < j1; ++j) o[j] = f(x[j], y[j]);
    } else if (so == 1 && sa == 1 && sb == 0) {
      const B yv = y[0];
      for (int64_t j = j0; j < j1; ++j) o[j] = f(x[j], yv);
    } else if (so == 1 && sa == 0 && sb == 1) {
      const A xv = x[0];
      for (int64_t j = j0; j < j1; ++j) o[j] = f(xv, y[j]);
    } else {
      for (int64_t j = j0; j < j1; ++j) o[j * so] = f(x[j * sa], y[j * sb]);
    }
  }
}

}  // namespace kiln::cpu
