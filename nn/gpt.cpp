#include "kiln/nn/gpt.h"

#include "kiln/core/factory.h"
#include "kiln/nn/init_gpt2.h"
#include "kiln/ops/dropout.h"
#include "kiln/ops/elementwise.h"
#include "kiln/ops/linalg.h"

namespace kiln::nn {

namespace {

void check_config(const GPTConfig& c) {
  KILN_CHECK(c.vocab_size > 0 && c.block_size > 0 && c.n_layer > 0, "GPT: vocab_size, block_size and n_layer must ",
             "be positive, got ", c.vocab_size, ", ", c.block_size, ", ", c.n_layer);
  KILN_CHECK(c.n_head > 0 && c.d_model > 0 && c.d_model % c.n_head == 0, "GPT: d_model (", c.d_model,
             ") must be a positive multiple of n_head (", c.n_head, ")");
  KILN_CHECK(c.dropout >= 0 && c.dropout < 1, "GPT: dropout must be in [0, 1), got ", c.dropout);
}

}  // namespace

GPT::GPT(const GPTConfig& config) : config_(config) {
  check_config(config);
  wte = register_module("wte", std::make_shared<Embedding>(config.vocab_size, config.d_model));
  wpe = register_module("wpe", std::make_shared<Embedding>(config.block_size, config.d_model));
  blocks = register_module("blocks", std::make_shared<Sequential>());
  TransformerBlockOptions block_options{.dropout = config.dropout, .causal = true, .activation = "gelu_tanh"};
  if (config.context_pool) {
    block_options.context_pool = config.context_pool;
    block_options.context_pool->causal = true;
    block_options.context_pool_placement = config.context_pool_placement;
  }
  for (int64_t i = 0; i < config.n_layer; ++i) {
    layers.push_back(std::make_shared<TransformerBlock>(config.d_model, config.n_head, block_options));
    blocks->push_back(layers.back());
  }
  ln_f = register_module("ln_f", std::make_shared<LayerNorm>(Shape{config.d_model}));
  init_gpt2_(*this, config.n_layer);
}

Tensor GPT::forward(const Tensor& idx) const {
  KILN_CHECK(idx.dtype() == i64 && idx.dim() == 2, "GPT: expected token indices i64 (B, T), got ", describe(idx));
  const int64_t T = idx.size(1);
  KILN_CHECK(T >= 1 && T <= config_.block_size, "GPT: sequence length ", T, " is outside [1, block_size = ",
             config_.block_size, "]");
  const Tensor positions = arange(static_cast<double>(T), {.dtype = i64, .device = idx.device()});
  // (B, T, d) + (T, d): every sequence of the batch gets the same positions.
  Tensor h = dropout(wte->forward(idx) + wpe->forward(positions), config_.dropout, is_training());
  h = blocks->forward(h);
  // The tied head: linear() multiplies by weight^T, so the token table itself projects
  // back to the vocabulary, and its gradient collects both uses.
  return linear(ln_f->forward(h), wte->weight);
}

std::string GPT::extra_repr() const {
  const GPTConfig& c = config_;
  return detail::str("vocab_size=", c.vocab_size, ", block_size=", c.block_size, ", n_layer=", c.n_layer,
                     ", n_head=", c.n_head, ", d_model=", c.d_model, ", dropout=", c.dropout,
                     c.context_pool ? ", context_pool=" + c.context_pool_placement : std::string());
}

}  // namespace kiln::nn
