#include "kiln/ops/cpu/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kiln/core/random.h"
#include "kiln/ops/cpu/fast_exp.h"
#include "kiln/ops/cpu/gemm.h"

namespace kiln::cpu {

namespace {

template <class T>
constexpr T kMinusInf = -std::numeric_limits<T>::infinity();

// Query rows per block. A block's scores (64 x Lk) stay in L2 between the GEMM that
// makes them and the GEMM that consumes them, and 64 rows keep Eigen's GEMM efficient.
// With causal masking a block only computes the keys its last row can see, so smaller
// blocks skip more of the masked triangle.
constexpr int64_t kQueryBlock = 64;

// Below this many multiply-adds in total the call runs on one thread.
constexpr double kMinParallelWork = 1 << 18;

// ---- the block of work a task owns ----------------------------------------------------

// Rows [row0, row0 + rows) of head (b, h). Every key a row of the block may see lies in
// [0, keys): all Lk keys, or with causal masking those up to the block's last row.
struct QueryBlock {
  int64_t b, h, row0, rows, keys;
};

template <class T>
QueryBlock query_block(const AttentionProblem<T>& pb, int64_t b, int64_t h, int64_t block) {
  const int64_t row0 = block * kQueryBlock, rows = std::min(kQueryBlock, pb.q_len - row0);
  const int64_t keys = pb.causal ? std::min(pb.kv_len, row0 + rows) : pb.kv_len;
  return {b, h, row0, rows, keys};
}

int64_t blocks_per_head(int64_t q_len) { return (q_len + kQueryBlock - 1) / kQueryBlock; }

// Index of the first element of query row i of head (b, h) in the (B, H, Lq, Lk) matrix.
template <class T>
uint64_t matrix_index(const AttentionProblem<T>& pb, const QueryBlock& blk, int64_t i) {
  return static_cast<uint64_t>(((blk.b * pb.heads + blk.h) * pb.q_len + i) * pb.kv_len);
}

template <class T>
int64_t lse_index(const AttentionProblem<T>& pb, const QueryBlock& blk, int64_t i) {
  return (blk.b * pb.heads + blk.h) * pb.q_len + i;
}

// Whether a call this size is worth spreading over threads.
template <class T>
bool worth_parallel(const AttentionProblem<T>& pb) {
  const double macs = static_cast<double>(pb.batch * pb.heads) * static_cast<double>(pb.q_len) *
                      static_cast<double>(pb.kv_len) * static_cast<double>(pb.head_dim + pb.value_dim);
  return macs >= kMinParallelWork;
}

// ---- dropout draws -------------------------------------------------------------------

// Philox blocks drawn at a time: 256 words on the stack.
constexpr int64_t kDrawBlocks = 64;

// words[4 * i + w] = word w of Philox block (first + i), for i < blocks. A loop of its
// own so the compiler vectorises Philox across blocks.
void philox_words(uint64_t seed, uint64_t first, int64_t blocks, uint32_t* words) {
#pragma omp simd
  for (int64_t i = 0; i < blocks; ++i) {
    const auto w = Philox::block(seed, first + static_cast<uint64_t>(i));
    for (int k = 0; k < 4; ++k) words[4 * i + k] = w[k];
  }
}

// scales[j] = 1 / (1 - p) if element first_element + j of the attention matrix is kept,
// else 0. The test is cpu::dropout_forward's: the top 24 bits of the element's word
// survive when >= ceil(p * 2^24).
template <class T>
void dropout_scales(T* scales, int64_t n, uint64_t first_element, const AttentionDropout& d) {
  const uint32_t keep_threshold = static_cast<uint32_t>(std::ceil(d.p * 16777216.0));
  const T kept = d.p < 1 ? static_cast<T>(1.0 / (1.0 - d.p)) : T(0);
  uint32_t words[4 * kDrawBlocks];
  for (int64_t j = 0; j < n;) {
    const uint64_t element = first_element + static_cast<uint64_t>(j);
    const int64_t skip = static_cast<int64_t>(element % 4);  // words of the first block before `element`
    const int64_t count = std::min(n - j, 4 * kDrawBlocks - skip);
    philox_words(d.seed, d.offset + element / 4, (skip + count + 3) / 4, words);
#pragma omp simd
    for (int64_t t = 0; t < count; ++t) scales[j + t] = (words[skip + t] >> 8) >= keep_threshold ? kept : T(0);
    j += count;
  }
}

// ---- scores and probabilities of one block ---------------------------------------------

// Adds the mask to row i of the block's scores (n = blk.keys entries), or sets the
// entries it masks out to -inf.
template <class T>
void apply_mask_row(const ScoreMask<T>& mask, const QueryBlock& blk, int64_t i, T* s, int64_t n) {
  const int64_t* st = mask.strides;
  const int64_t at = blk.b * st[0] + blk.h * st[1] + i * st[2], step = st[3];
  if (mask.kind == ScoreMask<T>::Kind::additive) {
    const T* m = mask.additive + at;
    if (step == 1) {
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) s[j] += m[j];
    } else {
      for (int64_t j = 0; j < n; ++j) s[j] += m[j * step];
    }
  } else if (mask.kind == ScoreMask<T>::Kind::keep) {
    const uint8_t* keep = mask.keep + at;
    for (int64_t j = 0; j < n; ++j) s[j] = keep[j * step] ? s[j] : kMinusInf<T>;
  }
}

// s (blk.rows x blk.keys, row-major) = the block's masked, scaled scores.
template <class T>
void compute_scores(const AttentionProblem<T>& pb, const QueryBlock& blk, T* s) {
  gemm<T>(false, true, blk.rows, blk.keys, pb.head_dim, pb.scale, pb.q.at(blk.b, blk.h, blk.row0), pb.q.row_stride,
          pb.k.at(blk.b, blk.h), pb.k.row_stride, T(0), s, blk.keys);
  for (int64_t r = 0; r < blk.rows; ++r) {
    const int64_t i = blk.row0 + r;
    T* sr = s + r * blk.keys;
    apply_mask_row(pb.mask, blk, i, sr, blk.keys);
    if (pb.causal) std::fill(sr + std::min(i + 1, blk.keys), sr + blk.keys, kMinusInf<T>);
  }
}

// Softmax of one row in place; returns the row's logsumexp. A row with no visible key
// (all -inf) becomes zeros and returns -inf. A NaN score makes the row NaN (fast_exp
// keeps NaN), as in PyTorch.
template <class T>
T softmax_in_place(T* x, int64_t n) {
  T max = kMinusInf<T>;
#pragma omp simd reduction(max : max)
  for (int64_t j = 0; j < n; ++j) max = x[j] > max ? x[j] : max;
  if (max == kMinusInf<T>) {
    // No score above -inf: a fully masked row, unless the scores are NaN (the max skips
    // NaN): then the row is NaN, as in PyTorch and the CUDA kernel.
    for (int64_t j = 0; j < n; ++j) {
      if (x[j] != x[j]) {
        std::fill_n(x, n, std::numeric_limits<T>::quiet_NaN());
        return std::numeric_limits<T>::quiet_NaN();
      }
    }
    std::fill_n(x, n, T(0));
    return max;
  }
  T sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) {
    x[j] = fast_exp(x[j] - max);
    sum += x[j];
  }
  const T inv_sum = T(1) / sum;
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) x[j] *= inv_sum;
  return max + std::log(sum);
}

