#include "kiln/nn/patch_embed.h"

#include <string>

namespace kiln::nn {

PatchEmbed::PatchEmbed(const PatchEmbedOptions& options) : options_(options), grid_(0) {
  const Size2 img = options.img_size, patch = options.patch_size;
  KILN_CHECK(img.h > 0 && img.w > 0 && patch.h > 0 && patch.w > 0, "PatchEmbed: img_size and patch_size must be ",
             "positive, got img_size=(", img.h, ", ", img.w, "), patch_size=(", patch.h, ", ", patch.w, ")");
  KILN_CHECK(img.h % patch.h == 0 && img.w % patch.w == 0, "PatchEmbed: patch_size (", patch.h, ", ", patch.w,
             ") must divide img_size (", img.h, ", ", img.w, ")");
  grid_ = Size2(img.h / patch.h, img.w / patch.w);
  proj = register_module("proj", std::make_shared<Conv2d>(options.in_chans, options.embed_dim, patch,
                                                          Conv2dOptions{.stride = patch}, options.bias));
}

Tensor PatchEmbed::forward(const Tensor& x) const {
  const Size2 img = options_.img_size;
  KILN_CHECK(x.dim() == 4 && x.size(1) == options_.in_chans && x.size(2) == img.h && x.size(3) == img.w,
             "PatchEmbed: expected input (N, ", options_.in_chans, ", ", img.h, ", ", img.w, "), got ", describe(x));
  return proj->forward(x).flatten(2).transpose(1, 2);
}

std::string PatchEmbed::extra_repr() const {
  const PatchEmbedOptions& o = options_;
  return detail::str("img_size=(", o.img_size.h, ", ", o.img_size.w, "), patch_size=(", o.patch_size.h, ", ",
                     o.patch_size.w, "), in_chans=", o.in_chans, ", embed_dim=", o.embed_dim,
                     ", num_patches=", num_patches());
}

}  // namespace kiln::nn
