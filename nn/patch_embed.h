// PatchEmbed: the ViT stem (Dosovitskiy et al., 2021). Cuts an image into
// non-overlapping patch_size patches and projects each to an embed_dim vector with one
// Conv2d whose kernel and stride are the patch size, then flattens the grid of patches
// into a sequence:
//
//   (N, in_chans, H, W) -> conv -> (N, embed_dim, H / p, W / p) -> (N, num_patches, embed_dim)
//
//   auto embed = std::make_shared<nn::PatchEmbed>(PatchEmbedOptions{.img_size = 32, .patch_size = 4,
//                                                                   .in_chans = 3, .embed_dim = 192});
#pragma once

#include <memory>

#include "kiln/nn/conv.h"
#include "kiln/nn/module.h"

namespace kiln::nn {

// timm's defaults (ViT-B/16 on 224x224 RGB).
struct PatchEmbedOptions {
  Size2 img_size = 224;
  Size2 patch_size = 16;  // must divide img_size
  int64_t in_chans = 3;
  int64_t embed_dim = 768;
  bool bias = true;
};

class PatchEmbed : public Module {
 public:
  explicit PatchEmbed(const PatchEmbedOptions& options = {});
  // x (N, in_chans, img_size.h, img_size.w) -> (N, num_patches, embed_dim), a view of the
  // projection's (N, embed_dim, grid.h, grid.w) output with patches in row-major order.
  Tensor forward(const Tensor& x) const;
  std::string extra_repr() const override;

  Size2 grid_size() const { return grid_; }  // patches along (H, W)
  int64_t num_patches() const { return grid_.h * grid_.w; }

  std::shared_ptr<Conv2d> proj;

 private:
  PatchEmbedOptions options_;
  Size2 grid_;
};

}  // namespace kiln::nn
