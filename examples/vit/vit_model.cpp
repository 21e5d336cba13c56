#include "vit_model.h"

#include <cmath>

#include <kiln/core/error.h>
#include <kiln/core/factory.h>
#include <kiln/nn/init.h>
#include <kiln/ops/elementwise.h>
#include <kiln/ops/reduce.h>

#include "../common/context_pool_flops.h"

namespace vit {

using namespace kiln;

namespace {

nn::TransformerBlockOptions block_options(const VitConfig& c, Size2 grid) {
  nn::TransformerBlockOptions options{.mlp_ratio = c.mlp_ratio, .dropout = c.dropout, .activation = "gelu"};
  if (c.context_pool) {
    options.context_pool = c.context_pool;
    options.context_pool_placement = c.context_pool_placement;
    options.context_pool_grid = grid;  // the tokens are exactly the patch grid (no class token)
  }
  return options;
}

}  // namespace

VisionTransformer::VisionTransformer(const VitConfig& config) : config_(config) {
  KILN_CHECK(config.image_size % config.patch_size == 0, "VisionTransformer: patch_size ", config.patch_size,
             " must divide image_size ", config.image_size);
  patch_embed = register_module("patch_embed", std::make_shared<nn::PatchEmbed>(nn::PatchEmbedOptions{
                                                   .img_size = config.image_size,
                                                   .patch_size = config.patch_size,
                                                   .in_chans = config.in_chans,
                                                   .embed_dim = config.d_model}));
  // timm's ViT starts its position embedding at trunc_normal(std 0.02).
  pos_embed = zeros({1, patch_embed->num_patches(), config.d_model});
  nn::init::trunc_normal_(pos_embed, 0.0, 0.02);
  pos_embed = register_parameter("pos_embed", pos_embed);

  blocks = register_module("blocks", std::make_shared<nn::Sequential>());
  const nn::TransformerBlockOptions options = block_options(config, grid());
  for (int64_t i = 0; i < config.depth; ++i) {
    auto block = std::make_shared<nn::TransformerBlock>(config.d_model, config.num_heads, options);
    blocks->push_back(block);
    layers.push_back(block);
  }
  norm = register_module("norm", std::make_shared<nn::LayerNorm>(Shape{config.d_model}));
  head = register_module("head", std::make_shared<nn::Linear>(config.d_model, config.num_classes));
}

Tensor VisionTransformer::forward(const Tensor& images) const {
  Tensor tokens = patch_embed->forward(images) + pos_embed;  // (N, L, d)
  tokens = blocks->forward(tokens);
  // Global average pooling over the tokens stands in for a class token.
  return head->forward(mean(norm->forward(tokens), {1}));
}

std::string VisionTransformer::extra_repr() const {
  const VitConfig& c = config_;
  return detail::str("image_size=", c.image_size, ", patch_size=", c.patch_size, ", grid=", grid().h, "x", grid().w,
                     ", d_model=", c.d_model, ", depth=", c.depth, ", num_heads=", c.num_heads,
                     ", context_pool=", c.context_pool ? c.context_pool_placement : "off");
}

double forward_flops_per_image(const VitConfig& c) {
  const double grid_side = static_cast<double>(c.image_size / c.patch_size);
  const double L = grid_side * grid_side, d = static_cast<double>(c.d_model);
  const double hidden = std::round(c.mlp_ratio * d);
  const double patch_pixels = static_cast<double>(c.in_chans * c.patch_size * c.patch_size);

  const double embed = 2 * L * patch_pixels * d;
  const double projections = 2 * L * d * (3 * d) + 2 * L * d * d;  // q, k, v; the output projection
  const double attention = 2 * L * L * d + 2 * L * L * d;          // scores q k^T; probabilities x v
  const double mlp = 2 * L * d * hidden * 2;                        // fc1, fc2
  double block = projections + attention + mlp;
  if (c.context_pool) {
    const int64_t side = c.image_size / c.patch_size;
    block += kiln::examples::context_pool2d_flops(*c.context_pool, Size2(side, side), c.d_model);
  }
  const double head = 2 * d * static_cast<double>(c.num_classes);
  return embed + static_cast<double>(c.depth) * block + head;
}

}  // namespace vit
