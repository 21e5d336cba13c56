// What the two CUDA attention implementations share: the SIMT kernels of attention.cu
// (f32/f64) and the bf16 tensor-core kernels of attention_bf16.cu. The masking, dropout
// and probability formulas live here once, so both agree with each other and with the CPU
// kernels element by element; also the row sums of the backward and the launch helpers.
// Included by those two .cu files only.
#pragma once

#include <cmath>
#include <limits>
#include <vector>

#include "kiln/core/error.h"
#include "kiln/core/random.h"
#include "kiln/cuda/attention.h"
#include "kiln/cuda/launch.cuh"

namespace kiln::cuda::attention_detail {

template <class A>
__device__ constexpr A minus_inf() {
  return -std::numeric_limits<A>::infinity();
}

__device__ inline float exp_acc(float x) { return expf(x); }
__device__ inline double exp_acc(double x) { return exp(x); }

// Pointer to row `row` of head (b, h) of an operand.
template <class T>
__device__ T* row_ptr(const AttentionOperand<T>& t, int64_t b, int64_t h, int64_t row) {
  return t.data + b * t.batch_stride + h * t.head_stride + row * t.row_stride;
}

// The masked, scaled score of query i and key j from their dot product, or -inf where
// the key is hidden (out of range, causal, or a false keep-mask entry).
template <class T, class A>
__device__ A masked_score(const AttentionArgs<T>& a, int64_t b, int64_t h, int64_t i, int64_t j, A dot) {
  if (i >= a.q_len || j >= a.kv_len || (a.causal && j > i)) return minus_inf<A>();
  const int64_t* st = a.mask.strides;
  const int64_t at = b * st[0] + h * st[1] + i * st[2] + j * st[3];
  if (a.mask.keep && !a.mask.keep[at]) return minus_inf<A>();
  A s = A(a.scale) * dot;
  if (a.mask.additive) s += A(a.mask.additive[at]);
  return s;
}

// The dropout factor of element (bh, i, j) of the attention matrix: kept_scale or 0,
// drawn exactly as cpu::dropout_forward draws element e (see attention.h).
template <class T, class A>
__device__ A dropout_factor(const AttentionDropoutDraw<T>& d, const AttentionArgs<T>& a, int64_t bh, int64_t i,
                            int64_t j) {
  if (!d.enabled) return A(1);
  const uint64_t e = static_cast<uint64_t>((bh * a.q_len + i) * a.kv_len + j);
  const auto words = Philox::block(d.seed, d.offset + e / 4);
  // Selected by value, not words[e % 4]: a runtime index would put the array in local memory.
  const uint32_t word = e % 4 == 0 ? words[0] : e % 4 == 1 ? words[1] : e % 4 == 2 ? words[2] : words[3];
  return (word >> 8) >= d.keep_threshold ? A(d.kept_scale) : A(0);
}

// The probability of a score given its row's logsumexp; 0 for hidden keys and for rows
// with no visible key (lse = -inf, where S - lse would be NaN).
template <class A>
__device__ A prob_from_lse(A score, A lse) {
  return lse == minus_inf<A>() ? A(0) : exp_acc(score - lse);
}

// ---- backward: delta_i = rowsum(dO_i * O_i) ---------------------------------------------
// One warp per query row (grid-stride over rows); lanes split the row's columns.

template <class T>
__global__ void attention_row_dot_kernel(AttentionArgs<T> a, AttentionOperand<const T> out,
                                         AttentionOperand<const T> dout, T* delta) {
  using A = Acc<T>;
  const int lane = threadIdx.x % kWarpSize;
  const int64_t rows = a.batch * a.heads * a.q_len;
  const int64_t warps_in_grid = grid_stride() / kWarpSize;
  for (int64_t row = global_thread() / kWarpSize; row < rows; row += warps_in_grid) {
    const int64_t bh = row / a.q_len, i = row % a.q_len, b = bh / a.heads, h = bh % a.heads;
    const T* o = row_ptr(out, b, h, i);
    const T* g = row_ptr(dout, b, h, i);
    A sum = 0;
    for (int64_t d = lane; d < a.value_dim; d += kWarpSize) sum += A(o[d]) * A(g[d]);
    sum = warp_reduce(sum, SumOp{});
    if (lane == 0) delta[row] = T(sum);
  }
}

// Fills in.row_dot_scratch with rowsum(dO * O) for every query row of the call.
template <class T>
void launch_row_dot(const AttentionArgs<T>& args, const AttentionBackwardInputs<T>& in, cudaStream_t s) {
  const int64_t rows = args.batch * args.heads * args.q_len;
  if (rows == 0) return;
  attention_row_dot_kernel<T><<<blocks_for(rows * kWarpSize), kThreadsPerBlock, 0, s>>>(args, in.out, in.dout,
                                                                                          in.row_dot_scratch);
  KILN_CUDA_LAUNCH_CHECK();
}

// The gradient of one score and its dropped-out probability, from the recomputed
// probability p, the dropout factor, dP = dO_i . v_j and delta_i.
template <class A>
struct ScoreGrad {
  A prob_dropped;  // p * factor: the weight of dO_i in dv_j
  A dscore;        // p * (dP * factor - delta_i)
};

template <class T, class A>
__device__ ScoreGrad<A> score_grad(const AttentionArgs<T>& a, int64_t b, int64_t h, int64_t bh, int64_t i,
                                   int64_t j, A qk_dot, A dp, A lse_i, A delta_i) {
  const A score = masked_score(a, b, h, i, j, qk_dot);
  if (score == minus_inf<A>()) return {A(0), A(0)};
  const A p = prob_from_lse(score, lse_i);
  const A factor = dropout_factor<T, A>(a.dropout, a, bh, i, j);
  return {p * factor, p * (dp * factor - delta_i)};
}

// Blocks for `heads` heads of `rows` rows, `rows_per_block` rows per block.
inline unsigned row_block_grid(int64_t heads, int64_t rows, int64_t rows_per_block) {
  const int64_t blocks = heads * ((rows + rows_per_block - 1) / rows_per_block);
  KILN_CHECK(blocks <= std::numeric_limits<int>::max(), "scaled_dot_product_attention on CUDA: ", blocks,
             " blocks exceed the grid limit");
  return static_cast<unsigned>(blocks);
}

// Lets `kernel` use `shared` bytes of dynamic shared memory on `device`, beyond the default
// 48 KB when the device allows it. The opt-in is a driver query and a set; each thread
// remembers what it granted per (kernel, device), so a training step's launches skip both.
inline void allow_shared(const void* kernel, size_t shared, int device) {
  constexpr size_t kDefaultShared = 48 * 1024;
  if (shared <= kDefaultShared) return;
  struct Grant {
    const void* kernel;
    int device;
    size_t bytes;
  };
  thread_local std::vector<Grant> granted;
  Grant* known = nullptr;
  for (Grant& g : granted)
    if (g.kernel == kernel && g.device == device) known = &g;
  if (known && shared <= known->bytes) return;
  int max_shared = 0;
  KILN_CUDA_CHECK(cudaDeviceGetAttribute(&max_shared, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  KILN_CHECK(shared <= static_cast<size_t>(max_shared), "scaled_dot_product_attention on CUDA: these head dims need ",
             shared, " bytes of shared memory per block; cuda:", device, " allows ", max_shared);
  KILN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared)));
  if (known) known->bytes = shared;
  else granted.push_back({kernel, device, shared});
}

// Launches `kernel` with `shared` bytes of dynamic shared memory (see allow_shared).
template <class Kernel, class... Args>
void launch_with_shared(Kernel kernel, unsigned blocks, int threads, size_t shared, int device, cudaStream_t s,
                        Args... args) {
  if (blocks == 0) return;
  allow_shared(reinterpret_cast<const void*>(kernel), shared, device);
  kernel<<<blocks, threads, shared, s>>>(args...);
  KILN_CUDA_LAUNCH_CHECK();
}

}  // namespace kiln::cuda::attention_detail
