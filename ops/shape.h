// Shape ops that build new tensors from several (cat, stack) or split one into views
// (split, chunk), and constant padding. Views themselves are Tensor members (view.cpp).
#pragma once

#include <vector>

#include "kiln/core/tensor.h"

namespace kiln {

// Joins tensors along an existing dim; all other dims must match.
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim = 0);
// Joins same-shaped tensors along a new dim.
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim = 0);
// Views of consecutive pieces of `split_size` (the last may be smaller).
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim = 0);
// Views of pieces with the given sizes (which must sum to the dim's size).
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim = 0);
// `chunks` views of (nearly) equal size, as torch.chunk.
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim = 0);
// Constant padding, PyTorch's F.pad convention: `pads` = {last_lo, last_hi,
// second_last_lo, second_last_hi, ...}. Negative pads crop.
Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, double value = 0.0);

}  // namespace kiln
