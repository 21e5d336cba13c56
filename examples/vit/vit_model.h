// VisionTransformer: a small ViT classifier (Dosovitskiy et al., 2021), with ContextPool
// (Huang et al., ICML 2022) as a switch on every block.
//
//   tokens = patch_embed(image) + pos_embed      (N, L, d), L = the patch grid, row-major
//   tokens = blocks.i(tokens)  for i < depth     pre-LN TransformerBlocks, exact GELU MLP
//   logits = head(mean over tokens of norm(tokens))
//
// There is no class token: the head reads the global average of the tokens, so the L
// tokens are exactly the H x W patch grid, which is what ContextPool2d pools over
// (TransformerBlockOptions::context_pool_grid).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <kiln/nn/context_pool.h>
#include <kiln/nn/linear.h>
#include <kiln/nn/module.h>
#include <kiln/nn/normalization.h>
#include <kiln/nn/patch_embed.h>
#include <kiln/nn/sequential.h>
#include <kiln/nn/transformer.h>

namespace vit {

struct VitConfig {
  int64_t image_size = 32;  // square images
  int64_t in_chans = 1;
  int64_t num_classes = 4;
  int64_t patch_size = 4;  // must divide image_size
  int64_t d_model = 64;    // a multiple of num_heads
  int64_t depth = 4;
  int64_t num_heads = 4;
  double mlp_ratio = 2;
  double dropout = 0;
  // Set: every block pools its tokens on the patch grid with these options.
  std::optional<kiln::nn::ContextPoolModuleOptions> context_pool;
  std::string context_pool_placement = "after_attention";  // or "after_block"
};

class VisionTransformer : public kiln::nn::Module {
 public:
  explicit VisionTransformer(const VitConfig& config);
  // images (N, in_chans, image_size, image_size) -> logits (N, num_classes).
  kiln::Tensor forward(const kiln::Tensor& images) const;
  std::string extra_repr() const override;

  const VitConfig& config() const { return config_; }
  kiln::Size2 grid() const { return patch_embed->grid_size(); }

  std::shared_ptr<kiln::nn::PatchEmbed> patch_embed;
  kiln::Tensor pos_embed;  // (1, L, d_model), learned
  std::shared_ptr<kiln::nn::Sequential> blocks;
  std::vector<std::shared_ptr<kiln::nn::TransformerBlock>> layers;  // the same blocks, typed
  std::shared_ptr<kiln::nn::LayerNorm> norm;
  std::shared_ptr<kiln::nn::Linear> head;

 private:
  VitConfig config_;
};

// Floating-point operations of one forward pass on one image (a multiply-add counts 2):
// the matmuls (patch projection; per block q/k/v/output projections, attention scores
// and the weighted sum of values, the MLP; the head) and, with ContextPool, its predictor
// conv and the pooling op. Norms, activations and softmax are O(L d) and left out.
// Training costs about 3x this (the backward pass is two matmuls per forward matmul).
double forward_flops_per_image(const VitConfig& config);

}  // namespace vit
