// CUDA kernels for the indexing ops (ops/index.cpp), the GPU twins of ops/cpu/index.h.
// Launchers take raw device pointers, sizes and the device index; no CUDA types appear
// here, so ops/index.cpp (g++) includes this header in every build.
//
// The ops queue a check kernel before these (cuda/device_check.h: a bad index becomes
// kiln::Error at the next synchronisation); the kernels skip an out-of-range index rather
// than touch memory outside a tensor, so a bad index never corrupts memory meanwhile.
//
// Two families, as on the CPU:
//   row ops (index_select, index_add, embedding): the tensor is a contiguous
//     (outer, rows, inner) array and whole rows of `inner` elements move at once;
//   element ops (gather, scatter_add): one index per element, operands strided.
#pragma once

#include <cstdint>

#include "kiln/cuda/entry.h"

namespace kiln::cuda {

// ---- row ops ----------------------------------------------------------------------------

// out[o, k, :] = src[o, index[k], :] for k < n_index; src is (outer, src_rows, inner).
template <class T>
KILN_CUDA_ENTRY(void index_select(T* out, const T* src, const int64_t* index, int64_t n_index, int64_t outer,
                                  int64_t src_rows, int64_t inner, int device))

// Elements of the int64 scratch buffer index_add needs for n_index indices: the indices
// sorted with their positions, padded to a power of two for the bitonic sort.
inline int64_t index_add_scratch_size(int64_t n_index) {
  int64_t size = 1;
  while (size < n_index) size *= 2;
  return n_index == 0 ? 0 : size;
}

// out[o, r, :] = sum of src[o, k, :] over the k < n_index with index[k] == r, added in
// increasing k (the CPU's order); rows no index names get zeros. out is (outer, out_rows,
// inner) and every element of it is written, so it need not be zeroed first.
// Deterministic and atomic-free: the (index, position) pairs are sorted, then one block
// owns each output row and sums its source rows itself. `scratch` holds
// index_add_scratch_size(n_index) int64 elements. Requires out_rows * n_index < 2^63.
template <class T>
KILN_CUDA_ENTRY(void index_add(T* out, const T* src, const int64_t* index, int64_t n_index, int64_t outer,
                               int64_t out_rows, int64_t inner, int64_t* scratch, int device))

// keep[k] = (index[k] != excluded ? 1 : 0): embedding's mask for padding_idx.
template <class T>
KILN_CUDA_ENTRY(void not_equal_mask(T* keep, const int64_t* index, int64_t n, int64_t excluded, int device))

// ---- element ops ------------------------------------------------------------------------

// The positions of an index tensor cut into lines along the indexed dim (see
// cpu::IndexLines), with fixed-size arrays so it travels to a kernel by value. Three
// operands walk the lines together: the index, the `indexed` tensor (addressed along a
// line by index value, whose size along the dim is `indexed_size`) and the `dense` one
// (addressed by position). Strides are in elements.
constexpr int kMaxIndexDims = 8;
struct IndexLinesLayout {
  enum Operand { kIndex = 0, kIndexed = 1, kDense = 2 };
  int64_t grid[kMaxIndexDims] = {};        // sizes of the other dims
  int64_t strides[3][kMaxIndexDims] = {};  // per operand, strides over `grid`
  int64_t step[3] = {};                    // per operand, stride along the indexed dim
  int64_t length = 0;                      // positions per line
  int64_t lines = 0;                       // product of grid
  int64_t indexed_size = 0;                // valid index values are [0, indexed_size)
  int ndim = 0;                            // dims in grid (the index's rank - 1)
};

// out[line, j] = x[line, index[line, j]]: torch.gather (x indexed, out dense).
template <class T>
KILN_CUDA_ENTRY(void gather(T* out, const T* x, const int64_t* index, const IndexLinesLayout& layout, int device))

// out[line, index[line, j]] += src[line, j]: torch.scatter_add_ (out indexed, src dense).
// One thread per line adds its elements in order of j, so the result is deterministic
// and equal to the CPU's (lines write disjoint elements; no atomics).
template <class T>
KILN_CUDA_ENTRY(void scatter_add(T* out, const T* src, const int64_t* index, const IndexLinesLayout& layout,
                                 int device))

}  // namespace kiln::cuda
