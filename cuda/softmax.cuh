// Device helpers shared by the softmax and cross-entropy kernels (.cu files only): the
// online max-and-sum of exponentials over a row, and folding values across a "team" of
// threads that owns one row: a warp (short rows) or the whole block (long rows).
#pragma once

#include <cmath>

#include "kiln/cuda/launch.cuh"

namespace kiln::cuda::softmax_detail {

// A row's running max m and sum of exp(x - m). Absorbing an x above m rescales the sum
// by exp(m_old - m_new), so one read of the row gives both (Milakov & Gimelshein's
// online softmax). A NaN x makes m NaN; callers treat a non-finite m as a NaN row.
template <class A>
struct MaxSum {
  A max;
  A sum;
};

template <class A>
__device__ MaxSum<A> empty_max_sum() {
  return {-INFINITY, A(0)};
}

// exp(from - to) * s, with a sum taken at max -inf (nothing absorbed yet) counting 0.
template <class A>
__device__ A rescale(A s, A from, A to) {
  return from == -INFINITY ? A(0) : s * exp(from - to);
}

template <class A>
__device__ MaxSum<A> absorb(MaxSum<A> a, A x) {
  if (x != x) return {x, a.sum};
  if (x > a.max) return {x, rescale(a.sum, a.max, x) + A(1)};
  if (x != -INFINITY) a.sum += exp(x - a.max);
  return a;
}

template <class A>
__device__ MaxSum<A> merge(MaxSum<A> a, MaxSum<A> b) {
  const A m = MaxOp{}(a.max, b.max);  // NaN wins
  return {m, rescale(a.sum, a.max, m) + rescale(b.sum, b.max, m)};
}

// The row's softmax is NaN when its max is not finite (see softmax.h).
template <class A>
__device__ bool is_nan_row(A max) {
  return !isfinite(max);
}

template <class A>
__device__ MaxSum<A> warp_merge(MaxSum<A> v) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    const MaxSum<A> other{__shfl_xor_sync(0xffffffffu, v.max, offset), __shfl_xor_sync(0xffffffffu, v.sum, offset)};
    v = merge(v, other);
  }
  return v;
}

// Every thread of the team gets the merge of the team's values. Block teams: every
// thread must call it (blockDim.x a multiple of 32); scratch holds kWarpSize values.
template <bool kWarpTeams, class A>
__device__ MaxSum<A> team_merge(MaxSum<A> v, MaxSum<A>* scratch) {
  v = warp_merge(v);
  if constexpr (kWarpTeams) return v;
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  __syncthreads();  // a previous call may still be reading scratch
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < int(blockDim.x / kWarpSize) ? scratch[lane] : empty_max_sum<A>();
  return warp_merge(v);
}

// Every thread of the team gets the team's sum of v.
template <bool kWarpTeams, class A>
__device__ A team_sum(A v, A* scratch) {
  if constexpr (kWarpTeams) return warp_reduce(v, SumOp{});
  else return block_reduce(v, SumOp{}, A(0), scratch);
}

// Rows are shared out to teams: with warp teams each warp of the grid is one team,
// with block teams each block. These give this thread's team, the team count, its lane
// and the team size; a team loops over rows first_team, first_team + teams, ...
template <bool kWarpTeams>
struct Team {
  int64_t first, count;
  int lane, size;
  __device__ Team() {
    if constexpr (kWarpTeams) {
      first = global_thread() / kWarpSize, count = grid_stride() / kWarpSize;
      lane = threadIdx.x % kWarpSize, size = kWarpSize;
    } else {
      first = blockIdx.x, count = gridDim.x, lane = threadIdx.x, size = blockDim.x;
    }
  }
};

// Grid for teams over `rows` rows of kThreadsPerBlock-thread blocks.
inline unsigned team_blocks(int64_t rows, bool warp_teams) {
  const int64_t per_block = warp_teams ? kThreadsPerBlock / kWarpSize : 1;
  return static_cast<unsigned>(std::clamp<int64_t>((rows + per_block - 1) / per_block, 1, kMaxBlocks));
}

// Rows up to this long get a warp; longer ones a block.
constexpr int64_t kWarpRowLimit = 1024;

}  // namespace kiln::cuda::softmax_detail
