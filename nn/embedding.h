// Embedding: a lookup table of `num` vectors of size `dim`, indexed by i64 tensors.
#pragma once

#include "kiln/nn/module.h"

namespace kiln::nn {

// Weight (num, dim) ~ N(0, 1), as PyTorch. Rows equal to padding_idx start at zero and
// receive no gradient.
class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t embedding_dim, int64_t padding_idx = -1);
  Tensor forward(const Tensor& indices) const;
  std::string extra_repr() const override;

  Tensor weight;

 private:
  int64_t num_, dim_, padding_idx_;
};

}  // namespace kiln::nn