// The probabilities of one row from its scores and the logsumexp the forward saved:
// P = exp(S - lse), what softmax_in_place produced up to rounding.
template <class T>
void probs_from_lse(T* x, int64_t n, T lse) {
  if (lse == kMinusInf<T>) {
    std::fill_n(x, n, T(0));
    return;
  }
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) x[j] = fast_exp(x[j] - lse);
}

// x[j] *= scales[j]: applies a row's dropout scales.
template <class T>
void scale_row(T* x, const T* scales, int64_t n) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) x[j] *= scales[j];
}

// Turns one row of dP = dout v^T into the gradient of the scores, in place: with the
// dropout scales m (null without dropout), dP *= m, then dS = P * (dP - rowsum(dP * P)),
// the softmax backward.
template <class T>
void grad_scores_row(const T* p, T* dp, const T* scales, int64_t n) {
  if (scales) scale_row(dp, scales, n);
  T dot = 0;
#pragma omp simd reduction(+ : dot)
  for (int64_t j = 0; j < n; ++j) dot += dp[j] * p[j];
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) dp[j] = p[j] * (dp[j] - dot);
}

// ---- forward -------------------------------------------------------------------------------

// Per-thread buffers, allocated once per thread and call.
template <class T>
struct Scratch {
  std::vector<T> probs, grad_probs, drop;
  Scratch(int64_t kv_len, bool backward, bool dropout)
      : probs(static_cast<size_t>(kQueryBlock * kv_len)),
        grad_probs(backward ? probs.size() : 0),
        drop(dropout ? static_cast<size_t>(kv_len) : 0) {}
};

