#include "kiln/nn/transformer.h"

#include <cmath>

#include "kiln/ops/activation.h"
#include "kiln/ops/dropout.h"
#include "kiln/ops/elementwise.h"

namespace kiln::nn {

TransformerBlock::TransformerBlock(int64_t d_model, int64_t num_heads, const TransformerBlockOptions& options)
    : d_model_(d_model), options_(options) {
  const std::string& act = options.activation;
  KILN_CHECK(act == "gelu_tanh" || act == "gelu" || act == "relu", "TransformerBlock: activation must be ",
             "\"gelu_tanh\", \"gelu\" or \"relu\", got \"", act, "\"");
  KILN_CHECK(options.dropout >= 0 && options.dropout <= 1, "TransformerBlock: dropout must be in [0, 1], got ",
             options.dropout);
  const int64_t hidden = static_cast<int64_t>(std::llround(options.mlp_ratio * static_cast<double>(d_model)));
  KILN_CHECK(hidden > 0, "TransformerBlock: mlp_ratio ", options.mlp_ratio, " gives an empty MLP for d_model ",
             d_model);
  const MultiHeadAttentionOptions attn_options{
      .bias = options.bias, .dropout = options.attn_dropout.value_or(options.dropout), .causal = options.causal};
  ln1 = register_module("ln1", std::make_shared<LayerNorm>(Shape{d_model}, options.norm_eps));
  attn = register_module("attn", std::make_shared<MultiHeadAttention>(d_model, num_heads, attn_options));
  ln2 = register_module("ln2", std::make_shared<LayerNorm>(Shape{d_model}, options.norm_eps));
  fc1 = register_module("fc1", std::make_shared<Linear>(d_model, hidden, options.bias));
  fc2 = register_module("fc2", std::make_shared<Linear>(hidden, d_model, options.bias));
}

Tensor TransformerBlock::mlp(const Tensor& x) const {
  Tensor h = fc1->forward(x);
  if (options_.activation == "relu") h = relu(h);
  else h = gelu(h, options_.activation == "gelu_tanh" ? "tanh" : "none");
  return fc2->forward(h);
}

Tensor TransformerBlock::forward(const Tensor& x, const Tensor& key_padding_mask) const {
  KILN_CHECK(x.dim() == 3 && x.size(2) == d_model_, "TransformerBlock: expected input (B, L, ", d_model_, "), got ",
             describe(x));
  const double p = options_.dropout;
  const bool training = is_training();
  Tensor attended = attn->forward(ln1->forward(x), key_padding_mask);
  // A ContextPool sub-layer (DESIGN.md section 6) goes here: it pools neighbouring
  // tokens of the attention output, same shape in and out, before the residual add.
  Tensor h = x + dropout(attended, p, training);
  return h + dropout(mlp(ln2->forward(h)), p, training);
}

std::string TransformerBlock::extra_repr() const {
  const TransformerBlockOptions& o = options_;
  return detail::str("d_model=", d_model_, ", num_heads=", attn->num_heads(), ", mlp_ratio=", o.mlp_ratio,
                     ", dropout=", o.dropout, ", attn_dropout=", o.attn_dropout.value_or(o.dropout),
                     ", causal=", o.causal ? "true" : "false", ", activation=", o.activation);
}

}  // namespace kiln::nn
