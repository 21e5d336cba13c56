// Fused scaled dot-product attention kernels (see attention.h), in plain SIMT CUDA.
//
// Three ideas carry all four kernels:
//
// 1. A warp's 32 lanes walk a 32-wide tile of the *other* sequence. In the forward and
//    in the dq pass a warp owns kRowsPerWarp query rows and its lanes are the 32 keys of
//    the current key tile; in the dk/dv pass a warp owns kRowsPerWarp keys and its lanes
//    are the 32 queries of the current query tile. A lane computes full dot products
//    (over D) against the warp's own rows, so a tile's softmax statistics are warp
//    shuffles, never a __syncthreads.
// 2. Accumulators (output rows, dq, dk, dv) live in registers, split over the lanes by
//    head-dim column: lane l holds columns l, l + 32, ..., so a row of up to
//    32 * kChunks columns needs kChunks registers per lane. The product with a tile
//    broadcasts each lane's probability with __shfl_sync and reads the tile's row from
//    shared memory at consecutive addresses (no bank conflicts).
// 3. Tiles of the other sequence pass through shared memory, loaded by the whole block
//    and shared by its 4 warps (16 rows). Tiles that lanes read one row per lane are
//    padded by one element per row, so the 32 lanes hit 32 different banks.
//
// Forward (flash-attention's online softmax): per row, a running max m and sum l; each
// key tile rescales the accumulated output by exp(m_old - m_new). The output is divided
// by l at the end and lse = m + log(l) is saved. Dropout multiplies the probabilities
// after l is summed, as dropout(softmax(S)) does.
//
// Backward, deterministic (every output element has one owner, no atomics):
//   row_dot kernel: delta_i = rowsum(dO_i * O_i), which equals rowsum(dP * m * P);
//   dq kernel:      blocks own query rows, loop over key tiles: dq = scale * dS k (and
//                   the rows of dS when a float mask needs its gradient);
//   dk/dv kernel:   blocks own keys, loop over query tiles: dv = Pd^T dO, dk = scale * dS^T q.
// Both recompute P = exp(S - lse) from the saved lse and redraw the dropout mask.
//
// Tile sizes. 4 warps x 4 rows = 16 rows per block, tiles of 32 (a warp's width). Four
// rows per warp reuse each shared-memory read of the other tile four times; 128 threads
// keep a block's shared memory small: at D = Dv = 128 in f32 the forward uses 41 KB, the
// dq pass 49 KB and the dk/dv pass 50 KB, so 4 blocks fit an H100 SM (228 KB). Registers
// per lane: 4 x kChunks accumulators (forward, dq) or 2 x 4 x kChunks (dk/dv), 16 and 32
// floats at D = 128. Blocks whose shared memory exceeds the default 48 KB opt in.
// What a later version should add: tensor cores (mma) for the dot products, bf16, and
// vectorised (float4) tile loads.
#include "kiln/cuda/attention.h"

#include "kiln/cuda/attention.cuh"

