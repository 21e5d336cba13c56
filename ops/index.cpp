// Indexing ops. They come in adjoint pairs, each the other's backward:
//   index_select (copy rows at indices)    <->  index_add   (add rows into zeros at indices)
//   gather       (read elements at indices) <-> scatter_add (add elements at indices)
// embedding is index_select of weight rows with its own padding rule. Because each pair's
// backward is the other op (recorded too), double backward works.
//
// Public ops check their arguments (i64 indices, shapes, every index in range) and then
// call the unchecked, recorded *_impl op, which backward rules reuse with the same indices.
//
// Every op runs on the CPU and on CUDA: the argument checks and the autograd records are
// shared, and each *_impl op branches to ops/cpu/index.h or cuda/index.h. On CUDA,
// index_add (the backward of index_select and embedding) sorts the indices and lets one
// block own each output row, so gradients are deterministic without atomics.
#include "kiln/ops/index.h"

#include <limits>
#include <utility>

#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"
#include "kiln/core/dispatch.h"
#include "kiln/core/factory.h"
#include "kiln/core/profiler.h"
#include "kiln/cuda/device_check.h"
#include "kiln/cuda/index.h"
#include "kiln/ops/common.h"
#include "kiln/ops/cpu/index.h"
#include "kiln/ops/elementwise.h"
#include "kiln/ops/shape.h"

