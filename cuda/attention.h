// Fused scaled dot-product attention on the GPU, forward and backward (flash-attention
// style): the (Lq x Lk) score matrix of a head never exists in memory. The forward keeps
// each query row's logsumexp; the backward recomputes the probabilities from it.
//
// Same conventions as the CPU kernels (ops/cpu/attention.h), so both backends agree:
// operands are strided (B, H, L, D) views with a contiguous last dim; causal masking is
// top-left aligned (query i sees keys j <= i); a row whose keys are all masked gets a
// zero output, zero gradients and lse = -inf; dropout draws element
// e = ((b * H + h) * Lq + i) * Lk + j from word e % 4 of Philox block (offset + e / 4).
//
// Head dims (D and Dv) up to 256, f32 and f64. The f64 backward at the largest head dims
// needs up to ~197 KB of shared memory per block: it fits an H100 (227 KB), while on an
// A100 (163 KB) f64 head dims above ~216 stop with a clear error. The kernels are
// described in attention.cu.
#pragma once

#include <cstdint>

#include "kiln/cuda/entry.h"

namespace kiln::cuda {

// A (B, H, L, D) operand: element (b, h, l, d) lies at
// data[b * batch_stride + h * head_stride + l * row_stride + d].
template <class T>
struct AttentionOperand {
  T* data = nullptr;
  int64_t batch_stride = 0, head_stride = 0, row_stride = 0;
};

// An optional mask over the scores, broadcast to (B, H, Lq, Lk) by its strides (0 on
// broadcast dims): `additive` values are added to the scaled scores; `keep` bools
// (uint8_t) mask a key out where false. At most one of the two is set.
template <class T>
struct AttentionMask {
  const T* additive = nullptr;
  const uint8_t* keep = nullptr;
  int64_t strides[4] = {0, 0, 0, 0};
};

// Dropout on the probabilities, as cpu::dropout_forward decides it: an element is kept
// when the top 24 bits of its Philox word are >= keep_threshold (= ceil(p * 2^24)), and
// a kept probability is multiplied by kept_scale (1 / (1 - p), 0 when p == 1).
template <class T>
struct AttentionDropoutDraw {
  bool enabled = false;
  uint32_t keep_threshold = 0;
  T kept_scale = 1;
  uint64_t seed = 0, offset = 0;
};

// Everything both passes need to know about one call.
template <class T>
struct AttentionArgs {
  int64_t batch = 0, heads = 0, q_len = 0, kv_len = 0, head_dim = 0, value_dim = 0;
  T scale = 1;
  bool causal = false;
  AttentionMask<T> mask;
  AttentionDropoutDraw<T> dropout;
  AttentionOperand<const T> q, k, v;  // (B, H, Lq, D), (B, H, Lk, D), (B, H, Lk, Dv)
};

// out (B, H, Lq, Dv) = attention of `args`; lse (B * H * Lq, contiguous) = each query
// row's logsumexp of its masked, scaled scores (-inf for a fully masked row).
template <class T>
KILN_CUDA_ENTRY(void attention_forward(const AttentionArgs<T>& args, const AttentionOperand<T>& out, T* lse,
                                       int device))

// What the backward reads besides `args`: the forward's output and lse, the output's
// gradient, and a scratch buffer of B * H * Lq elements (on `device`) for rowsum(dO * O).
template <class T>
struct AttentionBackwardInputs {
  AttentionOperand<const T> out, dout;  // (B, H, Lq, Dv)
  const T* lse = nullptr;
  T* row_dot_scratch = nullptr;
};

// The gradients, each contiguous; a null pointer skips that one.
template <class T>
struct AttentionGradients {
  T* dq = nullptr;       // (B, H, Lq, D)
  T* dk = nullptr;       // (B, H, Lk, D)
  T* dv = nullptr;       // (B, H, Lk, Dv)
  T* dscores = nullptr;  // (B, H, Lq, Lk): the gradient of the masked, scaled scores
};

// With Pd = dropout(P): dv = Pd^T dO, dS = P * (dP * m - rowsum(dO * O)) where
// dP = dO v^T, dq = scale * dS k, dk = scale * dS^T q. Deterministic: no atomics.
template <class T>
KILN_CUDA_ENTRY(void attention_backward(const AttentionArgs<T>& args, const AttentionBackwardInputs<T>& inputs,
                                        const AttentionGradients<T>& grads, int device))

// ---- bf16 tensor cores (attention_bf16.cu), what autocast runs ----------------------------
// The same calls on f32 operands, with every matrix product on tensor cores: tiles are
// rounded to bf16 as they are loaded, products accumulate in f32, and the softmax
// statistics, lse, the row sums and all outputs stay f32. The probabilities and score
// gradients that feed the second product of each pass are rounded to bf16 too. Head dims
// (D and Dv) up to kAttentionBf16MaxHeadDim; masks, causal and dropout as above.
inline constexpr int64_t kAttentionBf16MaxHeadDim = 128;

KILN_CUDA_ENTRY(void attention_forward_bf16(const AttentionArgs<float>& args, const AttentionOperand<float>& out,
                                            float* lse, int device))
KILN_CUDA_ENTRY(void attention_backward_bf16(const AttentionArgs<float>& args,
                                             const AttentionBackwardInputs<float>& inputs,
                                             const AttentionGradients<float>& grads, int device))

}  // namespace kiln::cuda
