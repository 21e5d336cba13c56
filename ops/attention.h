// Scaled dot-product attention (Vaswani et al., 2017), fused:
//
//   out = dropout(softmax(q k^T * scale + mask)) v
//
//   Tensor out = scaled_dot_product_attention(q, k, v, {.causal = true, .dropout_p = 0.1});
//
// q (B, H, Lq, D), k (B, H, Lk, D), v (B, H, Lk, Dv) -> out (B, H, Lq, Dv); 3-D inputs
// (B, L, D) are one head. The CPU kernel (ops/cpu/attention.*) never holds more than
// one block of query rows' scores per thread and keeps only each row's logsumexp for
// backward, recomputing the probabilities there (flash-attention style).
#pragma once

#include <optional>

#include "kiln/core/tensor.h"

namespace kiln {

struct AttentionOptions {
  // Broadcastable to the scores (B, H, Lq, Lk), or (B, Lq, Lk) for 3-D inputs. Either
  // additive, in q's dtype (added to the scaled scores; use -inf to mask a key; it
  // receives a gradient when it requires one, e.g. a learned relative position bias),
  // or bool, where true means "attend" and false masks the key out.
  Tensor mask;
  // Query i attends to keys j <= i (top-left aligned when Lq != Lk, as PyTorch's is_causal).
  bool causal = false;
  // Dropout on the attention probabilities, applied only while `training`. The mask is
  // drawn from the seeded generator: the same entries dropout(softmax(...)) would drop.
  double dropout_p = 0.0;
  bool training = true;
  // Multiplies q k^T; 1 / sqrt(D) when unset.
  std::optional<double> scale;
};

// A query row whose keys are all masked out gets a zero output and zero gradients (not
// NaN). The result is laid out as (B, Lq, H, Dv) in memory (a transposed view for 4-D
// inputs), so merging the heads back, out.transpose(1, 2).reshape({B, Lq, H * Dv}), is
// free. Differentiable in q, k, v and a float mask; second derivatives (create_graph)
// go through a composite of Tensor ops.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const AttentionOptions& options = {});

}  // namespace kiln
