// Scaled dot-product attention on bf16 tensor cores, for autocast (see attention.h).
//
// The same computation as the SIMT kernels of attention.cu, with every matrix product
// (q k^T, P v, dO v^T, dS k, Pd^T dO, dS^T q) on tensor cores: operands are bf16 tiles in
// shared memory, products accumulate in f32 (WMMA m16n16k16). The operands stay f32 in
// global memory and are rounded to bf16 as a tile is loaded; the softmax statistics, the
// logsumexp, the row sums and every output are f32. So the only roundings are those of a
// bf16 GEMM: the inputs, and the probabilities / score gradients that feed the second
// product of each pass (as in flash-attention).
//
// Shape of the work (all three kernels): 4 warps per block, each warp owns 16 rows (one
// m16 tile) of the block's sequence, 64 rows per block; the other sequence streams through
// shared memory in tiles of 64 rows, shared by the warps. A warp computes its 16 x 64 block
// of dot products into an f32 scratch in shared memory, then its 32 lanes walk that block
// row by row (lane = column, two columns per lane), so a row's max and sum are warp
// reductions and the masking / dropout / probability formulas are attention.cuh's, the
// same as the SIMT kernels'. Head dims are padded with zeros to 32, 64 or 128 (kDim):
// padded columns add nothing to a product.
//
//   forward:   per key tile, S = q k^T, online softmax (running max m, sum l per row),
//              o = o * exp(m_old - m_new) + P v. The output o lives in registers in a
//              layout of our own (lane l holds column l % 16 of rows l / 16 + 2k of each
//              16 x 16 chunk) because WMMA's accumulator layout is opaque: each chunk of
//              P v is stored to the scratch and added row-scaled into the registers.
//   dq pass:   blocks own query rows, loop over key tiles: dS from S = q k^T and
//              dP = dO v^T, then dq += dS k in WMMA accumulators (no per-row scaling).
//   dk/dv:     blocks own keys, loop over query tiles: S^T = k q^T and dP^T = v dO^T,
//              then dv += Pd^T dO and dk += dS^T q.
// Deterministic like attention.cu: every output element has one owner, no atomics.
//
// Shared memory per block, kDim = 64 / 128: forward 56 / 80 KB, dq 85 / 117 KB, dk/dv
// 95 / 127 KB, so at kDim = 128 the backward runs one 4-warp block per H100 SM. Occupancy
// is what a tuned version would improve (a softmax on mma.sync register fragments instead
// of the f32 scratch); nothing here has been timed on a GPU yet.
#include <cuda_bf16.h>
#include <mma.h>

#include "kiln/cuda/attention.cuh"