namespace kiln::cuda {

namespace {

using namespace attention_detail;

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * kWarpSize;
constexpr int kRowsPerWarp = 4;
constexpr int kRowsPerBlock = kWarps * kRowsPerWarp;  // rows a block owns
constexpr int kTile = kWarpSize;                      // rows of the other sequence per tile
constexpr int kMaxChunks = 8;                         // head dims up to 8 * 32 = 256

__device__ inline float log_acc(float x) { return logf(x); }
__device__ inline double log_acc(double x) { return log(x); }

// The block copies `rows` rows of `cols` elements (source rows `src_stride` apart) into a
// shared tile of `tile_rows` rows `dst_stride` apart, zero-filling rows [rows, tile_rows)
// so that a partial tile contributes nothing (0 * garbage could be NaN).
template <class T>
__device__ void load_tile(T* dst, int dst_stride, const T* src, int64_t src_stride, int rows, int tile_rows,
                          int cols) {
  for (int idx = threadIdx.x; idx < tile_rows * cols; idx += blockDim.x) {
    const int r = idx / cols, c = idx % cols;
    dst[r * dst_stride + c] = r < rows ? src[r * src_stride + c] : T(0);
  }
}

// ---- forward --------------------------------------------------------------------------
// Grid: one block per (head, 16 query rows); warp w owns rows row0 + 4w .. row0 + 4w + 3.
// Shared: q rows [16][D], a key tile [32][D + 1] (read one key per lane) and the value
// tile [32][Dv] (read one row at a time across lanes).

template <class T, int kChunks>
__global__ void __launch_bounds__(kThreads) attention_forward_kernel(AttentionArgs<T> a, AttentionOperand<T> out,
                                                                     T* lse) {
  using A = Acc<T>;
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  const int D = static_cast<int>(a.head_dim), Dv = static_cast<int>(a.value_dim);
  T* q_tile = reinterpret_cast<T*>(shared_bytes);
  T* k_tile = q_tile + kRowsPerBlock * D;
  T* v_tile = k_tile + kTile * (D + 1);

  const int64_t row_blocks = (a.q_len + kRowsPerBlock - 1) / kRowsPerBlock;
  const int64_t bh = blockIdx.x / row_blocks, row0 = (blockIdx.x % row_blocks) * kRowsPerBlock;
  const int64_t b = bh / a.heads, h = bh % a.heads;
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int rows = static_cast<int>(std::min<int64_t>(kRowsPerBlock, a.q_len - row0));
  load_tile(q_tile, D, row_ptr(a.q, b, h, row0), a.q.row_stride, rows, kRowsPerBlock, D);

  A o[kRowsPerWarp][kChunks] = {};
  A m[kRowsPerWarp], l[kRowsPerWarp];
  for (int r = 0; r < kRowsPerWarp; ++r) m[r] = minus_inf<A>(), l[r] = A(0);

  // With causal masking no row of the block sees a key past its last row.
  const int64_t keys_end = a.causal ? std::min<int64_t>(a.kv_len, row0 + rows) : a.kv_len;
  for (int64_t j0 = 0; j0 < keys_end; j0 += kTile) {
    const int keys = static_cast<int>(std::min<int64_t>(kTile, a.kv_len - j0));
    __syncthreads();  // the previous tile is no longer read (and q_tile is complete)
    load_tile(k_tile, D + 1, row_ptr(a.k, b, h, j0), a.k.row_stride, keys, kTile, D);
    load_tile(v_tile, Dv, row_ptr(a.v, b, h, j0), a.v.row_stride, keys, kTile, Dv);
    __syncthreads();

    // Lane = key j: its scores against the warp's rows.
    const int64_t j = j0 + lane;
    A s[kRowsPerWarp] = {};
    for (int d = 0; d < D; ++d) {
      const A kd = A(k_tile[lane * (D + 1) + d]);
      for (int r = 0; r < kRowsPerWarp; ++r) s[r] += A(q_tile[(warp * kRowsPerWarp + r) * D + d]) * kd;
    }
    A p[kRowsPerWarp];  // the lane's probability per row, after dropout, relative to the new max
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int64_t i = row0 + warp * kRowsPerWarp + r;
      const A score = masked_score(a, b, h, i, j, s[r]);
      const A new_max = MaxOp{}(m[r], warp_reduce(score, MaxOp{}));
      // Every lane holds the same new_max, so this branch is uniform across the warp.
      const bool none_visible = new_max == minus_inf<A>();
      const A correction = none_visible ? A(1) : exp_acc(m[r] - new_max);
      const A pr = none_visible ? A(0) : exp_acc(score - new_max);
      l[r] = l[r] * correction + warp_reduce(pr, SumOp{});
      m[r] = new_max;
      for (int c = 0; c < kChunks; ++c) o[r][c] *= correction;
      p[r] = pr == A(0) ? A(0) : pr * dropout_factor<T, A>(a.dropout, a, bh, i, j);
    }
    // o[r] += sum over the tile's keys of p[r][key] * v[key].
    for (int key = 0; key < kTile; ++key) {
      A pk[kRowsPerWarp];
      for (int r = 0; r < kRowsPerWarp; ++r) pk[r] = __shfl_sync(0xffffffffu, p[r], key);
      for (int c = 0; c < kChunks; ++c) {
        const int d = lane + c * kWarpSize;
        if (d >= Dv) break;
        const A vd = A(v_tile[key * Dv + d]);
        for (int r = 0; r < kRowsPerWarp; ++r) o[r][c] += pk[r] * vd;
      }
    }
  }

  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t i = row0 + warp * kRowsPerWarp + r;
    if (i >= a.q_len) break;
    const A inv_sum = l[r] > A(0) ? A(1) / l[r] : A(0);
    T* dst = row_ptr(out, b, h, i);
    for (int c = 0; c < kChunks; ++c) {
      const int d = lane + c * kWarpSize;
      if (d < Dv) dst[d] = T(o[r][c] * inv_sum);
    }
    if (lane == 0) lse[bh * a.q_len + i] = T(m[r] == minus_inf<A>() ? m[r] : m[r] + log_acc(l[r]));
  }
}

