// Fused scaled dot-product attention kernels, forward and backward.
//
// For each (batch, head) and each block of query rows, the forward computes
//
//   S = scale * q k^T (+ mask, causal)    one GEMM into a per-thread scratch block
//   P = softmax(S) row by row, in place    keeping only the row's logsumexp
//   P = dropout(P)                         the mask is drawn from Philox, never stored
//   O = P v                                one GEMM straight into the output
//
// so the (Lq x Lk) score matrix of a head never exists beyond one block of rows, and
// what backward keeps is the logsumexp per query row (B x H x Lq), not P. The backward
// recomputes each block's P = exp(S - lse) (one more GEMM, flash-attention style) and
// redraws the dropout mask from the same Philox counters (ops/attention.cpp has the
// measurement behind that choice).
//
// Conventions: operands are strided (B, H, L, D) views whose last dim is contiguous,
// so the heads of a fused qkv projection are read in place. Causal masking is PyTorch's
// (top-left aligned): query i sees keys j <= i. A row whose keys are all masked has
// P = 0: its output and all gradients through it are zero, not NaN, and its logsumexp
// is -inf.
#pragma once

#include <cstdint>

namespace kiln::cpu {

// A (B, H, L, D) operand: element (b, h, l, d) lies at
// data[b * batch_stride + h * head_stride + l * row_stride + d].
template <class T>
struct HeadsView {
  T* data = nullptr;
  int64_t batch_stride = 0, head_stride = 0, row_stride = 0;

  T* at(int64_t b, int64_t h, int64_t row = 0) const {
    return data + b * batch_stride + h * head_stride + row * row_stride;
  }
};

// An optional mask over the scores, broadcast to (B, H, Lq, Lk) by its strides (0 on
// broadcast dims). Additive masks hold T values added to the scores; keep masks hold
// bools (uint8_t), false -> -inf.
template <class T>
struct ScoreMask {
  enum class Kind { none, additive, keep };
  Kind kind = Kind::none;
  const T* additive = nullptr;
  const uint8_t* keep = nullptr;
  int64_t strides[4] = {0, 0, 0, 0};
};

// Dropout on the probabilities. Element e = ((b * H + h) * Lq + i) * Lk + j of the
// attention matrix draws word e % 4 of Philox block (offset + e / 4) under `seed`: the
// scheme of cpu::dropout_forward, so the fused op drops exactly the entries that
// dropout(softmax(S)) would with the same generator state.
struct AttentionDropout {
  double p = 0;  // 0: no dropout
  uint64_t seed = 0, offset = 0;
};

// Everything both passes need to know about one attention call.
template <class T>
struct AttentionProblem {
  int64_t batch = 0, heads = 0, q_len = 0, kv_len = 0, head_dim = 0, value_dim = 0;
  T scale = 1;
  bool causal = false;
  ScoreMask<T> mask;
  AttentionDropout dropout;
  HeadsView<const T> q, k, v;  // (B, H, Lq, D), (B, H, Lk, D), (B, H, Lk, Dv)
};

// out (B, H, Lq, Dv) = attention; lse (B, H, Lq, contiguous) = each row's logsumexp of
// the masked, scaled scores (-inf for a fully masked row).
template <class T>
void attention_forward(const AttentionProblem<T>& problem, const HeadsView<T>& out, T* lse);

// The gradients the backward writes, each contiguous; a null pointer skips that one.
template <class T>
struct AttentionGrads {
  T* dq = nullptr;      // (B, H, Lq, D)
  T* dk = nullptr;      // (B, H, Lk, D)
  T* dv = nullptr;      // (B, H, Lk, Dv)
  T* dscores = nullptr; // (B, H, Lq, Lk): the gradient of the masked, scaled scores
};

// From the forward's lse and the output gradient dout (B, H, Lq, Dv), with P the
// post-softmax and Pd the post-dropout probabilities (Pd = P * m):
//   dv = Pd^T dout,  dP = (dout v^T) * m,  dS = P * (dP - rowsum(dP * P)),
//   dq = scale * dS k,  dk = scale * dS^T q.
template <class T>
void attention_backward(const AttentionProblem<T>& problem, const HeadsView<const T>& dout, const T* lse,
                        const AttentionGrads<T>& grads);

}  // namespace kiln::cpu