namespace kiln {

using autograd::Grads;
using autograd::Saved;

namespace {

// ---- argument checks --------------------------------------------------------------------

void check_index_dtype(const char* op, const Tensor& index, const char* name) {
  KILN_CHECK(index.dtype() == i64, op, ": ", name, " must be i64, got ", describe(index),
             "; convert with .to(kiln::i64)");
}

// Every value of the contiguous `index` lies in [0, t.size(dim)); `name` names t. `op` must
// be a string literal. A CUDA index is checked by a kernel queued before the op's own,
// without stalling the GPU: a bad value is reported as kiln::Error at the next
// synchronisation (cuda/device_check.h), and the op's kernels skip it meanwhile, so memory
// is safe either way.
void check_in_range(const char* op, const Tensor& index, const Tensor& t, int64_t dim, const char* name) {
  const int64_t size = t.shape()[dim];
  if (index.device().is_cuda()) {
    cuda::check_index_range(op, "index", index.data<int64_t>(), index.numel(), 0, size, false, 0,
                            index.device().index, detail::str(" for dim ", dim, " of ", name, " ", describe(t)));
    return;
  }
  const int64_t* idx = index.data<int64_t>();
  const int64_t bad = cpu::find_out_of_range(idx, index.numel(), size);
  KILN_CHECK(bad < 0, op, ": index ", idx[bad], " at position ", bad, " is out of range [0, ", size, ") for dim ",
             dim, " of ", name, " ", describe(t));
}

// The torch.gather/scatter shape rule: `index` has t's rank and is no larger than t in
// every dim except `free_dim` (pass -1 to check all dims).
void check_index_fits(const char* op, const Tensor& index, const Tensor& t, const char* name, int64_t free_dim) {
  KILN_CHECK(index.dim() == t.dim(), op, ": index ", describe(index), " must have as many dims as ", name, " ",
             describe(t));
  for (int64_t d = 0; d < t.dim(); ++d)
    KILN_CHECK(d == free_dim || index.shape()[d] <= t.shape()[d], op, ": index ", describe(index),
               " is larger than ", name, " ", describe(t), " in dim ", d, " (", index.shape()[d], " > ",
               t.shape()[d], ")");
}

// ---- shared geometry ----------------------------------------------------------------------

// Options for a new tensor of `dtype` on t's device.
TensorOptions on_device_of(const Tensor& t, DType dtype) { return {.dtype = dtype, .device = t.device()}; }

// Calls f.template operator()<W>() with W the unsigned integer as wide as one element of
// `dtype`: the CUDA copies of index_select and gather move values without reading them,
// so one kernel per width serves every dtype.
template <class F>
void dispatch_word(DType dtype, const char* op, F&& f) {
  switch (element_size(dtype)) {
    case 1: return f.template operator()<uint8_t>();
    case 2: return f.template operator()<uint16_t>();
    case 4: return f.template operator()<uint32_t>();
    case 8: return f.template operator()<uint64_t>();
    default: throw Error(kiln::detail::str(op, ": dtype ", dtype_name(dtype), " is not supported on CUDA"));
  }
}

// Sizes of x before and after `dim`: x is then an (outer, x.size(dim), inner) array.
std::pair<int64_t, int64_t> outer_inner(const Shape& shape, int64_t dim) {
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= shape[d];
  for (int64_t d = dim + 1; d < static_cast<int64_t>(shape.size()); ++d) inner *= shape[d];
  return {outer, inner};
}

// Lines of `index` along `dim` for the element kernels (see cpu::IndexLines).
cpu::IndexLines index_lines(const Tensor& index, const Tensor& indexed, const Tensor& dense, int64_t dim) {
  const Tensor* operands[3] = {&index, &indexed, &dense};  // in IndexLines::Operand order
  cpu::IndexLines lines;
  for (int64_t d = 0; d < index.dim(); ++d) {
    if (d == dim) {
      lines.length = index.shape()[d];
      for (size_t k = 0; k < 3; ++k) lines.step[k] = operands[k]->strides()[d];
    } else {
      lines.grid.push_back(index.shape()[d]);
      for (size_t k = 0; k < 3; ++k) lines.strides[k].push_back(operands[k]->strides()[d]);
    }
  }
  return lines;
}

// The same lines in the fixed-size form a CUDA kernel takes by value. `indexed_size` is
// the indexed tensor's size along the dim (the valid index values).
cuda::IndexLinesLayout cuda_layout(const cpu::IndexLines& lines, int64_t indexed_size, const char* op) {
  const int ndim = static_cast<int>(lines.grid.size());
  KILN_CHECK(ndim < cuda::kMaxIndexDims, op, ": tensors of more than ", cuda::kMaxIndexDims,
             " dims are not supported on CUDA");
  cuda::IndexLinesLayout layout;
  layout.ndim = ndim;
  for (int d = 0; d < ndim; ++d) {
    layout.grid[d] = lines.grid[d];
    for (int k = 0; k < 3; ++k) layout.strides[k][d] = lines.strides[k][d];
  }
  for (int k = 0; k < 3; ++k) layout.step[k] = lines.step[k];
  layout.length = lines.length;
  layout.lines = lines.count();
  layout.indexed_size = indexed_size;
  return layout;
}

// Contiguous copy (or x itself), recorded by no one: the calling op records its own node.
Tensor contiguous_untracked(const Tensor& x) {
  NoGradGuard no_grad;
  return x.contiguous();
}

// ---- rows: index_select <-> index_add ------------------------------------------------------
// `index` is always 1-D, contiguous and already checked.

Tensor index_add_impl(const Tensor& src, int64_t dim, const Tensor& index, int64_t size);

// x's slices at `index` along dim, as a fresh tensor (no autograd).
Tensor select_rows(const Tensor& x, int64_t dim, const Tensor& index) {
  Shape out_shape = x.shape();
  out_shape[dim] = index.numel();
  Tensor out = empty(out_shape, on_device_of(x, x.dtype()));
  const Tensor src = contiguous_untracked(x);
  // Plain variables, not a structured binding: clang < 16 cannot capture those in the
  // lambda below (the fuzz build uses clang 14).
  const auto [outer_, inner_] = outer_inner(x.shape(), dim);
  const int64_t outer = outer_, inner = inner_;
  if (x.device().is_cuda()) {
    dispatch_word(x.dtype(), "index_select", [&]<class W>() {
      cuda::index_select(static_cast<W*>(out.raw_data()), static_cast<const W*>(src.raw_data()),
                         index.data<int64_t>(), index.numel(), outer, x.shape()[dim], inner, x.device().index);
    });
  } else {
    dispatch_all(x.dtype(), "index_select", [&]<class T>() {
      cpu::index_select(out.data<T>(), src.data<T>(), index.data<int64_t>(), index.numel(), outer, x.shape()[dim],
                        inner);
    });
  }
  return out;
}

// Backward: each selected slice's gradient is added back where it came from.
Tensor index_select_impl(const Tensor& x, int64_t dim, const Tensor& index) {
  Tensor out = select_rows(x, dim, index);
  autograd::record("index_select", out, {x}, {index}, [dim, size = x.shape()[dim]](const Tensor& g, const Saved& s) {
    return Grads{index_add_impl(g, dim, s[0], size)};
  });
  return out;
}

// Zeros of src's shape with `dim` resized to `size`, plus src's slice k added at slice
// index[k]: the adjoint of index_select. Repeated indices accumulate.
// Backward: each slice of src reads the gradient at its destination (index_select).
Tensor index_add_impl(const Tensor& src, int64_t dim, const Tensor& index, int64_t size) {
  Shape out_shape = src.shape();
  out_shape[dim] = size;
  const Tensor s = contiguous_untracked(src);
  const auto [outer_, inner_] = outer_inner(src.shape(), dim);  // see index_select
  const int64_t outer = outer_, inner = inner_;
  Tensor out;
  if (src.device().is_cuda()) {
    // The kernel writes every element (zeros where no index points), so no zero fill.
    // It sorts index * n + position keys in a scratch tensor of the caching allocator.
    const int64_t n = index.numel();
    KILN_CHECK(n == 0 || size <= std::numeric_limits<int64_t>::max() / n - 1, "index_add: ", n,
               " indices into ", size, " rows are too many to sort on CUDA");
    out = empty(out_shape, on_device_of(src, src.dtype()));
    Tensor scratch = empty({cuda::index_add_scratch_size(n)}, on_device_of(src, i64));
    dispatch_numeric(src.dtype(), "index_add", [&]<class T>() {
      cuda::index_add(out.data<T>(), s.data<T>(), index.data<int64_t>(), n, outer, size, inner,
                      scratch.data<int64_t>(), src.device().index);
    });
  } else {
    out = zeros(out_shape, {.dtype = src.dtype()});
    dispatch_numeric(src.dtype(), "index_add", [&]<class T>() {
      cpu::index_add(out.data<T>(), s.data<T>(), index.data<int64_t>(), index.numel(), outer, size, inner);
    });
  }
  autograd::record("index_add", out, {src}, {index}, [dim](const Tensor& g, const Saved& saved) {
    return Grads{index_select_impl(g, dim, saved[0])};
  });
  return out;
}

// ---- elements: gather <-> scatter_add ------------------------------------------------------
// `index` is contiguous, already checked, and has the rank of the other operands.

Tensor scatter_add_impl(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);

// Backward: each read element's gradient is added back where it was read from.
Tensor gather_impl(const Tensor& x, int64_t dim, const Tensor& index) {
  Tensor out = empty(index.shape(), on_device_of(x, x.dtype()));
  if (x.device().is_cuda()) {
    const cuda::IndexLinesLayout layout = cuda_layout(index_lines(index, x, out, dim), x.shape()[dim], "gather");
    dispatch_word(x.dtype(), "gather", [&]<class W>() {
      cuda::gather(static_cast<W*>(out.raw_data()), static_cast<const W*>(x.raw_data()), index.data<int64_t>(),
                   layout, x.device().index);
    });
  } else {
    dispatch_all(x.dtype(), "gather", [&]<class T>() {
      cpu::gather(out.data<T>(), x.data<T>(), index.data<int64_t>(), index_lines(index, x, out, dim));
    });
  }
  autograd::record("gather", out, {x}, {index}, [dim, shape = x.shape()](const Tensor& g, const Saved& s) {
    return Grads{scatter_add_impl(zeros(shape, on_device_of(g, g.dtype())), dim, s[0], g)};
  });
  return out;
}

// Zero-pads `t` at the high end of each dim up to `shape` (src may be larger than index).
Tensor pad_to(const Tensor& t, const Shape& shape) {
  if (t.shape() == shape) return t;
  std::vector<int64_t> pads;
  for (int64_t d = t.dim() - 1; d >= 0; --d) pads.insert(pads.end(), {0, shape[d] - t.shape()[d]});
  return pad(t, pads);
}

// Backward: x's gradient passes through; each used src element reads the gradient at its
// destination (gather), and src elements beyond index's extent get zero.
Tensor scatter_add_impl(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  Tensor out;
  {
    NoGradGuard no_grad;
    out = x.clone();  // a fresh contiguous copy: lines write disjoint elements of it
  }
  if (x.device().is_cuda()) {
    const cuda::IndexLinesLayout layout =
        cuda_layout(index_lines(index, out, src, dim), out.shape()[dim], "scatter_add");
    dispatch_numeric(x.dtype(), "scatter_add", [&]<class T>() {
      cuda::scatter_add(out.data<T>(), src.data<T>(), index.data<int64_t>(), layout, x.device().index);
    });
  } else {
    dispatch_numeric(x.dtype(), "scatter_add", [&]<class T>() {
      cpu::scatter_add(out.data<T>(), src.data<T>(), index.data<int64_t>(), index_lines(index, out, src, dim));
    });
  }
  autograd::record("scatter_add", out, {x, src}, {index},
                   [dim, src_shape = src.shape()](const Tensor& g, const Saved& s) {
                     return Grads{s.needs_grad(0) ? g : Tensor(),
                                  s.needs_grad(1) ? pad_to(gather_impl(g, dim, s[0]), src_shape) : Tensor()};
                   });
  return out;
}

// (n, 1) tensor of `dtype`: 0 where index == padding_idx, 1 elsewhere.
Tensor padding_keep_mask(const Tensor& index, int64_t padding_idx, DType dtype) {
  Tensor keep = empty({index.numel(), 1}, on_device_of(index, dtype));
  dispatch_floating(dtype, "embedding", [&]<class T>() {
    if (index.device().is_cuda())
      cuda::not_equal_mask(keep.data<T>(), index.data<int64_t>(), index.numel(), padding_idx, index.device().index);
    else
      cpu::not_equal_mask(keep.data<T>(), index.data<int64_t>(), index.numel(), padding_idx);
  });
  return keep;
}

}  // namespace

// ---- public ops ---------------------------------------------------------------------------

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  KILN_PROFILE_SCOPE("index_select", index);
  ops::check_same_device("index_select", {x, index});
  check_index_dtype("index_select", index, "index");
  KILN_CHECK(index.dim() <= 1, "index_select: index must be 1-D, got ", describe(index));
  KILN_CHECK(x.dim() > 0, "index_select: cannot index a zero-dimensional tensor ", describe(x));
  const int64_t d = wrap_dim(dim, x.dim(), "index_select");
  const Tensor idx = index.reshape({-1}).contiguous();
  check_in_range("index_select", idx, x, d, "x");
  return index_select_impl(x, d, idx);
}