template <class T>
void forward_block(const AttentionProblem<T>& pb, const QueryBlock& blk, const HeadsView<T>& out, T* lse,
                   Scratch<T>& scratch) {
  T* p = scratch.probs.data();
  compute_scores(pb, blk, p);
  for (int64_t r = 0; r < blk.rows; ++r) {
    const int64_t i = blk.row0 + r;
    T* pr = p + r * blk.keys;
    lse[lse_index(pb, blk, i)] = softmax_in_place(pr, blk.keys);
    if (pb.dropout.p > 0) {
      dropout_scales(scratch.drop.data(), blk.keys, matrix_index(pb, blk, i), pb.dropout);
      scale_row(pr, scratch.drop.data(), blk.keys);
    }
  }
  gemm<T>(false, false, blk.rows, pb.value_dim, blk.keys, T(1), p, blk.keys, pb.v.at(blk.b, blk.h), pb.v.row_stride,
          T(0), out.at(blk.b, blk.h, blk.row0), out.row_stride);
}

// ---- backward ------------------------------------------------------------------------------

// Where one task writes its gradients: dq and dscores rows are its own; dk and dv are
// (Lk, D) / (Lk, Dv) accumulators of the head, private to the task.
template <class T>
struct TaskGrads {
  T* dq;       // the head's (Lq, D), or null
  T* dk;       // (Lk, D) accumulator, or null
  T* dv;       // (Lk, Dv) accumulator, or null
  T* dscores;  // the head's (Lq, Lk), or null
};

template <class T>
void backward_block(const AttentionProblem<T>& pb, const QueryBlock& blk, const HeadsView<const T>& dout, const T* lse,
                    const TaskGrads<T>& g, Scratch<T>& scratch) {
  const int64_t rows = blk.rows, keys = blk.keys, D = pb.head_dim, Dv = pb.value_dim;
  T* p = scratch.probs.data();        // P, then P * m
  T* dp = scratch.grad_probs.data();  // dP, then dS
  const T* q_rows = pb.q.at(blk.b, blk.h, blk.row0);
  const T* dout_rows = dout.at(blk.b, blk.h, blk.row0);
  const bool need_ds = g.dq || g.dk || g.dscores;

  compute_scores(pb, blk, p);
  if (need_ds) {
    gemm<T>(false, true, rows, keys, Dv, T(1), dout_rows, dout.row_stride, pb.v.at(blk.b, blk.h), pb.v.row_stride, T(0),
            dp, keys);
  }
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t i = blk.row0 + r;
    T *pr = p + r * keys, *dpr = dp + r * keys;
    probs_from_lse(pr, keys, lse[lse_index(pb, blk, i)]);
    const T* scales = nullptr;  // the row's dropout scales, redrawn
    if (pb.dropout.p > 0) {
      dropout_scales(scratch.drop.data(), keys, matrix_index(pb, blk, i), pb.dropout);
      scales = scratch.drop.data();
    }
    if (need_ds) {
      grad_scores_row(pr, dpr, scales, keys);
      if (g.dscores) {
        T* ds_row = g.dscores + i * pb.kv_len;
        std::copy_n(dpr, keys, ds_row);
        std::fill(ds_row + keys, ds_row + pb.kv_len, T(0));  // keys no row of the block sees
      }
    }
    if (scales) scale_row(pr, scales, keys);  // P -> Pd, for dv
  }
  // dv += Pd^T dout;  dq = scale * dS k;  dk += scale * dS^T q.
  if (g.dv) gemm<T>(true, false, keys, Dv, rows, T(1), p, keys, dout_rows, dout.row_stride, T(1), g.dv, Dv);
  if (g.dq) {
    gemm<T>(false, false, rows, D, keys, pb.scale, dp, keys, pb.k.at(blk.b, blk.h), pb.k.row_stride, T(0),
            g.dq + blk.row0 * D, D);
  }
  if (g.dk) gemm<T>(true, false, keys, D, rows, pb.scale, dp, keys, q_rows, pb.q.row_stride, T(1), g.dk, D);
}

// dst += each of `count` consecutive partial buffers of n elements.
template <class T>
void add_partials(T* dst, const T* partials, int64_t count, int64_t n) {
  for (int64_t c = 0; c < count; ++c) {
    const T* src = partials + c * n;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) dst[j] += src[j];
  }
}

// With no keys at all every row is fully masked: zero output, lse = -inf.
template <class T>
void no_keys_forward(const AttentionProblem<T>& pb, const HeadsView<T>& out, T* lse) {
  std::fill_n(lse, pb.batch * pb.heads * pb.q_len, kMinusInf<T>);
  for (int64_t b = 0; b < pb.batch; ++b)
    for (int64_t h = 0; h < pb.heads; ++h)
      for (int64_t i = 0; i < pb.q_len; ++i) std::fill_n(out.at(b, h, i), pb.value_dim, T(0));
}

}  // namespace

