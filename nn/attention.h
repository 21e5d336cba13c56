// MultiHeadAttention: self-attention over a sequence, with the query, key and value
// projections fused into one Linear ("qkv", embed -> 3 * embed, rows ordered [q; k; v]
// as PyTorch's in_proj_weight) and an output projection ("proj").
//
//   auto attn = std::make_shared<nn::MultiHeadAttention>(256, 8, nn::MultiHeadAttentionOptions{.causal = true});
//   Tensor y = attn->forward(x);  // (B, L, 256) -> (B, L, 256)
#pragma once

#include <memory>

#include "kiln/nn/linear.h"
#include "kiln/nn/module.h"

namespace kiln::nn {

struct MultiHeadAttentionOptions {
  bool bias = true;      // biases of both projections
  double dropout = 0.0;  // on the attention probabilities, in training mode only
  bool causal = false;   // token i attends to tokens j <= i
};

class MultiHeadAttention : public Module {
 public:
  MultiHeadAttention(int64_t embed_dim, int64_t num_heads, const MultiHeadAttentionOptions& options = {});
  // x (B, L, E) -> (B, L, E). key_padding_mask (B, L), bool: true marks a padding token
  // that no query attends to, as PyTorch's key_padding_mask. A query that sees no key
  // at all (every key padded) gets proj's bias as its output, not NaN.
  Tensor forward(const Tensor& x, const Tensor& key_padding_mask = {}) const;
  std::string extra_repr() const override;

  int64_t embed_dim() const { return embed_dim_; }
  int64_t num_heads() const { return num_heads_; }

  std::shared_ptr<Linear> qkv, proj;

 private:
  int64_t embed_dim_, num_heads_;
  MultiHeadAttentionOptions options_;
};

}  // namespace kiln::nn