// Forward: weight rows at the flattened indices. Backward: the rows' gradients are added
// into a zero weight gradient (index_add: deterministic, repeated tokens accumulate); rows
// looked up at padding_idx are masked out first, so that row's gradient stays zero.
Tensor embedding(const Tensor& indices, const Tensor& weight, int64_t padding_idx) {
  KILN_PROFILE_SCOPE("embedding", indices);
  ops::check_same_device("embedding", {indices, weight});
  check_index_dtype("embedding", indices, "indices");
  KILN_CHECK(weight.dim() == 2, "embedding: weight must be 2-D (num_embeddings, embedding_dim), got ",
             describe(weight));
  const int64_t num = weight.shape()[0], width = weight.shape()[1];
  KILN_CHECK(padding_idx >= -1 && padding_idx < num, "embedding: padding_idx ", padding_idx,
             " must be -1 (none) or in [0, ", num, ") for weight ", describe(weight));
  const Tensor flat = indices.reshape({-1}).contiguous();
  check_in_range("embedding", flat, weight, 0, "weight");

  Shape out_shape = indices.shape();
  out_shape.push_back(width);
  const Tensor rows = select_rows(weight, 0, flat);  // (n, width), contiguous
  Tensor out = make_tensor(rows.storage(), out_shape, contiguous_strides(out_shape), 0, weight.dtype());
  autograd::record("embedding", out, {weight}, {flat}, [num, width, padding_idx](const Tensor& g, const Saved& s) {
    Tensor rows = g.reshape({-1, width});
    if (padding_idx >= 0) rows = rows * padding_keep_mask(s[0], padding_idx, g.dtype());
    return Grads{index_add_impl(rows, 0, s[0], num)};
  });
  return out;
}

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  KILN_PROFILE_SCOPE("gather", index);
  ops::check_same_device("gather", {x, index});
  check_index_dtype("gather", index, "index");
  KILN_CHECK(x.dim() > 0, "gather: cannot index a zero-dimensional tensor ", describe(x));
  const int64_t d = wrap_dim(dim, x.dim(), "gather");
  check_index_fits("gather", index, x, "x", d);
  const Tensor idx = index.contiguous();
  check_in_range("gather", idx, x, d, "x");
  return gather_impl(x, d, idx);
}

Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  KILN_PROFILE_SCOPE("scatter_add", x, index, src);
  ops::check_same_device("scatter_add", {x, index, src});
  check_index_dtype("scatter_add", index, "index");
  ops::check_same_dtype("scatter_add", x, src);
  KILN_CHECK(x.dim() > 0, "scatter_add: cannot index a zero-dimensional tensor ", describe(x));
  const int64_t d = wrap_dim(dim, x.dim(), "scatter_add");
  check_index_fits("scatter_add", index, x, "x", d);
  check_index_fits("scatter_add", index, src, "src", -1);
  const Tensor idx = index.contiguous();
  check_in_range("scatter_add", idx, x, d, "x");
  return scatter_add_impl(x, d, idx, src);
}

}  // namespace kiln
