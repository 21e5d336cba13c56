// Reductions on the GPU: what ops/reduce.cpp calls for CUDA tensors, one launcher per
// CPU kernel of ops/cpu/reduce.h, on the same (outer, Ra, mid, Rb, inner) geometry.
//
// One kernel family serves every reduction (cuda/reduce.cu). A reduction is a fold:
// each element is mapped to an accumulator (x, |x|, x^2, exp(x - max), (x, index) ...),
// accumulators are combined (+, or a NaN-propagating max/min), and the total becomes the
// output. Two kernels walk the input:
//   - inner == 1 (the reduced elements of an output are contiguous runs): one warp per
//     output for short rows, one block for long ones, lanes striding the row so loads
//     are coalesced;
//   - inner > 1 (an output is a column with stride `inner`): one thread per output,
//     neighbouring threads on neighbouring columns, so every row step is one coalesced
//     load across the warp.
// When there are too few outputs to fill the GPU (a full reduction, or sum_to's bias
// gradient over many rows), the reduced range is split into chunks: a first launch
// writes one partial accumulator per (output, chunk) into the workspace, a second folds
// the chunks. Fixed chunks and fixed combine trees: the result is the same bits on
// every run (no atomics).
#pragma once

#include <algorithm>
#include <cstdint>

#include "kiln/core/host_device.h"
#include "kiln/cuda/entry.h"

namespace kiln::cuda {

// The layout of ops/cpu/reduce.h's ReduceGeometry: a contiguous input read as (outer, Ra,
// mid, Rb, inner), Ra and Rb folded away, output (outer, mid, inner).
struct ReduceGeometry {
  int64_t outer = 1, Ra = 1, mid = 1, Rb = 1, inner = 1;

  KILN_HOST_DEVICE int64_t reduced() const { return Ra * Rb; }
  KILN_HOST_DEVICE int64_t slices() const { return outer * mid; }
  KILN_HOST_DEVICE int64_t outputs() const { return slices() * inner; }
  // Offset of element (slice s, reduced index r = ra * Rb + rb, column 0).
  KILN_HOST_DEVICE int64_t slice_start(int64_t s) const { return ((s / mid) * Ra * mid + s % mid) * Rb * inner; }
  KILN_HOST_DEVICE int64_t run_stride() const { return mid * Rb * inner; }
  KILN_HOST_DEVICE int64_t reduced_offset(int64_t r) const {
    return Ra == 1 ? r * inner : (r / Rb) * run_stride() + (r % Rb) * inner;
  }
};

// How many chunks each output's reduced range is split into (1: no split). Enough
// independent work items to fill a large GPU (about 1k blocks for rows, 256k threads
// for columns), but chunks long enough that the second pass is cheap.
inline int64_t reduce_chunks(const ReduceGeometry& g) {
  const int64_t outputs = g.outputs(), reduced = g.reduced();
  if (outputs == 0 || reduced == 0) return 1;
  const bool rows = g.inner == 1;
  const int64_t wanted_items = rows ? 1024 : 262144;
  const int64_t min_chunk = rows ? 4096 : 64;
  if (outputs >= wanted_items) return 1;
  const int64_t by_items = (wanted_items + outputs - 1) / outputs;
  const int64_t by_length = (reduced + min_chunk - 1) / min_chunk;
  return std::clamp<int64_t>(std::min(by_items, by_length), 1, 1024);
}

// Bytes of device workspace every launcher below needs for `g` (the op allocates it as
// a kiln tensor, so it comes from the caching allocator): per output one center value
// and one count, and 16 bytes per (output, chunk) partial.
inline int64_t reduce_workspace_bytes(const ReduceGeometry& g) {
  const int64_t per_output = (g.outputs() * 8 + 255) / 256 * 256;
  const int64_t chunks = reduce_chunks(g);
  return 2 * per_output + (chunks > 1 ? g.outputs() * chunks * 16 : 0);
}

// out[s, i] = sum (T: f32, f64, i64).
template <class T>
KILN_CUDA_ENTRY(void sum_reduce(const T* in, T* out, const ReduceGeometry& g, void* workspace, int device))

// Variance (take_sqrt: standard deviation) with `dof` degrees of freedom: the mean first,
// then the mean-centered squares, as on the CPU (no E[x^2] - E[x]^2 cancellation).
template <class T>
KILN_CUDA_ENTRY(void variance_reduce(const T* in, T* out, const ReduceGeometry& g, double dof, bool take_sqrt,
                                     void* workspace, int device))

// log sum exp, centered on the max; -inf for an all -inf or empty slice, m when the max
// m is +inf or NaN.
template <class T>
KILN_CUDA_ENTRY(void logsumexp_reduce(const T* in, T* out, const ReduceGeometry& g, void* workspace, int device))

// p-norm for p > 0 (inf: the largest |x|, NaN-propagating).
template <class T>
KILN_CUDA_ENTRY(void norm_reduce(const T* in, T* out, const ReduceGeometry& g, double p, void* workspace,
                                 int device))

// values = max (take_max) or min of each output's elements; indices (may be null) = the
// position of the first occurrence, NaN counting as the extremum (the first NaN wins).
// For indices, one reduced block (Ra == 1) and Rb > 0, as on the CPU.
template <class T>
KILN_CUDA_ENTRY(void extremum_reduce(const T* in, T* values, int64_t* indices, const ReduceGeometry& g,
                                     bool take_max, void* workspace, int device))

// mask (input-shaped, zeroed by the caller) gets a 1 at each output's index (Ra == 1).
template <class T>
KILN_CUDA_ENTRY(void scatter_ones(const int64_t* index, T* mask, const ReduceGeometry& g, int device))

// weight (input-shaped) = 1 / count where key(x) equals the output's max (min) key, NaN
// matching NaN, else 0; key is x, or |x| with sign(x) folded into the weight when
// `magnitude` (the infinity norm). As cpu::tie_weights.
template <class T>
KILN_CUDA_ENTRY(void tie_weights(const T* in, T* weight, const ReduceGeometry& g, bool take_max, bool magnitude,
                                 void* workspace, int device))

}  // namespace kiln::cuda
