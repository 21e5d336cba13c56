// CUDA kernels for the indexing ops (see index.h).
#include "kiln/cuda/index.h"

#include <cstdint>
#include <limits>

#include "kiln/cuda/launch.cuh"

namespace kiln::cuda {

namespace {

// The type index_add sums in: Acc<T> for floating types, and i64 itself (Acc would be
// float, which would round large integers).
template <class T> struct SumType { using type = Acc<T>; };
template <> struct SumType<int64_t> { using type = int64_t; };

// ---- row ops ----------------------------------------------------------------------------

// out[o, k, i] = src[o, index[k], i]. One thread per output element (grid-stride over the
// flat (outer, n_index, inner) index): consecutive threads copy consecutive columns of a
// row, so both the reads and the writes coalesce.
template <class T>
__global__ void index_select_kernel(T* __restrict__ out, const T* __restrict__ src, const int64_t* __restrict__ index,
                                    int64_t n_index, int64_t src_rows, int64_t inner, int64_t total) {
  for (int64_t e = global_thread(); e < total; e += grid_stride()) {
    const int64_t i = e % inner, row = e / inner;  // row = o * n_index + k
    const int64_t k = row % n_index, o = row / n_index;
    const int64_t r = index[k];
    out[e] = (r >= 0 && r < src_rows) ? src[(o * src_rows + r) * inner + i] : T(0);
  }
}

// keys[s] = index[s] * n + s for s < n (unique, so sorting them is deterministic and
// keeps equal indices in increasing position), and the largest int64 in the padding up
// to `capacity`, which sorts last.
__global__ void make_sort_keys_kernel(int64_t* __restrict__ keys, const int64_t* __restrict__ index, int64_t n,
                                      int64_t capacity, int64_t out_rows) {
  for (int64_t s = global_thread(); s < capacity; s += grid_stride()) {
    // An out-of-range index (reported by the op's check kernel) sorts last with the
    // padding, so no row owns it.
    const bool valid = s < n && index[s] >= 0 && index[s] < out_rows;
    keys[s] = valid ? index[s] * n + s : std::numeric_limits<int64_t>::max();
  }
}

// One compare-exchange stage (j, k) of a bitonic sort of `capacity` (a power of two) keys
// into increasing order. Each pair (i, i ^ j) is handled by exactly one thread, the one
// holding its lower element, so the stage has no races. Bit k of i says whether i's
// subsequence sorts up or down; at the last merge (k == capacity) every one sorts up.
__global__ void bitonic_stage_kernel(int64_t* __restrict__ keys, int64_t capacity, int64_t j, int64_t k) {
  for (int64_t i = global_thread(); i < capacity; i += grid_stride()) {
    const int64_t partner = i ^ j;
    if (partner <= i) continue;
    const bool ascending = (i & k) == 0;
    const int64_t a = keys[i], b = keys[partner];
    if ((a > b) == ascending) {
      keys[i] = b;
      keys[partner] = a;
    }
  }
}

// Sorts keys[0, capacity) ascending; capacity is a power of two.
void bitonic_sort(int64_t* keys, int64_t capacity, cudaStream_t s) {
  const unsigned blocks = blocks_for(capacity);
  for (int64_t k = 2; k <= capacity; k *= 2)
    for (int64_t j = k / 2; j > 0; j /= 2) {
      bitonic_stage_kernel<<<blocks, kThreadsPerBlock, 0, s>>>(keys, capacity, j, k);
      KILN_CUDA_LAUNCH_CHECK();
    }
}

// First position in sorted keys[0, n) whose key is >= target.
__device__ int64_t lower_bound(const int64_t* keys, int64_t n, int64_t target) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (keys[mid] < target) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// out[o, r, :] = sum of src[o, k, :] over the positions k with index[k] == r. One block
// owns each output row (o, r) (grid-stride over the outer * out_rows rows): it finds the
// run of sorted keys in [r * n, (r + 1) * n) by binary search, whose positions k come in
// increasing order, and its threads split the row's columns, each summing its column over
// the run. Nothing else writes the row, so there are no atomics and the order is fixed.
template <class T>
__global__ void index_add_by_owner_kernel(T* __restrict__ out, const T* __restrict__ src,
                                          const int64_t* __restrict__ sorted_keys, int64_t n_index, int64_t out_rows,
                                          int64_t inner, int64_t total_rows) {
  for (int64_t row = blockIdx.x; row < total_rows; row += gridDim.x) {
    const int64_t r = row % out_rows, o = row / out_rows;
    const int64_t begin = lower_bound(sorted_keys, n_index, r * n_index);
    const int64_t end = lower_bound(sorted_keys, n_index, (r + 1) * n_index);
    const T* src_block = src + o * n_index * inner;
    T* dst = out + row * inner;
    for (int64_t i = threadIdx.x; i < inner; i += blockDim.x) {
      typename SumType<T>::type sum = 0;
      for (int64_t s = begin; s < end; ++s) sum += src_block[(sorted_keys[s] - r * n_index) * inner + i];
      dst[i] = static_cast<T>(sum);
    }
  }
}

template <class T>
__global__ void not_equal_mask_kernel(T* __restrict__ keep, const int64_t* __restrict__ index, int64_t n,
                                      int64_t excluded) {
  for (int64_t k = global_thread(); k < n; k += grid_stride()) keep[k] = index[k] != excluded ? T(1) : T(0);
}

// ---- element ops ------------------------------------------------------------------------

// Element offset of operand `which` at the start of line `line` (last grid dim fastest).
__device__ int64_t line_offset(const IndexLinesLayout& L, int which, int64_t line) {
  int64_t offset = 0;
  for (int d = L.ndim - 1; d >= 0; --d) {
    offset += (line % L.grid[d]) * L.strides[which][d];
    line /= L.grid[d];
  }
  return offset;
}

// out[line, j] = x[line, index[line, j]]. One thread per output element (grid-stride over
// lines * length, j fastest); an out-of-range index reads as zero.
template <class T>
__global__ void gather_kernel(T* __restrict__ out, const T* __restrict__ x, const int64_t* __restrict__ index,
                              const IndexLinesLayout L) {
  using Op = IndexLinesLayout;
  const int64_t total = L.lines * L.length;
  for (int64_t e = global_thread(); e < total; e += grid_stride()) {
    const int64_t j = e % L.length, line = e / L.length;
    const int64_t r = index[line_offset(L, Op::kIndex, line) + j * L.step[Op::kIndex]];
    const bool valid = r >= 0 && r < L.indexed_size;
    out[line_offset(L, Op::kDense, line) + j * L.step[Op::kDense]] =
        valid ? x[line_offset(L, Op::kIndexed, line) + r * L.step[Op::kIndexed]] : T(0);
  }
}

// out[line, index[line, j]] += src[line, j]. One thread per line, adding in order of j:
// lines write disjoint elements of out, so no two threads touch the same element and the
// sums come in the CPU's order. An out-of-range index is skipped.
template <class T>
__global__ void scatter_add_kernel(T* __restrict__ out, const T* __restrict__ src, const int64_t* __restrict__ index,
                                   const IndexLinesLayout L) {
  using Op = IndexLinesLayout;
  for (int64_t line = global_thread(); line < L.lines; line += grid_stride()) {
    const int64_t* idx = index + line_offset(L, Op::kIndex, line);
    T* dst = out + line_offset(L, Op::kIndexed, line);
    const T* row = src + line_offset(L, Op::kDense, line);
    for (int64_t j = 0; j < L.length; ++j) {
      const int64_t r = idx[j * L.step[Op::kIndex]];
      if (r >= 0 && r < L.indexed_size) dst[r * L.step[Op::kIndexed]] += row[j * L.step[Op::kDense]];
    }
  }
}

}  // namespace

template <class T>
void index_select(T* out, const T* src, const int64_t* index, int64_t n_index, int64_t outer, int64_t src_rows,
                  int64_t inner, int device) {
  const int64_t total = outer * n_index * inner;
  if (total == 0) return;
  cudaStream_t s = stream(device);
  index_select_kernel<T><<<blocks_for(total), kThreadsPerBlock, 0, s>>>(out, src, index, n_index, src_rows, inner,
                                                                         total);
  KILN_CUDA_LAUNCH_CHECK();
}

template <class T>
void index_add(T* out, const T* src, const int64_t* index, int64_t n_index, int64_t outer, int64_t out_rows,
               int64_t inner, int64_t* scratch, int device) {
  const int64_t total_rows = outer * out_rows;
  if (total_rows * inner == 0) return;
  cudaStream_t s = stream(device);
  const int64_t capacity = index_add_scratch_size(n_index);
  if (capacity > 0) {
    make_sort_keys_kernel<<<blocks_for(capacity), kThreadsPerBlock, 0, s>>>(scratch, index, n_index, capacity,
                                                                              out_rows);
    KILN_CUDA_LAUNCH_CHECK();
    bitonic_sort(scratch, capacity, s);
  }
  // Threads per block: the row's width rounded up to whole warps, at most a full block,
  // so narrow rows (inner == 1 when adding along the last dim) do not idle 255 threads.
  const int threads = static_cast<int>(std::min<int64_t>((inner + kWarpSize - 1) / kWarpSize * kWarpSize,
                                                         kThreadsPerBlock));
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(total_rows, kMaxBlocks));
  index_add_by_owner_kernel<T><<<blocks, threads, 0, s>>>(out, src, scratch, n_index, out_rows, inner, total_rows);
  KILN_CUDA_LAUNCH_CHECK();
}