// ---- backward: dq (and dS rows) -----------------------------------------------------------
// Grid: one block per (head, 16 query rows), as the forward; warp w owns 4 rows and its
// lanes are the keys of the current tile. Shared: q rows [16][D], dO rows [16][Dv], a
// key tile [32][D + 1] and a value tile [32][Dv + 1], both read one key per lane.

template <class T, int kChunks>
__global__ void __launch_bounds__(kThreads) attention_backward_dq_kernel(AttentionArgs<T> a,
                                                                         AttentionBackwardInputs<T> in, T* dq,
                                                                         T* dscores) {
  using A = Acc<T>;
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  const int D = static_cast<int>(a.head_dim), Dv = static_cast<int>(a.value_dim);
  T* q_tile = reinterpret_cast<T*>(shared_bytes);
  T* do_tile = q_tile + kRowsPerBlock * D;
  T* k_tile = do_tile + kRowsPerBlock * Dv;
  T* v_tile = k_tile + kTile * (D + 1);

  const int64_t row_blocks = (a.q_len + kRowsPerBlock - 1) / kRowsPerBlock;
  const int64_t bh = blockIdx.x / row_blocks, row0 = (blockIdx.x % row_blocks) * kRowsPerBlock;
  const int64_t b = bh / a.heads, h = bh % a.heads;
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int rows = static_cast<int>(std::min<int64_t>(kRowsPerBlock, a.q_len - row0));
  load_tile(q_tile, D, row_ptr(a.q, b, h, row0), a.q.row_stride, rows, kRowsPerBlock, D);
  load_tile(do_tile, Dv, row_ptr(in.dout, b, h, row0), in.dout.row_stride, rows, kRowsPerBlock, Dv);

  A lse_r[kRowsPerWarp], delta_r[kRowsPerWarp];
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t i = row0 + warp * kRowsPerWarp + r;
    lse_r[r] = i < a.q_len ? A(in.lse[bh * a.q_len + i]) : minus_inf<A>();
    delta_r[r] = i < a.q_len ? A(in.row_dot_scratch[bh * a.q_len + i]) : A(0);
  }
  A acc[kRowsPerWarp][kChunks] = {};

  // Causal rows see no key past the block's last row, but dS rows are written in full
  // (zeros there), so then every tile is visited.
  const int64_t keys_end = a.causal && !dscores ? std::min<int64_t>(a.kv_len, row0 + rows) : a.kv_len;
  for (int64_t j0 = 0; j0 < keys_end; j0 += kTile) {
    const int keys = static_cast<int>(std::min<int64_t>(kTile, a.kv_len - j0));
    __syncthreads();  // the previous tile is no longer read (and the row tiles are complete)
    load_tile(k_tile, D + 1, row_ptr(a.k, b, h, j0), a.k.row_stride, keys, kTile, D);
    load_tile(v_tile, Dv + 1, row_ptr(a.v, b, h, j0), a.v.row_stride, keys, kTile, Dv);
    __syncthreads();

    const int64_t j = j0 + lane;
    A qk[kRowsPerWarp] = {}, dp[kRowsPerWarp] = {};
    for (int d = 0; d < D; ++d) {
      const A kd = A(k_tile[lane * (D + 1) + d]);
      for (int r = 0; r < kRowsPerWarp; ++r) qk[r] += A(q_tile[(warp * kRowsPerWarp + r) * D + d]) * kd;
    }
    for (int d = 0; d < Dv; ++d) {
      const A vd = A(v_tile[lane * (Dv + 1) + d]);
      for (int r = 0; r < kRowsPerWarp; ++r) dp[r] += A(do_tile[(warp * kRowsPerWarp + r) * Dv + d]) * vd;
    }
    A ds[kRowsPerWarp];
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int64_t i = row0 + warp * kRowsPerWarp + r;
      ds[r] = score_grad(a, b, h, bh, i, j, qk[r], dp[r], lse_r[r], delta_r[r]).dscore;
      if (dscores && i < a.q_len && j < a.kv_len) dscores[(bh * a.q_len + i) * a.kv_len + j] = T(ds[r]);
    }
    // acc[r] += sum over the tile's keys of dS[r][key] * k[key].
    for (int key = 0; key < kTile; ++key) {
      A dk_weight[kRowsPerWarp];
      for (int r = 0; r < kRowsPerWarp; ++r) dk_weight[r] = __shfl_sync(0xffffffffu, ds[r], key);
      for (int c = 0; c < kChunks; ++c) {
        const int d = lane + c * kWarpSize;
        if (d >= D) break;
        const A kd = A(k_tile[key * (D + 1) + d]);
        for (int r = 0; r < kRowsPerWarp; ++r) acc[r][c] += dk_weight[r] * kd;
      }
    }
  }

  if (!dq) return;  // only the rows of dS were asked for
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t i = row0 + warp * kRowsPerWarp + r;
    if (i >= a.q_len) break;
    T* dst = dq + (bh * a.q_len + i) * D;
    for (int c = 0; c < kChunks; ++c) {
      const int d = lane + c * kWarpSize;
      if (d < D) dst[d] = T(A(a.scale) * acc[r][c]);
    }
  }
}

