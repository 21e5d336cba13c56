// Dropout: in training, zeroes each element with probability p and scales the rest by
// 1/(1-p); in eval it is the identity. The mask comes from the seeded generator.
#pragma once

#include "kiln/core/tensor.h"

namespace kiln {

Tensor dropout(const Tensor& x, double p, bool training);

}  // namespace kiln
