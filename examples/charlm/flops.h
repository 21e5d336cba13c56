// What a model costs: parameters and floating-point operations per token.
#pragma once

#include <cstdint>

#include <kiln/nn/gpt.h>

namespace charlm {

struct FlopCount {
  double forward = 0;   // FLOPs of one forward pass, per token
  double training = 0;  // forward + backward, per token: 3x forward
};

// Per token of a full window (T = block_size tokens); flops.cpp has the formula.
FlopCount flops_per_token(const kiln::nn::GPT& model);

}  // namespace charlm