// ---- backward: dk and dv ---------------------------------------------------------------
// Grid: one block per (head, 16 keys); warp w owns keys key0 + 4w .. key0 + 4w + 3 and its
// lanes are the queries of the current query tile. Shared: key rows [16][D], value rows
// [16][Dv], a query tile [32][D + 1] and a dO tile [32][Dv + 1] (read one query per lane
// for the dot products, one row across lanes for the accumulation), and the tile's lse
// and delta.

template <class T, int kChunks>
__global__ void __launch_bounds__(kThreads) attention_backward_kv_kernel(AttentionArgs<T> a,
                                                                         AttentionBackwardInputs<T> in, T* dk,
                                                                         T* dv) {
  using A = Acc<T>;
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  const int D = static_cast<int>(a.head_dim), Dv = static_cast<int>(a.value_dim);
  A* lse_tile = reinterpret_cast<A*>(shared_bytes);
  A* delta_tile = lse_tile + kTile;
  T* k_tile = reinterpret_cast<T*>(delta_tile + kTile);
  T* v_tile = k_tile + kRowsPerBlock * D;
  T* q_tile = v_tile + kRowsPerBlock * Dv;
  T* do_tile = q_tile + kTile * (D + 1);

  const int64_t key_blocks = (a.kv_len + kRowsPerBlock - 1) / kRowsPerBlock;
  const int64_t bh = blockIdx.x / key_blocks, key0 = (blockIdx.x % key_blocks) * kRowsPerBlock;
  const int64_t b = bh / a.heads, h = bh % a.heads;
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int keys = static_cast<int>(std::min<int64_t>(kRowsPerBlock, a.kv_len - key0));
  load_tile(k_tile, D, row_ptr(a.k, b, h, key0), a.k.row_stride, keys, kRowsPerBlock, D);
  load_tile(v_tile, Dv, row_ptr(a.v, b, h, key0), a.v.row_stride, keys, kRowsPerBlock, Dv);

  A dk_acc[kRowsPerWarp][kChunks] = {}, dv_acc[kRowsPerWarp][kChunks] = {};

  // With causal masking, queries before the block's first key see none of its keys.
  const int64_t first_query = a.causal ? key0 / kTile * kTile : 0;
  for (int64_t i0 = first_query; i0 < a.q_len; i0 += kTile) {
    const int queries = static_cast<int>(std::min<int64_t>(kTile, a.q_len - i0));
    __syncthreads();  // the previous tile is no longer read (and the key tiles are complete)
    load_tile(q_tile, D + 1, row_ptr(a.q, b, h, i0), a.q.row_stride, queries, kTile, D);
    load_tile(do_tile, Dv + 1, row_ptr(in.dout, b, h, i0), in.dout.row_stride, queries, kTile, Dv);
    if (threadIdx.x < kTile) {
      const int t = static_cast<int>(threadIdx.x);
      lse_tile[t] = t < queries ? A(in.lse[bh * a.q_len + i0 + t]) : minus_inf<A>();
      delta_tile[t] = t < queries ? A(in.row_dot_scratch[bh * a.q_len + i0 + t]) : A(0);
    }
    __syncthreads();

    // Lane = query i: its scores and dP against the warp's keys.
    const int64_t i = i0 + lane;
    A qk[kRowsPerWarp] = {}, dp[kRowsPerWarp] = {};
    for (int d = 0; d < D; ++d) {
      const A qd = A(q_tile[lane * (D + 1) + d]);
      for (int r = 0; r < kRowsPerWarp; ++r) qk[r] += qd * A(k_tile[(warp * kRowsPerWarp + r) * D + d]);
    }
    for (int d = 0; d < Dv; ++d) {
      const A gd = A(do_tile[lane * (Dv + 1) + d]);
      for (int r = 0; r < kRowsPerWarp; ++r) dp[r] += gd * A(v_tile[(warp * kRowsPerWarp + r) * Dv + d]);
    }
    ScoreGrad<A> grad[kRowsPerWarp];
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int64_t j = key0 + warp * kRowsPerWarp + r;
      grad[r] = score_grad(a, b, h, bh, i, j, qk[r], dp[r], lse_tile[lane], delta_tile[lane]);
    }
    // dv[r] += sum over the tile's queries of Pd[query][r] * dO[query];
    // dk[r] += sum over the tile's queries of dS[query][r] * q[query].
    for (int query = 0; query < kTile; ++query) {
      A pd[kRowsPerWarp], ds[kRowsPerWarp];
      for (int r = 0; r < kRowsPerWarp; ++r) {
        pd[r] = __shfl_sync(0xffffffffu, grad[r].prob_dropped, query);
        ds[r] = __shfl_sync(0xffffffffu, grad[r].dscore, query);
      }
      for (int c = 0; c < kChunks; ++c) {
        const int d = lane + c * kWarpSize;
        if (d < Dv) {
          const A gd = A(do_tile[query * (Dv + 1) + d]);
          for (int r = 0; r < kRowsPerWarp; ++r) dv_acc[r][c] += pd[r] * gd;
        }
        if (d < D) {
          const A qd = A(q_tile[query * (D + 1) + d]);
          for (int r = 0; r < kRowsPerWarp; ++r) dk_acc[r][c] += ds[r] * qd;
        }
      }
    }
  }

  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t j = key0 + warp * kRowsPerWarp + r;
    if (j >= a.kv_len) break;
    for (int c = 0; c < kChunks; ++c) {
      const int d = lane + c * kWarpSize;
      if (dk && d < D) dk[(bh * a.kv_len + j) * D + d] = T(A(a.scale) * dk_acc[r][c]);
      if (dv && d < Dv) dv[(bh * a.kv_len + j) * Dv + d] = T(dv_acc[r][c]);
    }
  }
}

