// Shapes and strides, in elements, and the small pure functions over them that every
// op needs: element counts, contiguous strides, broadcasting, dim wrapping.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kiln {

using Shape = std::vector<int64_t>;

// Number of elements; throws kiln::Error on a negative size or int64 overflow.
int64_t numel_of(const Shape& shape);
// Row-major strides: the last dim is densest.
Shape contiguous_strides(const Shape& shape);
// "[2, 3]", as PyTorch prints sizes.
std::string shape_str(const Shape& shape);
// NumPy broadcasting of two shapes; `op` names the caller in the error message.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
// Wraps a possibly negative dim into [0, ndim); throws naming `op` when out of range.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op);

}  // namespace kiln
