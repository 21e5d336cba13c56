// Indexing ops. Indices are i64 tensors; every index is bounds-checked and an
// out-of-range one is a kiln::Error naming the op, the index and the size.
#pragma once

#include "kiln/core/tensor.h"

namespace kiln {

// weight (num, dim) rows picked by indices (any shape) -> indices.shape + (dim).
// Rows equal to padding_idx (if >= 0) get no gradient.
Tensor embedding(const Tensor& indices, const Tensor& weight, int64_t padding_idx = -1);
// Entries of x along `dim` at the 1-D `index`.
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
// out[i][j][k] = x[i][index[i][j][k]][k] (for dim = 1), as torch.gather.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
// x with src added at the positions given by index along dim, as torch.scatter_add.
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);

}  // namespace kiln
