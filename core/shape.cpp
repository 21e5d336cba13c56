#include "kiln/core/shape.h"

#include <limits>

#include "kiln/core/error.h"

namespace kiln {

int64_t numel_of(const Shape& shape) {
  int64_t n = 1;
  for (int64_t s : shape) {
    KILN_CHECK(s >= 0, "invalid shape ", shape_str(shape), ": sizes must be non-negative");
    KILN_CHECK(s == 0 || n <= std::numeric_limits<int64_t>::max() / s, "invalid shape ",
               shape_str(shape), ": element count overflows int64");
    n *= s;
  }
  return n;
}

Shape contiguous_strides(const Shape& shape) {
  // numel_of does not bound the strides: a zero-sized dim makes the element count 0
  // however large the others are ([0, 2^62, 4] has stride 2^64 in dim 0), so the
  // product of the sizes behind each dim is checked here, for every caller.
  Shape strides(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = s;
    if (i == 0) break;  // the product of all sizes is no stride
    const int64_t size = shape[i] > 0 ? shape[i] : 1;
    KILN_CHECK(s <= std::numeric_limits<int64_t>::max() / size, "invalid shape ", shape_str(shape),
               ": strides overflow int64");
    s *= size;
  }
  return strides;
}

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    KILN_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", shape_str(a), " and ",
               shape_str(b), " cannot be broadcast together (dim ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
  const int64_t lo = ndim == 0 ? -1 : -ndim, hi = ndim == 0 ? 0 : ndim - 1;
  KILN_CHECK(dim >= lo && dim <= hi, op, ": dim ", dim, " is out of range for a tensor with ",
             ndim, " dims (expected ", lo, "..", hi, ")");
  return dim < 0 ? dim + (ndim == 0 ? 1 : ndim) : dim;
}

}  // namespace kiln