// Tasks are (head, block of query rows): independent, so any thread takes any of them.
// Dynamic scheduling balances the causal case, where later blocks see more keys.
template <class T>
void attention_forward(const AttentionProblem<T>& pb, const HeadsView<T>& out, T* lse) {
  if (pb.kv_len == 0) return no_keys_forward(pb, out, lse);
  const int64_t blocks = blocks_per_head(pb.q_len), tasks = pb.batch * pb.heads * blocks;
#pragma omp parallel if (worth_parallel(pb))
  {
    Scratch<T> scratch(pb.kv_len, /*backward=*/false, pb.dropout.p > 0);
#pragma omp for schedule(dynamic)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t head = task / blocks;
      forward_block(pb, query_block(pb, head / pb.heads, head % pb.heads, task % blocks), out, lse, scratch);
    }
  }
}

// dk and dv sum over all query blocks of a head, so a head's blocks cannot simply run
// on different threads. A task is a head, or, when there are fewer heads than threads,
// a contiguous run of one head's blocks ("split") accumulating into private dk/dv
// buffers that are summed afterwards.
template <class T>
void attention_backward(const AttentionProblem<T>& pb, const HeadsView<const T>& dout, const T* lse,
                        const AttentionGrads<T>& grads) {
  const int64_t heads = pb.batch * pb.heads, blocks = blocks_per_head(pb.q_len);
  const int64_t dk_size = pb.kv_len * pb.head_dim, dv_size = pb.kv_len * pb.value_dim;
  if (grads.dk) std::fill_n(grads.dk, heads * dk_size, T(0));
  if (grads.dv) std::fill_n(grads.dv, heads * dv_size, T(0));
  if (pb.kv_len == 0 || blocks == 0 || heads == 0) {  // no key or no query: nothing was attended to
    if (grads.dq) std::fill_n(grads.dq, heads * pb.q_len * pb.head_dim, T(0));
    return;
  }
  const bool parallel = worth_parallel(pb);
  const int64_t threads = parallel ? omp_get_max_threads() : 1;
  const int64_t splits = heads >= threads ? 1 : std::min(blocks, (threads + heads - 1) / heads);
  // Accumulators of splits 1.. of each head; split 0 accumulates in place.
  std::vector<T> partial_dk(grads.dk ? static_cast<size_t>(heads * (splits - 1) * dk_size) : 0);
  std::vector<T> partial_dv(grads.dv ? static_cast<size_t>(heads * (splits - 1) * dv_size) : 0);

#pragma omp parallel if (parallel)
  {
    Scratch<T> scratch(pb.kv_len, /*backward=*/true, pb.dropout.p > 0);
#pragma omp for schedule(dynamic)
    for (int64_t task = 0; task < heads * splits; ++task) {
      const int64_t head = task / splits, split = task % splits;
      auto accumulator = [&](T* full, std::vector<T>& partial, int64_t size) -> T* {
        if (!full) return nullptr;
        if (split == 0) return full + head * size;
        return partial.data() + (head * (splits - 1) + split - 1) * size;
      };
      const TaskGrads<T> g{grads.dq ? grads.dq + head * pb.q_len * pb.head_dim : nullptr,
                           accumulator(grads.dk, partial_dk, dk_size), accumulator(grads.dv, partial_dv, dv_size),
                           grads.dscores ? grads.dscores + head * pb.q_len * pb.kv_len : nullptr};
      const int64_t first = split * blocks / splits, last = (split + 1) * blocks / splits;
      for (int64_t block = first; block < last; ++block)
        backward_block(pb, query_block(pb, head / pb.heads, head % pb.heads, block), dout, lse, g, scratch);
    }
  }
  if (splits == 1) return;
  const int64_t extra = splits - 1;  // partial buffers per head
  for (int64_t head = 0; head < heads; ++head) {
    if (grads.dk) add_partials(grads.dk + head * dk_size, partial_dk.data() + head * extra * dk_size, extra, dk_size);
    if (grads.dv) add_partials(grads.dv + head * dv_size, partial_dv.data() + head * extra * dv_size, extra, dv_size);
  }
}

template void attention_forward<float>(const AttentionProblem<float>&, const HeadsView<float>&, float*);
template void attention_forward<double>(const AttentionProblem<double>&, const HeadsView<double>&, double*);
template void attention_backward<float>(const AttentionProblem<float>&, const HeadsView<const float>&, const float*,
                                        const AttentionGrads<float>&);
template void attention_backward<double>(const AttentionProblem<double>&, const HeadsView<const double>&, const double*,
                                         const AttentionGrads<double>&);

}  // namespace kiln::cpu
