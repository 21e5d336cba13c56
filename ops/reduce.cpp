// Reductions. Forward kernels work on a contiguous (outer, R, inner) view; backward
// rules broadcast the gradient back over the reduced dims.
#include "kiln/ops/reduce.h"

#include <algorithm>

#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"
#include "kiln/core/dispatch.h"
#include "kiln/core/factory.h"
#include "kiln/ops/common.h"
#include "kiln/ops/cpu/reduce.h"
#include "kiln/ops/elementwise.h"

namespace kiln {

using autograd::Grads;
using autograd::Saved;

namespace {

// Sorted, de-duplicated, wrapped reduction dims; empty `dims` means all of them.
std::vector<bool> reduced_mask(const Tensor& x, const Dims& dims, const char* op) {
  std::vector<bool> mask(static_cast<size_t>(x.dim()), dims.empty());
  for (int64_t d : dims) {
    const int64_t w = wrap_dim(d, x.dim(), op);
    KILN_CHECK(x.dim() == 0 || !mask[w], op, ": dim ", d, " appears more than once in the reduction dims");
    if (x.dim() > 0) mask[w] = true;
  }
  return mask;
}

Shape reduced_shape(const Tensor& x, const std::vector<bool>& mask, bool keepdim) {
  Shape out;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (!mask[d]) out.push_back(x.shape()[d]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

// Re-inserts reduced dims as size 1 so a reduced tensor broadcasts against the input.
Tensor unsqueeze_reduced(const Tensor& t, const std::vector<bool>& mask) {
  Shape kept;
  size_t k = 0;
  for (size_t d = 0; d < mask.size(); ++d) kept.push_back(mask[d] ? 1 : t.shape()[k++]);
  return t.reshape(kept);
}

// Sums the dims in `mask`; result has keepdim = true layout squeezed per `keepdim`.
Tensor sum_kernel(const Tensor& x, const std::vector<bool>& mask, bool keepdim, const char* op) {
  ops::check_cpu(op, {x});
  const Shape out_shape = reduced_shape(x, mask, keepdim);
  // Find whether the reduced dims form one block [first, last]: then x is already an
  // (outer, R, inner) array. Otherwise permute kept dims first and copy.
  int64_t first = -1, last = -1;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (mask[d]) {
      if (first < 0) first = d;
      last = d;
    }
  Tensor src = x;
  int64_t outer = 1, R = 1, inner = 1;
  bool block = true;
  for (int64_t d = first; d >= 0 && d <= last; ++d) block &= mask[d];
  if (first < 0) {  // nothing to reduce (0-d input, or no dims)
    outer = x.numel();
  } else if (block) {
    for (int64_t d = 0; d < first; ++d) outer *= x.shape()[d];
    for (int64_t d = first; d <= last; ++d) R *= x.shape()[d];
    for (int64_t d = last + 1; d < x.dim(); ++d) inner *= x.shape()[d];
  } else {
    std::vector<int64_t> perm;
    for (int64_t d = 0; d < x.dim(); ++d)
      if (!mask[d]) perm.push_back(d), outer *= x.shape()[d];
    for (int64_t d = 0; d < x.dim(); ++d)
      if (mask[d]) perm.push_back(d), R *= x.shape()[d];
    NoGradGuard no_grad;
    src = x.permute(perm);
  }
  NoGradGuard no_grad;
  src = src.contiguous();
  Tensor out = empty(out_shape, {.dtype = x.dtype()});
  dispatch_numeric(x.dtype(), op, [&]<class T>() {
    cpu::sum_middle(src.data<T>(), out.data<T>(), outer, R, inner);
  });
  return out;
}

}  // namespace

// ---- sum ---------------------------------------------------------------------------
// Backward: every input element contributed once, so its gradient is the output's,
// broadcast back over the reduced dims.

Tensor sum(const Tensor& x, const Dims& dims, bool keepdim) {
  const std::vector<bool> mask = reduced_mask(x, dims, "sum");
  Tensor out = sum_kernel(x, mask, keepdim, "sum");
  autograd::record("sum", out, {x}, {}, [mask, keepdim, shape = x.shape()](const Tensor& g, const Saved&) {
    Tensor gk = keepdim ? g : unsqueeze_reduced(g, mask);
    return Grads{gk.expand(shape)};
  });
  return out;
}

Tensor sum(const Tensor& x) { return sum(x, {}, false); }

// ---- mean ----------------------------------------------------------------------------

Tensor mean(const Tensor& x, const Dims& dims, bool keepdim) {
  ops::check_floating("mean", x);
  const std::vector<bool> mask = reduced_mask(x, dims, "mean");
  int64_t count = 1;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (mask[d]) count *= x.shape()[d];
  return sum(x, dims, keepdim) * (1.0 / static_cast<double>(count));
}

Tensor mean(const Tensor& x) { return mean(x, {}, false); }

// ---- sum_to --------------------------------------------------------------------------

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  const int64_t lead = x.dim() - static_cast<int64_t>(shape.size());
  KILN_CHECK(lead >= 0, "sum_to: cannot sum ", shape_str(x.shape()), " down to ", shape_str(shape));
  Dims dims;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d < lead) {
      dims.push_back(d);
    } else if (shape[d - lead] == 1 && x.shape()[d] != 1) {
      dims.push_back(d);
    } else {
      KILN_CHECK(shape[d - lead] == x.shape()[d], "sum_to: cannot sum ", shape_str(x.shape()), " down to ",
                 shape_str(shape));
    }
  }
  if (dims.empty()) return x.reshape(shape);
  return sum(x, dims, /*keepdim=*/true).reshape(shape);
}

}  // namespace kiln