template <class T>
void not_equal_mask(T* keep, const int64_t* index, int64_t n, int64_t excluded, int device) {
  if (n == 0) return;
  cudaStream_t s = stream(device);
  not_equal_mask_kernel<T><<<blocks_for(n), kThreadsPerBlock, 0, s>>>(keep, index, n, excluded);
  KILN_CUDA_LAUNCH_CHECK();
}

template <class T>
void gather(T* out, const T* x, const int64_t* index, const IndexLinesLayout& layout, int device) {
  const int64_t total = layout.lines * layout.length;
  if (total == 0) return;
  cudaStream_t s = stream(device);
  gather_kernel<T><<<blocks_for(total), kThreadsPerBlock, 0, s>>>(out, x, index, layout);
  KILN_CUDA_LAUNCH_CHECK();
}

template <class T>
void scatter_add(T* out, const T* src, const int64_t* index, const IndexLinesLayout& layout, int device) {
  if (layout.lines * layout.length == 0) return;
  cudaStream_t s = stream(device);
  scatter_add_kernel<T><<<blocks_for(layout.lines), kThreadsPerBlock, 0, s>>>(out, src, index, layout);
  KILN_CUDA_LAUNCH_CHECK();
}

// index_select and gather only move values: they are instantiated per element size (the
// ops pass every dtype as the unsigned word of its width). The adding ops serve the
// numeric dtypes, the mask the floating ones.
#define KILN_INSTANTIATE_MOVES(T)                                                                         \
  template void index_select<T>(T*, const T*, const int64_t*, int64_t, int64_t, int64_t, int64_t, int); \
  template void gather<T>(T*, const T*, const int64_t*, const IndexLinesLayout&, int);
#define KILN_INSTANTIATE_SUMS(T)                                                                                  \
  template void index_add<T>(T*, const T*, const int64_t*, int64_t, int64_t, int64_t, int64_t, int64_t*, int); \
  template void scatter_add<T>(T*, const T*, const int64_t*, const IndexLinesLayout&, int);
#define KILN_INSTANTIATE_MASK(T) template void not_equal_mask<T>(T*, const int64_t*, int64_t, int64_t, int);

KILN_INSTANTIATE_MOVES(uint8_t)
KILN_INSTANTIATE_MOVES(uint16_t)
KILN_INSTANTIATE_MOVES(uint32_t)
KILN_INSTANTIATE_MOVES(uint64_t)
KILN_INSTANTIATE_SUMS(float)
KILN_INSTANTIATE_SUMS(double)
KILN_INSTANTIATE_SUMS(int64_t)
KILN_INSTANTIATE_MASK(float)
KILN_INSTANTIATE_MASK(double)
#undef KILN_INSTANTIATE_MOVES
#undef KILN_INSTANTIATE_SUMS
#undef KILN_INSTANTIATE_MASK

}  // namespace kiln::cuda
