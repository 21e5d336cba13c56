// Shape ops: cat and stack build a new tensor from several, split and chunk cut one into
// views, pad surrounds one with a constant. Each forward is followed by its backward:
// the gradient of a copy-into-a-region op is the matching region of the gradient.
//
// On CUDA the ops are views and copies: each region is a strided view of the output that
// copy_ fills (one kernel per input), and the backward rules are views already.
#include "kiln/ops/shape.h"

#include <algorithm>
#include <string>

#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"
#include "kiln/core/dispatch.h"
#include "kiln/core/factory.h"
#include "kiln/core/profiler.h"
#include "kiln/ops/common.h"
#include "kiln/ops/cpu/shape.h"

namespace kiln {

using autograd::Grads;
using autograd::Saved;

namespace {

// Copies every element of `src` into `dst`, which has src's shape but its own strides and
// starts `dst_offset` elements into dst's data. The dtypes and devices match (callers
// check). On CUDA the region is a view of dst's storage filled by copy_, untracked: the
// op records its own node.
void copy_region(const Tensor& dst, int64_t dst_offset, const Tensor& src) {
  if (src.numel() == 0) return;
  if (dst.device().is_cuda()) {
    NoGradGuard no_grad;
    make_tensor(dst.storage(), src.shape(), dst.strides(), dst.offset() + dst_offset, dst.dtype()).copy_(src);
    return;
  }
  dispatch_all(src.dtype(), "copy", [&]<class T>() {
    cpu::copy_strided(static_cast<T*>(dst.raw_data()) + dst_offset, dst.strides().data(),
                      static_cast<const T*>(src.raw_data()), src.strides().data(), src.shape());
  });
}

// Product of the sizes in [begin, end) of `shape`.
int64_t size_product(const Shape& shape, int64_t begin, int64_t end) {
  int64_t n = 1;
  for (int64_t d = begin; d < end; ++d) n *= shape[d];
  return n;
}

// Every tensor matches the first in device, dtype and rank, and in size on all dims but
// `except` (pass -1 to require equal shapes).
void check_joinable(const char* op, const std::vector<Tensor>& tensors, int64_t except) {
  const Tensor& first = tensors[0];
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    ops::check_same_device(op, {first, t});
    ops::check_same_dtype(op, first, t);
    KILN_CHECK(t.dim() == first.dim(), op, ": tensors must have the same number of dims, but tensor 0 is ",
               describe(first), " and tensor ", i, " is ", describe(t));
    for (int64_t d = 0; d < t.dim(); ++d)
      KILN_CHECK(d == except || t.shape()[d] == first.shape()[d], op, ": sizes must match",
                 except >= 0 ? " except in dim " + std::to_string(except) : std::string(), ", but tensor 0 is ",
                 describe(first), " and tensor ", i, " is ", describe(t), " (dim ", d, ": ", first.shape()[d],
                 " vs ", t.shape()[d], ")");
  }
}

}  // namespace

// ---- cat --------------------------------------------------------------------------------
// The output, seen as (outer, total * inner) with outer/inner the sizes before/after `dim`,
// is each input's (outer, size_i * inner) block laid side by side. Contiguous inputs are
// copied block by block with memcpy; others element-wise through their strides.
// Backward: input i's gradient is the slice of the output gradient it was copied to.

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  KILN_PROFILE_SCOPE("cat", tensors);
  KILN_CHECK(!tensors.empty(), "cat: expected a non-empty list of tensors");
  ops::check_same_device("cat", {tensors[0]});
  KILN_CHECK(tensors[0].dim() > 0, "cat: cannot concatenate zero-dimensional tensors (tensor 0 is ",
             describe(tensors[0]), "); use stack to join them along a new dim");
  const int64_t d = wrap_dim(dim, tensors[0].dim(), "cat");
  check_joinable("cat", tensors, d);

  std::vector<int64_t> sizes;  // each input's size along d
  Shape out_shape = tensors[0].shape();
  out_shape[d] = 0;
  for (const Tensor& t : tensors) {
    sizes.push_back(t.shape()[d]);
    out_shape[d] += t.shape()[d];
  }
  Tensor out = empty(out_shape, {.dtype = tensors[0].dtype(), .device = tensors[0].device()});
  const int64_t outer = size_product(out_shape, 0, d);
  const int64_t inner = size_product(out_shape, d + 1, static_cast<int64_t>(out_shape.size()));
  const int64_t elem = static_cast<int64_t>(element_size(out.dtype()));
  int64_t start = 0;  // where the current input begins along d
  for (const Tensor& t : tensors) {
    if (t.numel() > 0 && t.is_contiguous() && t.device().is_cpu()) {
      cpu::copy_blocks(static_cast<char*>(out.raw_data()) + start * inner * elem, out_shape[d] * inner * elem,
                       static_cast<const char*>(t.raw_data()), outer, t.shape()[d] * inner * elem);
    } else {
      copy_region(out, start * inner, t);
    }
    start += t.shape()[d];
  }

  autograd::record("cat", out, tensors, {}, [d, sizes](const Tensor& g, const Saved& s) {
    Grads grads(sizes.size());
    int64_t start = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      if (s.needs_grad(i)) grads[i] = g.narrow(d, start, sizes[i]);
      start += sizes[i];
    }
    return grads;
  });
  return out;
}

// ---- stack ------------------------------------------------------------------------------
// stack = cat of the inputs each given a new size-1 dim; the unsqueeze views carry the
// gradient back to the original shapes.

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  KILN_PROFILE_SCOPE("stack", tensors);
  KILN_CHECK(!tensors.empty(), "stack: expected a non-empty list of tensors");
  check_joinable("stack", tensors, /*except=*/-1);
  const int64_t d = wrap_dim(dim, tensors[0].dim() + 1, "stack");
  std::vector<Tensor> unsqueezed;
  unsqueezed.reserve(tensors.size());
  for (const Tensor& t : tensors) unsqueezed.push_back(t.unsqueeze(d));
  return cat(unsqueezed, d);
}

