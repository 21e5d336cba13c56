// GPT-2's initialisation (Radford et al., 2019), as nanoGPT applies it:
//   - Linear and Embedding weights ~ N(0, 0.02), Linear biases = 0;
//   - LayerNorm (and RMSNorm) weights = 1, biases = 0;
//   - the projections that write into the residual stream, parameters named
//     "...attn.proj.weight" and "...fc2.weight" (TransformerBlock's), ~ N(0, 0.02 / sqrt(2 n_layers)),
//     so the residual stream's variance does not grow with depth.
// Other modules (convolutions, ...) keep their own initialisation. Draws come from the
// seeded generator, in parameter registration order.
//
//   auto model = std::make_shared<Gpt>(...);
//   nn::init_gpt2_(*model, /*n_layers=*/6);
#pragma once

#include <cstdint>

#include "kiln/nn/module.h"

namespace kiln::nn {

void init_gpt2_(Module& model, int64_t n_layers);

}  // namespace kiln::nn
