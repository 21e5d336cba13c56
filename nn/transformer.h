// TransformerBlock: one pre-LN transformer layer (GPT-2, ViT):
//
//   x = x + drop(attn(ln1(x)))
//   x = x + drop(fc2(act(fc1(ln2(x)))))
//
// Children: ln1, attn (MultiHeadAttention), ln2, fc1 (d -> mlp_ratio * d), fc2 (back to d).
//
//   auto block = std::make_shared<nn::TransformerBlock>(256, 8, nn::TransformerBlockOptions{.causal = true});
//   Tensor y = block->forward(x);  // (B, L, 256) -> (B, L, 256)
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "kiln/nn/attention.h"
#include "kiln/nn/linear.h"
#include "kiln/nn/module.h"
#include "kiln/nn/normalization.h"

namespace kiln::nn {

struct TransformerBlockOptions {
  double mlp_ratio = 4;  // the MLP's hidden width, in units of d_model
  double dropout = 0;    // on each sub-layer's output before the residual add (training only)
  // On the attention probabilities; unset means `dropout`, as GPT-2 uses one rate for both.
  std::optional<double> attn_dropout;
  bool causal = false;
  std::string activation = "gelu_tanh";  // "gelu_tanh" (GPT-2), "gelu" (exact, ViT) or "relu"
  double norm_eps = 1e-5;
  bool bias = true;  // of every Linear
};

class TransformerBlock : public Module {
 public:
  TransformerBlock(int64_t d_model, int64_t num_heads, const TransformerBlockOptions& options = {});
  // x (B, L, d_model) -> (B, L, d_model); key_padding_mask as MultiHeadAttention's.
  Tensor forward(const Tensor& x, const Tensor& key_padding_mask = {}) const;
  std::string extra_repr() const override;

  std::shared_ptr<LayerNorm> ln1, ln2;
  std::shared_ptr<MultiHeadAttention> attn;
  std::shared_ptr<Linear> fc1, fc2;

 private:
  Tensor mlp(const Tensor& x) const;

  int64_t d_model_;
  TransformerBlockOptions options_;
};

}  // namespace kiln::nn
