#include "kiln/nn/transformer.h"

#include <cmath>

#include "kiln/ops/activation.h"
#include "kiln/ops/dropout.h"
#include "kiln/ops/elementwise.h"

namespace kiln::nn {

TransformerBlock::TransformerBlock(int64_t d_model, int64_t num_heads, const TransformerBlockOptions& options)
    : d_model_(d_model), options_(options) {
  KILN_CHECK(d_model > 0, "TransformerBlock: d_model must be positive, got ", d_model);
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
  if (options.context_pool) add_context_pool(*options.context_pool);
  else KILN_CHECK(!options.context_pool_grid, "TransformerBlock: context_pool_grid is set but context_pool is not");
}

// The ContextPool sub-layer, registered last so that a block without it keeps its
// parameter names and order (and checkpoints). Causality is the block's.
void TransformerBlock::add_context_pool(ContextPoolModuleOptions pool_options) {
  const std::string& placement = options_.context_pool_placement;
  KILN_CHECK(placement == "after_attention" || placement == "after_block",
             "TransformerBlock: context_pool_placement must be \"after_attention\" or \"after_block\", got \"",
             placement, "\"");
  pool_options.causal = options_.causal;
  if (options_.context_pool_grid) {
    const Size2 grid = *options_.context_pool_grid;
    KILN_CHECK(grid.h > 0 && grid.w > 0, "TransformerBlock: context_pool_grid must be positive, got ", grid.h, " x ",
               grid.w);
    KILN_CHECK(!options_.causal, "TransformerBlock: context_pool_grid pools a 2-D grid, which has no causal order; ",
               "the block is causal");
    KILN_CHECK(pool_options.stride == 1, "TransformerBlock: the context pool must keep every token (stride 1), got ",
               "stride=", pool_options.stride);
    context_pool2d = register_module("context_pool", std::make_shared<ContextPool2d>(d_model_, pool_options));
  } else {
    context_pool = register_module("context_pool", std::make_shared<ContextPool1d>(d_model_, pool_options));
  }
}

Tensor TransformerBlock::mlp(const Tensor& x) const {
  Tensor h = fc1->forward(x);
  if (options_.activation == "relu") h = relu(h);
  else h = gelu(h, options_.activation == "gelu_tanh" ? "tanh" : "none");
  return fc2->forward(h);
}

// h (B, L, d) through the block's ContextPool; 2-D: the L tokens are viewed as the grid.
ContextPoolOutput TransformerBlock::pool(const Tensor& h) const {
  if (context_pool) return context_pool->forward_with_stats(h);
  const int64_t B = h.size(0), L = h.size(1), H = options_.context_pool_grid->h, W = options_.context_pool_grid->w;
  KILN_CHECK(L == H * W, "TransformerBlock: context_pool_grid ", H, " x ", W, " needs L = ", H * W, " tokens, got L = ",
             L);
  ContextPoolOutput out = context_pool2d->forward_with_stats(h.reshape({B, H, W, d_model_}));
  out.y = out.y.reshape({B, L, d_model_});
  return out;
}

// The forward pass; `stats`, when given, receives the m and s the ContextPool used.
Tensor TransformerBlock::run(const Tensor& x, const Tensor& key_padding_mask, ContextPoolOutput* stats) const {
  KILN_CHECK(x.dim() == 3 && x.size(2) == d_model_, "TransformerBlock: expected input (B, L, ", d_model_, "), got ",
             describe(x));
  const double p = options_.dropout;
  const bool training = is_training();
  const bool has_pool = context_pool || context_pool2d;
  const bool pool_after_attention = has_pool && options_.context_pool_placement == "after_attention";
  // Pools its input when `here` is the placement, else passes it through.
  const auto pool_if = [&](bool here, const Tensor& h) {
    if (!here) return h;
    ContextPoolOutput out = pool(h);
    if (stats) *stats = out;
    return out.y;
  };
  Tensor attended = attn->forward(ln1->forward(x), key_padding_mask);
  // The paper's placement: the pool mixes neighbouring tokens of the attention layer's
  // output (residual stream included) before the MLP reads them.
  Tensor h = pool_if(pool_after_attention, x + dropout(attended, p, training));
  return pool_if(has_pool && !pool_after_attention, h + dropout(mlp(ln2->forward(h)), p, training));
}

Tensor TransformerBlock::forward(const Tensor& x, const Tensor& key_padding_mask) const {
  return run(x, key_padding_mask, nullptr);
}

ContextPoolOutput TransformerBlock::forward_with_pool_stats(const Tensor& x, const Tensor& key_padding_mask) const {
  KILN_CHECK(context_pool || context_pool2d,
             "TransformerBlock: forward_with_pool_stats needs a block built with the context_pool option");
  ContextPoolOutput stats;
  stats.y = run(x, key_padding_mask, &stats);
  return stats;
}

std::string TransformerBlock::extra_repr() const {
  const TransformerBlockOptions& o = options_;
  return detail::str("d_model=", d_model_, ", num_heads=", attn->num_heads(), ", mlp_ratio=", o.mlp_ratio,
                     ", dropout=", o.dropout, ", attn_dropout=", o.attn_dropout.value_or(o.dropout),
                     ", causal=", o.causal ? "true" : "false", ", activation=", o.activation) +
         context_pool_repr();
}

// "" without a ContextPool, so that such a block prints exactly as before the option existed.
std::string TransformerBlock::context_pool_repr() const {
  const TransformerBlockOptions& o = options_;
  if (!o.context_pool) return "";
  std::string s = detail::str(", context_pool=", o.context_pool_placement);
  if (o.context_pool_grid) {
    s += detail::str(", context_pool_grid=(", o.context_pool_grid->h, ", ", o.context_pool_grid->w, ")");
  }
  return s;
}

}  // namespace kiln::nn
