// GPT: a decoder-only transformer language model, GPT-2's architecture at any size
// (Radford et al., 2019; the layout of nanoGPT and llm.c):
//
//   h = drop(wte[idx] + wpe[0..T))            token + learned position embeddings
//   h = blocks.i(h)   for i in 0..n_layer     pre-LN causal TransformerBlocks, GELU-tanh MLP x4
//                                             (optionally each with a causal ContextPool)
//   logits = ln_f(h) · wte^T                  the output head shares the token embedding
//
// Parameters are named as the modules above ("wte.weight", "wpe.weight",
// "blocks.0.attn.qkv.weight", ..., "ln_f.bias"); the tied head has no parameter of its
// own. The constructor applies GPT-2's initialisation (nn/init_gpt2.h).
//
//   auto model = std::make_shared<nn::GPT>(nn::GPTConfig{.vocab_size = 256, .block_size = 128,
//                                                        .n_layer = 4, .n_head = 4, .d_model = 128});
//   Tensor logits = model->forward(idx);  // idx (B, T) i64 -> (B, T, vocab_size)
//   Tensor loss = cross_entropy(logits.view({-1, 256}), targets.view({-1}));
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kiln/nn/context_pool.h"
#include "kiln/nn/embedding.h"
#include "kiln/nn/module.h"
#include "kiln/nn/normalization.h"
#include "kiln/nn/sequential.h"
#include "kiln/nn/transformer.h"

namespace kiln::nn {

struct GPTConfig {
  int64_t vocab_size = 256;  // tokens are in [0, vocab_size)
  int64_t block_size = 256;  // the longest sequence: the number of learned positions
  int64_t n_layer = 4;
  int64_t n_head = 4;
  int64_t d_model = 128;  // a multiple of n_head
  double dropout = 0.0;   // on the embeddings, the attention probabilities and each sub-layer's output
  // Set: every block gets a ContextPool sub-layer (nn/context_pool.h) with these options,
  // placed as TransformerBlockOptions::context_pool_placement says; it is causal whatever
  // the options say, since a language model must not see the tokens it predicts.
  // Unset: the plain GPT-2 above.
  std::optional<ContextPoolModuleOptions> context_pool;
  std::string context_pool_placement = "after_attention";
};

class GPT : public Module {
 public:
  explicit GPT(const GPTConfig& config);
  // Token indices idx (B, T), i64, T <= block_size -> next-token logits (B, T, vocab_size).
  Tensor forward(const Tensor& idx) const;
  std::string extra_repr() const override;

  const GPTConfig& config() const { return config_; }

  std::shared_ptr<Embedding> wte, wpe;
  std::shared_ptr<Sequential> blocks;  // children "0", "1", ...: the layers in order
  std::vector<std::shared_ptr<TransformerBlock>> layers;  // the same blocks, typed
  std::shared_ptr<LayerNorm> ln_f;

 private:
  GPTConfig config_;
};

}  // namespace kiln::nn
