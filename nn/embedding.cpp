#include "kiln/nn/embedding.h"

#include "kiln/autograd/grad_mode.h"
#include "kiln/core/factory.h"
#include "kiln/ops/index.h"

namespace kiln::nn {

Embedding::Embedding(int64_t num_embeddings, int64_t embedding_dim, int64_t padding_idx)
    : num_(num_embeddings), dim_(embedding_dim), padding_idx_(padding_idx) {
  KILN_CHECK(num_embeddings > 0 && embedding_dim > 0, "Embedding: sizes must be positive, got num=", num_embeddings,
             ", dim=", embedding_dim);
  KILN_CHECK(padding_idx < num_embeddings, "Embedding: padding_idx ", padding_idx, " is out of range for ",
             num_embeddings, " embeddings");
  Tensor w = randn({num_embeddings, embedding_dim});
  if (padding_idx >= 0) w.select(0, padding_idx).zero_();
  weight = register_parameter("weight", w);
}

Tensor Embedding::forward(const Tensor& indices) const { return embedding(indices, weight, padding_idx_); }

std::string Embedding::extra_repr() const {
  std::string s = std::to_string(num_) + ", " + std::to_string(dim_);
  if (padding_idx_ >= 0) s += ", padding_idx=" + std::to_string(padding_idx_);
  return s;
}

}  // namespace kiln::nn