// ---- split / chunk ----------------------------------------------------------------------
// Pieces are narrow() views: they share storage with x, and narrow's backward routes each
// piece's gradient into its place.

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  KILN_PROFILE_SCOPE("split");
  ops::check_same_device("split", {x});
  KILN_CHECK(x.dim() > 0, "split: cannot split a zero-dimensional tensor");
  const int64_t d = wrap_dim(dim, x.dim(), "split");
  int64_t total = 0;
  for (int64_t s : sizes) {
    KILN_CHECK(s >= 0, "split: sizes must be non-negative, got ", shape_str(sizes));
    total += s;
  }
  KILN_CHECK(total == x.shape()[d], "split: sizes ", shape_str(sizes), " sum to ", total, ", but dim ", dim,
             " of ", describe(x), " has size ", x.shape()[d]);
  std::vector<Tensor> pieces;
  pieces.reserve(sizes.size());
  int64_t start = 0;
  for (int64_t s : sizes) {
    pieces.push_back(x.narrow(d, start, s));
    start += s;
  }
  return pieces;
}

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim) {
  ops::check_same_device("split", {x});
  KILN_CHECK(x.dim() > 0, "split: cannot split a zero-dimensional tensor");
  const int64_t d = wrap_dim(dim, x.dim(), "split");
  const int64_t n = x.shape()[d];
  KILN_CHECK(split_size > 0 || (split_size == 0 && n == 0), "split: split_size must be positive, got ",
             split_size);
  // As in PyTorch, an empty dim still yields one (empty) piece.
  std::vector<int64_t> sizes;
  for (int64_t start = 0; start < n; start += split_size) sizes.push_back(std::min(split_size, n - start));
  if (sizes.empty()) sizes.push_back(0);
  return split(x, sizes, d);
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  KILN_PROFILE_SCOPE("chunk");
  ops::check_same_device("chunk", {x});
  KILN_CHECK(chunks > 0, "chunk: number of chunks must be positive, got ", chunks);
  KILN_CHECK(x.dim() > 0, "chunk: cannot chunk a zero-dimensional tensor");
  const int64_t d = wrap_dim(dim, x.dim(), "chunk");
  const int64_t n = x.shape()[d];
  // Pieces of ceil(n / chunks), as torch.chunk: fewer than `chunks` pieces when they run
  // out (6 in 4 chunks gives 2, 2, 2), and `chunks` empty pieces from an empty dim.
  if (n == 0) return split(x, std::vector<int64_t>(static_cast<size_t>(chunks), 0), d);
  return split(x, (n + chunks - 1) / chunks, d);
}

// ---- pad --------------------------------------------------------------------------------
// Per padded dim, `lo`/`hi` elements are added before/after (removed when negative). The
// output is filled with `value`, then the part of x that survives the cropping is copied
// into its place. Backward: pad's adjoint is pad with the negated pads (a positive pad
// becomes a crop that drops the constant border, a crop becomes zero padding), which is
// itself differentiable.

Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, double value) {
  KILN_PROFILE_SCOPE("pad", x);
  ops::check_same_device("pad", {x});
  KILN_CHECK(pads.size() % 2 == 0, "pad: pads must come in (low, high) pairs, got ", pads.size(), " values");
  const int64_t padded_dims = static_cast<int64_t>(pads.size()) / 2;
  KILN_CHECK(padded_dims <= x.dim(), "pad: ", pads.size(), " pad values for ", padded_dims, " dims, but ",
             describe(x), " has only ", x.dim());

  Shape out_shape = x.shape();
  Shape kept = x.shape();                                   // surviving part of x
  std::vector<int64_t> src_start(static_cast<size_t>(x.dim()), 0);  // where it starts in x
  std::vector<int64_t> dst_start(static_cast<size_t>(x.dim()), 0);  // and in the output
  for (int64_t k = 0; k < padded_dims; ++k) {
    const int64_t d = x.dim() - 1 - k;  // pads list the last dim first
    const int64_t lo = pads[2 * k], hi = pads[2 * k + 1], n = x.shape()[d];
    kept[d] = n + std::min<int64_t>(lo, 0) + std::min<int64_t>(hi, 0);
    out_shape[d] = n + lo + hi;
    KILN_CHECK(kept[d] >= 0 && out_shape[d] >= 0, "pad: pads (", lo, ", ", hi, ") crop more than dim ", d,
               " of ", describe(x), " holds");
    src_start[d] = std::max<int64_t>(-lo, 0);
    dst_start[d] = std::max<int64_t>(lo, 0);
  }

  Tensor out = full(out_shape, value, {.dtype = x.dtype(), .device = x.device()});
  int64_t src_offset = x.offset(), dst_offset = 0;
  for (int64_t d = 0; d < x.dim(); ++d) {
    src_offset += src_start[d] * x.strides()[d];
    dst_offset += dst_start[d] * out.strides()[d];
  }
  copy_region(out, dst_offset, make_tensor(x.storage(), kept, x.strides(), src_offset, x.dtype()));

  std::vector<int64_t> negated(pads.size());
  std::transform(pads.begin(), pads.end(), negated.begin(), [](int64_t p) { return -p; });
  autograd::record("pad", out, {x}, {}, [negated](const Tensor& g, const Saved&) {
    return Grads{pad(g, negated, 0.0)};
  });
  return out;
}

}  // namespace kiln