// ---- launch helpers -------------------------------------------------------------------------

// Registers per lane for a head-dim row: columns are split over 32 lanes, and the kernels
// are compiled for these chunk counts only (a dim rounds up to the next one).
template <class F>
void with_chunks(int64_t head_dim, int64_t value_dim, F&& launch) {
  const int64_t widest = std::max<int64_t>({head_dim, value_dim, 1});
  KILN_CHECK(widest <= kMaxChunks * kWarpSize, "scaled_dot_product_attention on CUDA supports head dims up to ",
             kMaxChunks * kWarpSize, ", got D = ", head_dim, " and Dv = ", value_dim);
  const int64_t chunks = (widest + kWarpSize - 1) / kWarpSize;
  if (chunks <= 1) return launch.template operator()<1>();
  if (chunks <= 2) return launch.template operator()<2>();
  if (chunks <= 3) return launch.template operator()<3>();
  if (chunks <= 4) return launch.template operator()<4>();
  if (chunks <= 6) return launch.template operator()<6>();
  return launch.template operator()<8>();
}

}  // namespace

template <class T>
void attention_forward(const AttentionArgs<T>& args, const AttentionOperand<T>& out, T* lse, int device) {
  const unsigned blocks = row_block_grid(args.batch * args.heads, args.q_len, kRowsPerBlock);
  if (blocks == 0) return;
  cudaStream_t s = stream(device);
  const int64_t D = args.head_dim, Dv = args.value_dim;
  const size_t shared = sizeof(T) * (kRowsPerBlock * D + kTile * (D + 1) + kTile * Dv);
  with_chunks(D, Dv, [&]<int kChunks>() {
    launch_with_shared(attention_forward_kernel<T, kChunks>, blocks, kThreads, shared, device, s, args, out, lse);
  });
}

