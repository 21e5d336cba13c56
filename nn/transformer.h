// TransformerBlock: one pre-LN transformer layer (GPT-2, ViT):
//
//   x = x + drop(attn(ln1(x)))
//   x = x + drop(fc2(act(fc1(ln2(x)))))
//
// Children: ln1, attn (MultiHeadAttention), ln2, fc1 (d -> mlp_ratio * d), fc2 (back to d),
// and with options.context_pool a "context_pool" (nn/context_pool.h) that pools each
// token's neighbours, after the attention sub-layer (the paper's placement) or after the
// whole block:
//
//   after_attention:  x = pool(x + drop(attn(ln1(x))));  x = x + drop(mlp(ln2(x)))
//   after_block:      x = pool(the block's output)
//
//   auto block = std::make_shared<nn::TransformerBlock>(256, 8, nn::TransformerBlockOptions{.causal = true});
//   Tensor y = block->forward(x);  // (B, L, 256) -> (B, L, 256)
//   nn::TransformerBlock pooled(256, 8, {.causal = true, .context_pool = nn::ContextPoolModuleOptions{}});
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "kiln/nn/attention.h"
#include "kiln/nn/context_pool.h"
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
  // Set: a ContextPool sub-layer (nn/context_pool.h) with these options; causal follows
  // `causal`. Placement "after_attention" (the paper's): x = pool(x + attn(ln1(x))) before
  // the MLP; "after_block": the pool takes the block's output. The pool does not see a
  // key_padding_mask (docs/contextpool.md section 7).
  std::optional<ContextPoolModuleOptions> context_pool;
  std::string context_pool_placement = "after_attention";
  // Set: the L tokens are an H x W grid, row-major (ViT patches, no class token), and the
  // pool is a ContextPool2d on that grid; unset: a ContextPool1d along the sequence.
  std::optional<Size2> context_pool_grid;
};

class TransformerBlock : public Module {
 public:
  TransformerBlock(int64_t d_model, int64_t num_heads, const TransformerBlockOptions& options = {});
  // x (B, L, d_model) -> (B, L, d_model); key_padding_mask as MultiHeadAttention's.
  Tensor forward(const Tensor& x, const Tensor& key_padding_mask = {}) const;
  // The same forward, also returning the m and s its ContextPool used (y = the block's
  // output); a kiln::Error when the block has no ContextPool.
  ContextPoolOutput forward_with_pool_stats(const Tensor& x, const Tensor& key_padding_mask = {}) const;
  std::string extra_repr() const override;

  std::shared_ptr<LayerNorm> ln1, ln2;
  std::shared_ptr<MultiHeadAttention> attn;
  std::shared_ptr<Linear> fc1, fc2;
  // With options.context_pool: one of these, registered as "context_pool"; else both null.
  std::shared_ptr<ContextPool1d> context_pool;
  std::shared_ptr<ContextPool2d> context_pool2d;

 private:
  void add_context_pool(ContextPoolModuleOptions pool_options);
  Tensor mlp(const Tensor& x) const;
  ContextPoolOutput pool(const Tensor& h) const;
  Tensor run(const Tensor& x, const Tensor& key_padding_mask, ContextPoolOutput* stats) const;
  std::string context_pool_repr() const;

  int64_t d_model_;
  TransformerBlockOptions options_;
};

}  // namespace kiln::nn
