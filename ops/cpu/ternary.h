// The three-operand elementwise loop (for where): the same scheme as binary_loop in
// loops.h — merge back-to-back dims, then an OpenMP-parallel loop over (row, block)
// tasks with a fast path when every operand is contiguous along the inner dim.
#pragma once

#include "kiln/ops/cpu/loops.h"

namespace kiln::cpu {

// out[i] = f(a[i], b[i], c[i]); a, b, c are already broadcast to out's shape (stride 0).
template <class Out, class A, class B, class C, class F>
void ternary_loop(Out* out, const int64_t* out_strides, const A* a, const int64_t* a_strides, const B* b,
                  const int64_t* b_strides, const C* c, const int64_t* c_strides,
                  const std::vector<int64_t>& shape, F f) {
  const Layout<4> L(shape, {out_strides, a_strides, b_strides, c_strides});
  const int64_t rows = L.rows(), n = L.inner(), blocks = (n + kBlock - 1) / kBlock;
  const int64_t so = L.strides[0].back(), sa = L.strides[1].back(), sb = L.strides[2].back(),
                sc = L.strides[3].back();
#pragma omp parallel for schedule(static) if (rows * n > kParallelThreshold)
  for (int64_t task = 0; task < rows * blocks; ++task) {
    const int64_t r = task / blocks, j0 = (task % blocks) * kBlock, j1 = std::min(n, j0 + kBlock);
    Out* o = out + L.row_offset(0, r);
    const A* x = a + L.row_offset(1, r);
    const B* y = b + L.row_offset(2, r);
    const C* z = c + L.row_offset(3, r);
    if (so == 1 && sa == 1 && sb == 1 && sc == 1) {
      for (int64_t j = j0; j < j1; ++j) o[j] = f(x[j], y[j], z[j]);  // the vectorisable case
    } else {
      for (int64_t j = j0; j < j1; ++j) o[j * so] = f(x[j * sa], y[j * sb], z[j * sc]);
    }
  }
}

}  // namespace kiln::cpu
