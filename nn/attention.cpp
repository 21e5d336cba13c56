#include "kiln/nn/attention.h"

#include <limits>

#include "kiln/core/factory.h"
#include "kiln/ops/attention.h"
#include "kiln/ops/elementwise.h"

namespace kiln::nn {

MultiHeadAttention::MultiHeadAttention(int64_t embed_dim, int64_t num_heads, const MultiHeadAttentionOptions& options)
    : embed_dim_(embed_dim), num_heads_(num_heads), options_(options) {
  KILN_CHECK(embed_dim > 0 && num_heads > 0 && embed_dim % num_heads == 0, "MultiHeadAttention: embed_dim (", embed_dim,
             ") must be a positive multiple of num_heads (", num_heads, ")");
  KILN_CHECK(options.dropout >= 0 && options.dropout <= 1, "MultiHeadAttention: dropout must be in [0, 1], got ",
             options.dropout);
  qkv = register_module("qkv", std::make_shared<Linear>(embed_dim, 3 * embed_dim, options.bias));
  proj = register_module("proj", std::make_shared<Linear>(embed_dim, embed_dim, options.bias));
}

Tensor MultiHeadAttention::forward(const Tensor& x, const Tensor& key_padding_mask) const {
  KILN_CHECK(x.dim() == 3 && x.size(2) == embed_dim_, "MultiHeadAttention: expected input (B, L, ", embed_dim_,
             "), got ", describe(x));
  const int64_t B = x.size(0), L = x.size(1), H = num_heads_, head_dim = embed_dim_ / num_heads_;

  // (B, L, 3E) -> (3, B, H, L, head_dim): q, k and v are strided views the attention
  // kernel reads in place.
  const Tensor heads = qkv->forward(x).view({B, L, 3, H, head_dim}).permute({2, 0, 3, 1, 4});
  AttentionOptions attention{.causal = options_.causal, .dropout_p = options_.dropout, .training = is_training()};
  if (key_padding_mask.defined()) {
    KILN_CHECK(key_padding_mask.dtype() == DType::b8 && key_padding_mask.shape() == Shape({B, L}),
               "MultiHeadAttention: key_padding_mask must be bool (B, L) = [", B, ", ", L, "], got ",
               describe(key_padding_mask));
    // An additive mask, -inf on padded keys, broadcast over heads and queries.
    attention.mask = masked_fill(zeros({B, 1, 1, L}, {.dtype = x.dtype(), .device = x.device()}), key_padding_mask.reshape({B, 1, 1, L}),
                                 -std::numeric_limits<double>::infinity());
  }
  const Tensor out =
      scaled_dot_product_attention(heads.select(0, 0), heads.select(0, 1), heads.select(0, 2), attention);
  // out is laid out as (B, L, H, head_dim): merging the heads is a view.
  return proj->forward(out.transpose(1, 2).reshape({B, L, embed_dim_}));
}

std::string MultiHeadAttention::extra_repr() const {
  return detail::str("embed_dim=", embed_dim_, ", num_heads=", num_heads_, ", bias=", options_.bias ? "true" : "false",
                     ", dropout=", options_.dropout, ", causal=", options_.causal ? "true" : "false");
}

}  // namespace kiln::nn
