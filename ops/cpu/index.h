// CPU kernels for the indexing ops (ops/index.cpp). The ops validate every index before a
// kernel runs, so the kernels trust them.
//
// Two families:
//   row ops (index_select, index_add, embedding): the tensor is a contiguous
//     (outer, rows, inner) array and whole rows of `inner` elements move at once;
//   element ops (gather, scatter_add): one index per element, operands strided.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "kiln/ops/cpu/loops.h"

namespace kiln::cpu {

// Position of the first index outside [0, size), or -1 when all `n` are valid.
inline int64_t find_out_of_range(const int64_t* index, int64_t n, int64_t size) {
  for (int64_t k = 0; k < n; ++k)
    if (index[k] < 0 || index[k] >= size) return k;
  return -1;
}

// ---- row ops ----------------------------------------------------------------------------

// out[o, k, :] = src[o, index[k], :] for k < n_index; src is (outer, src_rows, inner).
template <class T>
void index_select(T* out, const T* src, const int64_t* index, int64_t n_index, int64_t outer, int64_t src_rows,
                  int64_t inner) {
  const bool parallel = outer * n_index * inner > kParallelThreshold;
  if (inner == 1) {  // single elements (selecting along the last dim): a plain gather per row
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t o = 0; o < outer; ++o) {
      const T* row = src + o * src_rows;
      T* dst = out + o * n_index;
      for (int64_t k = 0; k < n_index; ++k) dst[k] = row[index[k]];
    }
    return;
  }
#pragma omp parallel for collapse(2) schedule(static) if (parallel)
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k = 0; k < n_index; ++k)
      std::copy_n(src + (o * src_rows + index[k]) * inner, inner, out + (o * n_index + k) * inner);
}

// out[o, index[k], :] += src[o, k, :] for k < n_index; out is (outer, out_rows, inner).
// Deterministic: threads split the outer dim and the rows into column chunks, never k, so
// every output element receives its additions in the order of k, whatever the threads.
template <class T>
void index_add(T* out, const T* src, const int64_t* index, int64_t n_index, int64_t outer, int64_t out_rows,
               int64_t inner) {
  constexpr int64_t kChunk = 256;  // columns per task: long enough to vectorise
  const int64_t chunks = (inner + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (outer * n_index * inner > kParallelThreshold)
  for (int64_t task = 0; task < outer * chunks; ++task) {
    const int64_t o = task / chunks, i0 = (task % chunks) * kChunk, len = std::min(kChunk, inner - i0);
    for (int64_t k = 0; k < n_index; ++k) {
      T* dst = out + (o * out_rows + index[k]) * inner + i0;
      const T* row = src + (o * n_index + k) * inner + i0;
      for (int64_t i = 0; i < len; ++i) dst[i] += row[i];
    }
  }
}

// keep[k] = (index[k] != excluded): embedding's mask for padding_idx.
template <class T>
void not_equal_mask(T* keep, const int64_t* index, int64_t n, int64_t excluded) {
  for (int64_t k = 0; k < n; ++k) keep[k] = index[k] != excluded ? T(1) : T(0);
}

// ---- element ops ------------------------------------------------------------------------

// The positions of an index tensor cut into lines along the indexed dim: one line per
// combination of the other coordinates. Three operands walk the lines together, each with
// its own strides: the index itself, the `indexed` tensor (addressed along the line by
// index value) and the `dense` tensor (addressed along the line by position).
struct IndexLines {
  enum Operand { kIndex = 0, kIndexed = 1, kDense = 2 };
  std::vector<int64_t> grid;                    // sizes of the other dims
  std::array<std::vector<int64_t>, 3> strides;  // per operand, strides over `grid`
  std::array<int64_t, 3> step{};                // per operand, stride along the indexed dim
  int64_t length = 0;                           // positions per line

  int64_t count() const {
    int64_t n = 1;
    for (int64_t s : grid) n *= s;
    return n;
  }
  // Element offset of operand k at the start of line `line`.
  int64_t offset(Operand k, int64_t line) const {
    int64_t off = 0;
    for (size_t d = grid.size(); d-- > 0;) {
      off += (line % grid[d]) * strides[k][d];
      line /= grid[d];
    }
    return off;
  }
};

// out[line, j] = x[line, index[line, j]]: torch.gather (x indexed, out dense).
template <class T>
void gather(T* out, const T* x, const int64_t* index, const IndexLines& L) {
  const int64_t lines = L.count();
  const int64_t s_idx = L.step[IndexLines::kIndex], s_x = L.step[IndexLines::kIndexed],
                s_out = L.step[IndexLines::kDense];
#pragma omp parallel for schedule(static) if (lines * L.length > kParallelThreshold)
  for (int64_t line = 0; line < lines; ++line) {
    const int64_t* idx = index + L.offset(IndexLines::kIndex, line);
    const T* src = x + L.offset(IndexLines::kIndexed, line);
    T* dst = out + L.offset(IndexLines::kDense, line);
    for (int64_t j = 0; j < L.length; ++j) dst[j * s_out] = src[idx[j * s_idx] * s_x];
  }
}

// out[line, index[line, j]] += src[line, j]: torch.scatter_add_ (out indexed, src dense).
// Lines differ in a non-indexed coordinate, so they write disjoint elements of `out`: the
// parallel loop has no races, and each element's additions come in a fixed order.
template <class T>
void scatter_add(T* out, const T* src, const int64_t* index, const IndexLines& L) {
  const int64_t lines = L.count();
  const int64_t s_idx = L.step[IndexLines::kIndex], s_out = L.step[IndexLines::kIndexed],
                s_src = L.step[IndexLines::kDense];
#pragma omp parallel for schedule(static) if (lines * L.length > kParallelThreshold)
  for (int64_t line = 0; line < lines; ++line) {
    const int64_t* idx = index + L.offset(IndexLines::kIndex, line);
    T* dst = out + L.offset(IndexLines::kIndexed, line);
    const T* row = src + L.offset(IndexLines::kDense, line);
    for (int64_t j = 0; j < L.length; ++j) dst[idx[j * s_idx] * s_out] += row[j * s_src];
  }
}

}  // namespace kiln::cpu