template <class T>
void attention_backward(const AttentionArgs<T>& args, const AttentionBackwardInputs<T>& in,
                        const AttentionGradients<T>& grads, int device) {
  cudaStream_t s = stream(device);
  const int64_t heads = args.batch * args.heads, D = args.head_dim, Dv = args.value_dim;
  launch_row_dot(args, in, s);
  with_chunks(D, Dv, [&]<int kChunks>() {
    if (grads.dq || grads.dscores) {
      const size_t shared = sizeof(T) * (kRowsPerBlock * (D + Dv) + kTile * (D + 1) + kTile * (Dv + 1));
      launch_with_shared(attention_backward_dq_kernel<T, kChunks>, row_block_grid(heads, args.q_len, kRowsPerBlock),
                         kThreads, shared, device, s, args, in, grads.dq, grads.dscores);
    }
    if (grads.dk || grads.dv) {
      const size_t shared =
          sizeof(Acc<T>) * 2 * kTile + sizeof(T) * (kRowsPerBlock * (D + Dv) + kTile * (D + 1) + kTile * (Dv + 1));
      launch_with_shared(attention_backward_kv_kernel<T, kChunks>, row_block_grid(heads, args.kv_len, kRowsPerBlock),
                         kThreads, shared, device, s, args, in, grads.dk, grads.dv);
    }
  });
}

template void attention_forward<float>(const AttentionArgs<float>&, const AttentionOperand<float>&, float*, int);
template void attention_forward<double>(const AttentionArgs<double>&, const AttentionOperand<double>&, double*, int);
template void attention_backward<float>(const AttentionArgs<float>&, const AttentionBackwardInputs<float>&,
                                        const AttentionGradients<float>&, int);
template void attention_backward<double>(const AttentionArgs<double>&, const AttentionBackwardInputs<double>&,
                                         const AttentionGradients<double>&, int);

}  // namespace kiln::cuda