namespace kiln::cuda {

namespace {

using namespace attention_detail;
namespace wmma = nvcuda::wmma;
using bf16 = __nv_bfloat16;

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * kWarpSize;
constexpr int kM = 16;                         // a WMMA tile is 16 x 16 x 16
constexpr int kBlockRows = kWarps * kM;        // rows a block owns
constexpr int kTile = 64;                      // rows of the other sequence per tile
constexpr int kColsPerLane = kTile / kWarpSize;
// Row strides of the shared tiles, in elements. bf16 strides are multiples of 8 and f32
// strides multiples of 4 (WMMA's rule); the padding moves consecutive rows to other banks.
constexpr int kScoreLd = kTile + 16;  // f32 16 x 64 scratch: rows r and r + 1 a half-bank-row apart
constexpr int kProbLd = kTile + 8;    // bf16 16 x 64 probabilities / score gradients
template <int kDim> constexpr int tile_ld() { return kDim + 8; }  // bf16 tiles of head-dim rows
// The block's own rows and the streamed tiles share one tile shape (ForwardShared & co.).
static_assert(kBlockRows == kTile, "the shared-memory layouts size the block's rows as a tile");

using FragA = wmma::fragment<wmma::matrix_a, kM, kM, kM, bf16, wmma::row_major>;
using FragBRows = wmma::fragment<wmma::matrix_b, kM, kM, kM, bf16, wmma::row_major>;
using FragBCols = wmma::fragment<wmma::matrix_b, kM, kM, kM, bf16, wmma::col_major>;
using FragAcc = wmma::fragment<wmma::accumulator, kM, kM, kM, float>;

// ---- tiles and warp products ----------------------------------------------------------

// The block rounds `rows` rows of `cols` f32 elements (rows `src_stride` apart) into a bf16
// tile of `tile_rows` x kDim; rows past `rows` and columns past `cols` are zero.
template <int kDim>
__device__ void load_bf16_tile(bf16* dst, const float* src, int64_t src_stride, int rows, int tile_rows, int cols) {
  for (int idx = threadIdx.x; idx < tile_rows * kDim; idx += blockDim.x) {
    const int r = idx / kDim, c = idx % kDim;
    const float x = r < rows && c < cols ? src[r * src_stride + c] : 0.f;
    dst[r * tile_ld<kDim>() + c] = __float2bfloat16_rn(x);
  }
}

// out (16 x kTile f32, row stride kScoreLd) = a b^T: the dot products of the warp's 16 rows
// `a` with the kTile rows of the tile `b` (both kDim wide, stride tile_ld).
template <int kDim>
__device__ void warp_dot_rows(const bf16* a, const bf16* b, float* out) {
  constexpr int ld = tile_ld<kDim>();
#pragma unroll
  for (int n = 0; n < kTile / kM; ++n) {
    FragAcc acc;
    wmma::fill_fragment(acc, 0.f);
#pragma unroll
    for (int t = 0; t < kDim / kM; ++t) {
      FragA fa;
      FragBCols fb;  // b's rows n*16.. read as columns: b^T
      wmma::load_matrix_sync(fa, a + t * kM, ld);
      wmma::load_matrix_sync(fb, b + n * kM * ld + t * kM, ld);
      wmma::mma_sync(acc, fa, fb, acc);
    }
    wmma::store_matrix_sync(out + n * kM, acc, kScoreLd, wmma::mem_row_major);
  }
}

// acc (16 x kDim, as kDim / 16 accumulators) += p c, with p the warp's 16 x kTile bf16
// block (stride kProbLd) and c a tile of kTile rows, kDim wide.
template <int kDim>
__device__ void warp_accumulate(FragAcc (&acc)[kDim / kM], const bf16* p, const bf16* c) {
  constexpr int ld = tile_ld<kDim>();
#pragma unroll
  for (int t = 0; t < kTile / kM; ++t) {
    FragA fa;
    wmma::load_matrix_sync(fa, p + t * kM, kProbLd);
#pragma unroll
    for (int n = 0; n < kDim / kM; ++n) {
      FragBRows fb;
      wmma::load_matrix_sync(fb, c + t * kM * ld + n * kM, ld);
      wmma::mma_sync(acc[n], fa, fb, acc[n]);
    }
  }
}

// Writes the warp's 16 x kDim accumulators to `dst` rows (row r at dst + r * dst_stride),
// times `scale`, for the first `rows` rows and `cols` columns, through the 16 x 16 corner of
// the warp's f32 scratch.
template <int kDim>
__device__ void warp_store_rows(const FragAcc (&acc)[kDim / kM], float* scratch, float* dst, int64_t dst_stride,
                                int rows, int cols, float scale) {
  const int lane = threadIdx.x % kWarpSize;
#pragma unroll
  for (int n = 0; n < kDim / kM; ++n) {
    wmma::store_matrix_sync(scratch, acc[n], kScoreLd, wmma::mem_row_major);
    __syncwarp();
    for (int e = lane; e < kM * kM; e += kWarpSize) {
      const int r = e / kM, c = n * kM + e % kM;
      if (r < rows && c < cols) dst[r * dst_stride + c] = scale * scratch[r * kScoreLd + e % kM];
    }
    __syncwarp();
  }
}

// ---- forward --------------------------------------------------------------------------
// Grid: one block per (head, 64 query rows). Shared: the block's q rows, a key tile and
// a value tile (bf16, 64 x kDim each), and per warp an f32 16 x 64 scratch and a bf16
// 16 x 64 probability block.

template <int kDim>
struct ForwardShared {
  static constexpr size_t tile = size_t(kTile) * tile_ld<kDim>() * sizeof(bf16);
  static constexpr size_t q = 0, k = q + tile, v = k + tile, scores = v + tile;
  static constexpr size_t probs = scores + size_t(kWarps) * kM * kScoreLd * sizeof(float);
  static constexpr size_t bytes = probs + size_t(kWarps) * kM * kProbLd * sizeof(bf16);
};

template <int kDim>
__global__ void __launch_bounds__(kThreads) attention_bf16_forward_kernel(AttentionArgs<float> a,
                                                                          AttentionOperand<float> out, float* lse) {
  using Smem = ForwardShared<kDim>;
  constexpr int ld = tile_ld<kDim>(), kChunks = kDim / kM;
  extern __shared__ __align__(128) unsigned char shared_bytes[];
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  bf16* q_tile = reinterpret_cast<bf16*>(shared_bytes + Smem::q);
  bf16* k_tile = reinterpret_cast<bf16*>(shared_bytes + Smem::k);
  bf16* v_tile = reinterpret_cast<bf16*>(shared_bytes + Smem::v);
  float* scores = reinterpret_cast<float*>(shared_bytes + Smem::scores) + warp * kM * kScoreLd;
  bf16* probs = reinterpret_cast<bf16*>(shared_bytes + Smem::probs) + warp * kM * kProbLd;

  const int D = static_cast<int>(a.head_dim), Dv = static_cast<int>(a.value_dim);
  const int64_t row_blocks = (a.q_len + kBlockRows - 1) / kBlockRows;
  const int64_t bh = blockIdx.x / row_blocks, row0 = (blockIdx.x % row_blocks) * kBlockRows;
  const int64_t b = bh / a.heads, h = bh % a.heads, warp_row0 = row0 + warp * kM;
  const int rows = static_cast<int>(std::min<int64_t>(kBlockRows, a.q_len - row0));
  load_bf16_tile<kDim>(q_tile, row_ptr(a.q, b, h, row0), a.q.row_stride, rows, kBlockRows, D);

  // Per row r of the warp (the same in every lane): running max, sum, and this tile's
  // rescaling factor. o[n][k]: row 2k + lane / 16, column n * 16 + lane % 16.
  float m[kM], l[kM], correction[kM];
#pragma unroll
  for (int r = 0; r < kM; ++r) m[r] = minus_inf<float>(), l[r] = 0.f;
  float o[kChunks][kM / 2] = {};
  const int half = lane / kM;  // which of the two rows of a pair this lane holds in o

  const int64_t keys_end = a.causal ? std::min<int64_t>(a.kv_len, row0 + rows) : a.kv_len;
  for (int64_t j0 = 0; j0 < keys_end; j0 += kTile) {
    const int keys = static_cast<int>(std::min<int64_t>(kTile, a.kv_len - j0));
    __syncthreads();  // the previous tiles are no longer read (and q_tile is complete)
    load_bf16_tile<kDim>(k_tile, row_ptr(a.k, b, h, j0), a.k.row_stride, keys, kTile, D);
    load_bf16_tile<kDim>(v_tile, row_ptr(a.v, b, h, j0), a.v.row_stride, keys, kTile, Dv);
    __syncthreads();

    warp_dot_rows<kDim>(q_tile + warp * kM * ld, k_tile, scores);
    __syncwarp();

    // Online softmax, row by row; lane = columns lane and lane + 32 of the tile.
#pragma unroll
    for (int r = 0; r < kM; ++r) {
      const int64_t i = warp_row0 + r;
      float s[kColsPerLane], tile_max = minus_inf<float>();
#pragma unroll
      for (int c = 0; c < kColsPerLane; ++c) {
        const int col = lane + c * kWarpSize;
        s[c] = masked_score(a, b, h, i, j0 + col, scores[r * kScoreLd + col]);
        tile_max = MaxOp{}(tile_max, s[c]);
      }
      const float new_max = MaxOp{}(m[r], warp_reduce(tile_max, MaxOp{}));
      const bool none_visible = new_max == minus_inf<float>();  // uniform across the warp
      correction[r] = none_visible ? 1.f : expf(m[r] - new_max);
      float sum = 0.f;
#pragma unroll
      for (int c = 0; c < kColsPerLane; ++c) {
        const int col = lane + c * kWarpSize;
        const float p = none_visible ? 0.f : expf(s[c] - new_max);
        sum += p;
        const float kept = p == 0.f ? 0.f : p * dropout_factor<float, float>(a.dropout, a, bh, i, j0 + col);
        probs[r * kProbLd + col] = __float2bfloat16_rn(kept);
      }
      l[r] = l[r] * correction[r] + warp_reduce(sum, SumOp{});
      m[r] = new_max;
    }
    __syncwarp();  // probs complete; scores free for the products below

    // o = o * correction + P v, one 16 x 16 chunk of columns at a time.
    FragA p_frag[kTile / kM];
#pragma unroll
    for (int t = 0; t < kTile / kM; ++t) wmma::load_matrix_sync(p_frag[t], probs + t * kM, kProbLd);
#pragma unroll
    for (int n = 0; n < kChunks; ++n) {
      FragAcc pv;
      wmma::fill_fragment(pv, 0.f);
#pragma unroll
      for (int t = 0; t < kTile / kM; ++t) {
        FragBRows v_frag;
        wmma::load_matrix_sync(v_frag, v_tile + t * kM * ld + n * kM, ld);
        wmma::mma_sync(pv, p_frag[t], v_frag, pv);
      }
      wmma::store_matrix_sync(scores, pv, kScoreLd, wmma::mem_row_major);
      __syncwarp();
#pragma unroll
      for (int k = 0; k < kM / 2; ++k) {
        const int r = 2 * k + half;
        const float scale = half ? correction[2 * k + 1] : correction[2 * k];
        o[n][k] = o[n][k] * scale + scores[r * kScoreLd + lane % kM];
      }
      __syncwarp();  // the chunk is read before the next one overwrites it
    }
  }

#pragma unroll
  for (int k = 0; k < kM / 2; ++k) {
    const int r = 2 * k + half;
    const int64_t i = warp_row0 + r;
    const float sum = half ? l[2 * k + 1] : l[2 * k];
    if (i >= a.q_len) continue;
    const float inv_sum = sum > 0.f ? 1.f / sum : 0.f;
    float* dst = row_ptr(out, b, h, i);
#pragma unroll
    for (int n = 0; n < kChunks; ++n) {
      const int d = n * kM + lane % kM;
      if (d < Dv) dst[d] = o[n][k] * inv_sum;
    }
  }
  if (lane == 0) {
#pragma unroll
    for (int r = 0; r < kM; ++r) {
      const int64_t i = warp_row0 + r;
      if (i < a.q_len) lse[bh * a.q_len + i] = m[r] == minus_inf<float>() ? m[r] : m[r] + logf(l[r]);
    }
  }
}

// ---- backward: dq (and dS rows) -----------------------------------------------------------
// Grid: one block per (head, 64 query rows). Shared: the block's q and dO rows, a key and
// a value tile (bf16), per warp two f32 16 x 64 scratches (S, dP) and a bf16 dS block.

template <int kDim>
struct DqShared {
  static constexpr size_t tile = size_t(kTile) * tile_ld<kDim>() * sizeof(bf16);
  static constexpr size_t scratch = size_t(kWarps) * kM * kScoreLd * sizeof(float);
  static constexpr size_t q = 0, dout = q + tile, k = dout + tile, v = k + tile, scores = v + tile;
  static constexpr size_t dprobs = scores + scratch, dscores = dprobs + scratch;
  static constexpr size_t lse = dscores + size_t(kWarps) * kM * kProbLd * sizeof(bf16);
  static constexpr size_t delta = lse + kBlockRows * sizeof(float);
  static constexpr size_t bytes = delta + kBlockRows * sizeof(float);
};

template <int kDim>
__global__ void __launch_bounds__(kThreads) attention_bf16_backward_dq_kernel(AttentionArgs<float> a,
                                                                              AttentionBackwardInputs<float> in,
                                                                              float* dq, float* dscores) {
  using Smem = DqShared<kDim>;
  constexpr int ld = tile_ld<kDim>();
  extern __shared__ __align__(128) unsigned char shared_bytes[];
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  bf16* q_tile = reinterpret_cast<bf16*>(shared_bytes + Smem::q);
  bf16* do_tile = reinterpret_cast<bf16*>(shared_bytes + Smem::dout);
  bf16* k_tile = reinterpret_cast<bf16*>(shared_bytes + Smem::k);
  bf16* v_tile = reinterpret_cast<bf16*>(shared_bytes + Smem::v);
  float* qk = reinterpret_cast<float*>(shared_bytes + Smem::scores) + warp * kM * kScoreLd;
  float* dp = reinterpret_cast<float*>(shared_bytes + Smem::dprobs) + warp * kM * kScoreLd;
  bf16* ds = reinterpret_cast<bf16*>(shared_bytes + Smem::dscores) + warp * kM * kProbLd;

  const int D = static_cast<int>(a.head_dim), Dv = static_cast<int>(a.value_dim);
  const int64_t row_blocks = (a.q_len + kBlockRows - 1) / kBlockRows;
  const int64_t bh = blockIdx.x / row_blocks, row0 = (blockIdx.x % row_blocks) * kBlockRows;
  const int64_t b = bh / a.heads, h = bh % a.heads, warp_row0 = row0 + warp * kM;
  const int rows = static_cast<int>(std::min<int64_t>(kBlockRows, a.q_len - row0));
  load_bf16_tile<kDim>(q_tile, row_ptr(a.q, b, h, row0), a.q.row_stride, rows, kBlockRows, D);
  load_bf16_tile<kDim>(do_tile, row_ptr(in.dout, b, h, row0), in.dout.row_stride, rows, kBlockRows, Dv);

  // The warp's rows' lse and delta, in shared memory rather than registers: with them in
  // registers the fully unrolled row loop below spilled.
  float* lse_rows = reinterpret_cast<float*>(shared_bytes + Smem::lse) + warp * kM;
  float* delta_rows = reinterpret_cast<float*>(shared_bytes + Smem::delta) + warp * kM;
  if (lane < kM) {
    const int64_t i = warp_row0 + lane;
    lse_rows[lane] = i < a.q_len ? in.lse[bh * a.q_len + i] : minus_inf<float>();
    delta_rows[lane] = i < a.q_len ? in.row_dot_scratch[bh * a.q_len + i] : 0.f;
  }
  FragAcc acc[kDim / kM];
#pragma unroll
  for (int n = 0; n < kDim / kM; ++n) wmma::fill_fragment(acc[n], 0.f);

  // As attention.cu: dS rows are written in full (zeros past the causal edge).
  const int64_t keys_end = a.causal && !dscores ? std::min<int64_t>(a.kv_len, row0 + rows) : a.kv_len;
  for (int64_t j0 = 0; j0 < keys_end; j0 += kTile) {
    const int keys = static_cast<int>(std::min<int64_t>(kTile, a.kv_len - j0));
    __syncthreads();  // the previous tiles are no longer read (and the row tiles are complete)
    load_bf16_tile<kDim>(k_tile, row_ptr(a.k, b, h, j0), a.k.row_stride, keys, kTile, D);
    load_bf16_tile<kDim>(v_tile, row_ptr(a.v, b, h, j0), a.v.row_stride, keys, kTile, Dv);
    __syncthreads();

    warp_dot_rows<kDim>(q_tile + warp * kM * ld, k_tile, qk);
    warp_dot_rows<kDim>(do_tile + warp * kM * ld, v_tile, dp);
    __syncwarp();
#pragma unroll 2  // no per-row registers here; a full unroll only costs registers (it spilled)
    for (int r = 0; r < kM; ++r) {
      const int64_t i = warp_row0 + r;
#pragma unroll
      for (int c = 0; c < kColsPerLane; ++c) {
        const int col = lane + c * kWarpSize;
        const int64_t j = j0 + col;
        const float g = score_grad(a, b, h, bh, i, j, qk[r * kScoreLd + col], dp[r * kScoreLd + col], lse_rows[r],
                                   delta_rows[r])
                            .dscore;
        ds[r * kProbLd + col] = __float2bfloat16_rn(g);
        if (dscores && i < a.q_len && j < a.kv_len) dscores[(bh * a.q_len + i) * a.kv_len + j] = g;
      }
    }
    __syncwarp();
    warp_accumulate<kDim>(acc, ds, k_tile);
  }

  if (!dq) return;  // only the rows of dS were asked for
  // A warp past the last row stores nothing (and forms no pointer past the end); the
  // condition is the same for all its lanes, as warp_store_rows needs.
  const int warp_rows = static_cast<int>(std::clamp<int64_t>(a.q_len - warp_row0, 0, kM));
  if (warp_rows > 0) warp_store_rows<kDim>(acc, qk, dq + (bh * a.q_len + warp_row0) * D, D, warp_rows, D, a.scale);
}

// ---- backward: dk and dv ---------------------------------------------------------------
// Grid: one block per (head, 64 keys). Shared: the block's key and value rows, a query
// and a dO tile (bf16), the query tile's lse and delta, and per warp two f32 16 x 64
// scratches (S^T, dP^T) and two bf16 blocks (Pd^T, dS^T).

template <int kDim>
struct KvShared {
  static constexpr size_t tile = size_t(kTile) * tile_ld<kDim>() * sizeof(bf16);
  static constexpr size_t scratch = size_t(kWarps) * kM * kScoreLd * sizeof(float);
  static constexpr size_t block = size_t(kWarps) * kM * kProbLd * sizeof(bf16);
  static constexpr size_t k = 0, v = k + tile, q = v + tile, dout = q + tile, scores = dout + tile;
  static constexpr size_t dprobs = scores + scratch, probs = dprobs + scratch, dscores = probs + block;
  static constexpr size_t lse = dscores + block, delta = lse + kTile * sizeof(float);
  static constexpr size_t bytes = delta + kTile * sizeof(float);
};

template <int kDim>
__global__ void __launch_bounds__(kThreads) attention_bf16_backward_kv_kernel(AttentionArgs<float> a,
                                                                              AttentionBackwardInputs<float> in,
                                                                              float* dk, float* dv) {
  using Smem = KvShared<kDim>;
  constexpr int ld = tile_ld<kDim>();
  extern __shared__ __align__(128) unsigned char shared_bytes[];
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  bf16* k_tile = reinterpret_cast<bf16*>(shared_bytes + Smem::k);
  bf16* v_tile = reinterpret_cast<bf16*>(shared_bytes + Smem::v);
  bf16* q_tile = reinterpret_cast<bf16*>(shared_bytes + Smem::q);
  bf16* do_tile = reinterpret_cast<bf16*>(shared_bytes + Smem::dout);
  float* kq = reinterpret_cast<float*>(shared_bytes + Smem::scores) + warp * kM * kScoreLd;
  float* dp = reinterpret_cast<float*>(shared_bytes + Smem::dprobs) + warp * kM * kScoreLd;
  bf16* pd = reinterpret_cast<bf16*>(shared_bytes + Smem::probs) + warp * kM * kProbLd;
  bf16* ds = reinterpret_cast<bf16*>(shared_bytes + Smem::dscores) + warp * kM * kProbLd;
  float* lse_tile = reinterpret_cast<float*>(shared_bytes + Smem::lse);
  float* delta_tile = reinterpret_cast<float*>(shared_bytes + Smem::delta);

  const int D = static_cast<int>(a.head_dim), Dv = static_cast<int>(a.value_dim);
  const int64_t key_blocks = (a.kv_len + kBlockRows - 1) / kBlockRows;
  const int64_t bh = blockIdx.x / key_blocks, key0 = (blockIdx.x % key_blocks) * kBlockRows;
  const int64_t b = bh / a.heads, h = bh % a.heads, warp_key0 = key0 + warp * kM;
  const int keys = static_cast<int>(std::min<int64_t>(kBlockRows, a.kv_len - key0));
  load_bf16_tile<kDim>(k_tile, row_ptr(a.k, b, h, key0), a.k.row_stride, keys, kBlockRows, D);
  load_bf16_tile<kDim>(v_tile, row_ptr(a.v, b, h, key0), a.v.row_stride, keys, kBlockRows, Dv);

  FragAcc dk_acc[kDim / kM], dv_acc[kDim / kM];
#pragma unroll
  for (int n = 0; n < kDim / kM; ++n) wmma::fill_fragment(dk_acc[n], 0.f), wmma::fill_fragment(dv_acc[n], 0.f);

  // With causal masking, queries before the block's first key see none of its keys.
  const int64_t first_query = a.causal ? key0 / kTile * kTile : 0;
  for (int64_t i0 = first_query; i0 < a.q_len; i0 += kTile) {
    const int queries = static_cast<int>(std::min<int64_t>(kTile, a.q_len - i0));
    __syncthreads();  // the previous tiles are no longer read (and the key tiles are complete)
    load_bf16_tile<kDim>(q_tile, row_ptr(a.q, b, h, i0), a.q.row_stride, queries, kTile, D);
    load_bf16_tile<kDim>(do_tile, row_ptr(in.dout, b, h, i0), in.dout.row_stride, queries, kTile, Dv);
    if (threadIdx.x < kTile) {
      const int t = static_cast<int>(threadIdx.x);
      lse_tile[t] = t < queries ? in.lse[bh * a.q_len + i0 + t] : minus_inf<float>();
      delta_tile[t] = t < queries ? in.row_dot_scratch[bh * a.q_len + i0 + t] : 0.f;
    }
    __syncthreads();

    warp_dot_rows<kDim>(k_tile + warp * kM * ld, q_tile, kq);  // S^T: row = key, column = query
    warp_dot_rows<kDim>(v_tile + warp * kM * ld, do_tile, dp);  // dP^T
    __syncwarp();
#pragma unroll 2  // as in the dq kernel
    for (int r = 0; r < kM; ++r) {
      const int64_t j = warp_key0 + r;
#pragma unroll
      for (int c = 0; c < kColsPerLane; ++c) {
        const int col = lane + c * kWarpSize;
        const ScoreGrad<float> g = score_grad(a, b, h, bh, i0 + col, j, kq[r * kScoreLd + col],
                                              dp[r * kScoreLd + col], lse_tile[col], delta_tile[col]);
        pd[r * kProbLd + col] = __float2bfloat16_rn(g.prob_dropped);
        ds[r * kProbLd + col] = __float2bfloat16_rn(g.dscore);
      }
    }
    __syncwarp();
    warp_accumulate<kDim>(dv_acc, pd, do_tile);
    warp_accumulate<kDim>(dk_acc, ds, q_tile);
  }

  const int warp_keys = static_cast<int>(std::clamp<int64_t>(a.kv_len - warp_key0, 0, kM));
  if (warp_keys == 0) return;  // past the last key: nothing to store (uniform over the warp)
  if (dk) warp_store_rows<kDim>(dk_acc, kq, dk + (bh * a.kv_len + warp_key0) * D, D, warp_keys, D, a.scale);
  if (dv) warp_store_rows<kDim>(dv_acc, kq, dv + (bh * a.kv_len + warp_key0) * Dv, Dv, warp_keys, Dv, 1.f);
}

// ---- launch helpers -------------------------------------------------------------------------

// Runs `launch` with the padded head dim (32, 64 or 128) that holds both D and Dv.
template <class F>
void with_padded_dim(int64_t head_dim, int64_t value_dim, F&& launch) {
  const int64_t widest = std::max<int64_t>({head_dim, value_dim, 1});
  KILN_CHECK(widest <= kAttentionBf16MaxHeadDim, "scaled_dot_product_attention in bf16 supports head dims up to ",
             kAttentionBf16MaxHeadDim, ", got D = ", head_dim, " and Dv = ", value_dim);
  if (widest <= 32) return launch.template operator()<32>();
  if (widest <= 64) return launch.template operator()<64>();
  return launch.template operator()<128>();
}

}  // namespace

void attention_forward_bf16(const AttentionArgs<float>& args, const AttentionOperand<float>& out, float* lse,
                            int device) {
  const unsigned blocks = row_block_grid(args.batch * args.heads, args.q_len, kBlockRows);
  if (blocks == 0) return;
  with_padded_dim(args.head_dim, args.value_dim, [&]<int kDim>() {
    launch_with_shared(attention_bf16_forward_kernel<kDim>, blocks, kThreads, ForwardShared<kDim>::bytes, device,
                       stream(device), args, out, lse);
  });
}

void attention_backward_bf16(const AttentionArgs<float>& args, const AttentionBackwardInputs<float>& in,
                             const AttentionGradients<float>& grads, int device) {
  cudaStream_t s = stream(device);
  const int64_t heads = args.batch * args.heads;
  launch_row_dot(args, in, s);
  with_padded_dim(args.head_dim, args.value_dim, [&]<int kDim>() {
    if (grads.dq || grads.dscores) {
      launch_with_shared(attention_bf16_backward_dq_kernel<kDim>, row_block_grid(heads, args.q_len, kBlockRows),
                         kThreads, DqShared<kDim>::bytes, device, s, args, in, grads.dq, grads.dscores);
    }
    if (grads.dk || grads.dv) {
      launch_with_shared(attention_bf16_backward_kv_kernel<kDim>, row_block_grid(heads, args.kv_len, kBlockRows),
                         kThreads, KvShared<kDim>::bytes, device, s, args, in, grads.dk, grads.dv);
    }
  });
}

}  // namespace kiln::cuda
