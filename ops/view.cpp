// The view and copy members of Tensor (declared in core/tensor.h). A view shares
// storage and changes only shape/strides/offset; its backward maps the gradient back
// onto the base's shape.
#include <numeric>
#include <optional>

#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"
#include "kiln/core/dispatch.h"
#include "kiln/core/factory.h"
#include "kiln/core/profiler.h"
#include "kiln/cuda/copy.h"
#include "kiln/cuda/device.h"
#include "kiln/cuda/map.h"
#include "kiln/ops/common.h"
#include "kiln/ops/cpu/cast.h"
#include "kiln/ops/cpu/loops.h"
#include "kiln/ops/layout.h"
#include "kiln/ops/reduce.h"

namespace kiln {

using autograd::Grads;
using autograd::Saved;

namespace {

Tensor alias(const Tensor& t, Shape shape, Shape strides, int64_t offset) {
  return make_tensor(t.storage(), std::move(shape), std::move(strides), offset, t.dtype());
}

// Resolves one -1 in `shape` against numel; checks the element count matches.
Shape infer_shape(const Shape& shape, int64_t numel, const char* op) {
  Shape out = shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      KILN_CHECK(infer < 0, op, ": only one dimension can be -1 in ", shape_str(shape));
      infer = static_cast<int64_t>(i);
    } else {
      KILN_CHECK(out[i] >= 0, op, ": invalid size ", out[i], " in ", shape_str(shape));
      known *= out[i];
    }
  }
  if (infer >= 0) {
    KILN_CHECK(known != 0 && numel % known == 0, op, ": shape ", shape_str(shape), " is invalid for ", numel,
               " elements");
    out[infer] = numel / known;
  }
  KILN_CHECK(numel_of(out) == numel, op, ": shape ", shape_str(shape), " is invalid for input of ", numel,
             " elements");
  return out;
}

// Strides that let `new_shape` view memory laid out as (shape, strides), if any:
// each group of old dims that is contiguous in memory can be re-split freely.
std::optional<Shape> view_strides(const Shape& shape, const Shape& strides, const Shape& new_shape) {
  Shape out(new_shape.size());
  if (shape.empty() || numel_of(shape) == 0) return contiguous_strides(new_shape);
  int64_t view_d = static_cast<int64_t>(new_shape.size()) - 1;
  int64_t chunk_base_stride = strides.empty() ? 1 : strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= shape[d];
    // End of a contiguous chunk of old dims: lay the new dims over it.
    if (d == 0 || (shape[d - 1] != 1 && strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || new_shape[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= new_shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (d > 0) {
        chunk_base_stride = strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return out;
}

}  // namespace

// ---- view / reshape -----------------------------------------------------------------

Tensor Tensor::view(const Shape& shape_in) const {
  KILN_PROFILE_SCOPE("view");
  const Shape new_shape = infer_shape(shape_in, numel(), "view");
  auto st = view_strides(shape(), strides(), new_shape);
  KILN_CHECK(st.has_value(), "view: cannot view ", describe(*this), " as ", shape_str(new_shape),
             " without copying (its strides are not compatible); use reshape()");
  Tensor out = alias(*this, new_shape, *st, offset());
  autograd::record("view", out, {*this}, {}, [in = shape()](const Tensor& g, const Saved&) {
    return Grads{g.reshape(in)};
  });
  return out;
}

Tensor Tensor::reshape(const Shape& shape_in) const {
  const Shape new_shape = infer_shape(shape_in, numel(), "reshape");
  if (view_strides(shape(), strides(), new_shape)) return view(new_shape);
  return contiguous().view(new_shape);
}

Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  if (dim() == 0) return reshape({1});
  const int64_t s = wrap_dim(start_dim, dim(), "flatten"), e = wrap_dim(end_dim, dim(), "flatten");
  KILN_CHECK(s <= e, "flatten: start_dim ", start_dim, " comes after end_dim ", end_dim);
  Shape out(shape().begin(), shape().begin() + s);
  int64_t n = 1;
  for (int64_t d = s; d <= e; ++d) n *= shape()[d];
  out.push_back(n);
  out.insert(out.end(), shape().begin() + e + 1, shape().end());
  return reshape(out);
}

Tensor Tensor::squeeze() const {
  Shape out;
  for (int64_t s : shape())
    if (s != 1) out.push_back(s);
  return reshape(out);
}

Tensor Tensor::squeeze(int64_t d) const {
  const int64_t w = wrap_dim(d, dim(), "squeeze");
  if (dim() == 0 || shape()[w] != 1) return view(shape());
  Shape out = shape();
  out.erase(out.begin() + w);
  return view(out);
}

Tensor Tensor::unsqueeze(int64_t d) const {
  const int64_t w = wrap_dim(d, dim() + 1, "unsqueeze");
  Shape out = shape();
  out.insert(out.begin() + w, 1);
  return view(out);
}

// ---- transpose / permute --------------------------------------------------------------

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  KILN_PROFILE_SCOPE("permute");
  KILN_CHECK(static_cast<int64_t>(dims.size()) == dim(), "permute: got ", dims.size(), " dims for ",
             describe(*this));
  Shape new_shape(dims.size()), new_strides(dims.size());
  std::vector<int64_t> inverse(dims.size(), -1);
  for (size_t i = 0; i < dims.size(); ++i) {
    const int64_t d = wrap_dim(dims[i], dim(), "permute");
    KILN_CHECK(inverse[d] < 0, "permute: dim ", dims[i], " repeats in the permutation");
    inverse[d] = static_cast<int64_t>(i);
    new_shape[i] = shape()[d];
    new_strides[i] = strides()[d];
  }
  Tensor out = alias(*this, new_shape, new_strides, offset());
  autograd::record("permute", out, {*this}, {}, [inverse](const Tensor& g, const Saved&) {
    return Grads{g.permute(inverse)};
  });
  return out;
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  if (dim() == 0) {  // PyTorch allows only dims 0 / -1 on a scalar
    wrap_dim(d0, 0, "transpose");
    wrap_dim(d1, 0, "transpose");
    return view(shape());
  }
  std::vector<int64_t> perm(static_cast<size_t>(dim()));
  std::iota(perm.begin(), perm.end(), 0);
  std::swap(perm[wrap_dim(d0, dim(), "transpose")], perm[wrap_dim(d1, dim(), "transpose")]);
  return permute(perm);
}

Tensor Tensor::t() const {
  KILN_CHECK(dim() <= 2, "t: expects a tensor with <= 2 dims, got ", describe(*this));
  return dim() < 2 ? view(shape()) : transpose(0, 1);
}

// ---- slicing --------------------------------------------------------------------------
// Backward of a slice: a zero tensor of the input's shape with the gradient written into
// the sliced region. It is an op itself (slice_backward) so double backward works.

namespace {

Tensor slice_backward(const Tensor& g, const Shape& in_shape, int64_t dim, int64_t start, int64_t step) {
  Tensor out = zeros(in_shape, {.dtype = g.dtype(), .device = g.device()});
  {
    NoGradGuard no_grad;
    out.slice(dim, start, start + (g.shape()[dim] - 1) * step + 1, step).copy_(g);
  }
  autograd::record("slice_backward", out, {g}, {}, [=, n = g.shape()[dim]](const Tensor& gg, const Saved&) {
    return Grads{gg.slice(dim, start, start + (n - 1) * step + 1, step)};
  });
  return out;
}

}  // namespace

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  KILN_PROFILE_SCOPE("slice");
  const int64_t w = wrap_dim(d, dim(), "slice");
  KILN_CHECK(dim() > 0, "slice: cannot slice a 0-d tensor");
  KILN_CHECK(step > 0, "slice: step must be positive, got ", step);
  const int64_t n = shape()[w];
  // Python semantics: negative indices count from the end; out-of-range clamps.
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  const int64_t len = (end - start + step - 1) / step;
  Shape new_shape = shape(), new_strides = strides();
  new_shape[w] = len;
  new_strides[w] *= step;
  Tensor out = alias(*this, new_shape, new_strides, offset() + start * strides()[w]);
  autograd::record("slice", out, {*this}, {}, [in = shape(), w, start, step](const Tensor& g, const Saved&) {
    return Grads{slice_backward(g, in, w, start, step)};
  });
  return out;
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  const int64_t w = wrap_dim(d, dim(), "narrow");
  KILN_CHECK(dim() > 0, "narrow: cannot narrow a 0-d tensor");
  const int64_t n = shape()[w];
  const int64_t first = start < 0 ? start + n : start;
  KILN_CHECK(first >= 0 && length >= 0 && first + length <= n, "narrow: start ", start, " with length ", length,
             " is out of bounds for dim ", d, " (size ", n, ") of ", describe(*this));
  return slice(w, first, first + length);
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  const int64_t w = wrap_dim(d, dim(), "select");
  KILN_CHECK(dim() > 0, "select: cannot select from a 0-d tensor");
  const int64_t n = shape()[w];
  KILN_CHECK(index >= -n && index < n, "select: index ", index, " is out of range for dim ", d, " of size ", n,
             " in ", describe(*this));
  if (index < 0) index += n;
  return narrow(w, index, 1).squeeze(w);
}

// ---- expand ------------------------------------------------------------------------------

Tensor Tensor::expand(const Shape& target) const {
  KILN_PROFILE_SCOPE("expand");
  const int64_t n = static_cast<int64_t>(target.size());
  KILN_CHECK(n >= dim(), "expand: target ", shape_str(target), " has fewer dims than ", describe(*this));
  Shape new_shape(target.size()), new_strides(target.size(), 0);
  for (int64_t i = n - 1; i >= 0; --i) {
    const int64_t j = i - (n - dim());  // matching dim of this tensor, if any
    const int64_t want = target[i];
    if (j < 0) {
      KILN_CHECK(want >= 0, "expand: size -1 is not allowed for a new leading dim in ", shape_str(target));
      new_shape[i] = want;
      continue;
    }
    const int64_t have = shape()[j];
    if (want == -1 || want == have) {
      new_shape[i] = have;
      new_strides[i] = strides()[j];
    } else {
      KILN_CHECK(have == 1 && want >= 0, "expand: cannot expand ", describe(*this), " to ", shape_str(target),
                 " (dim ", i, ": ", have, " -> ", want, "; only size-1 dims expand, to a size >= 0)");
      new_shape[i] = want;
    }
  }
  if (new_shape == shape()) return *this;
  Tensor out = alias(*this, new_shape, new_strides, offset());
  autograd::record("expand", out, {*this}, {}, [in = shape()](const Tensor& g, const Saved&) {
    return Grads{sum_to(g, in)};
  });
  return out;
}

// ---- copies -------------------------------------------------------------------------------

namespace {

// CUDA half of copy_as: a gather into a fresh buffer on the same GPU (cuda/copy.h), or
// the conversion kernel (cuda/map.h) when the dtype changes.
Tensor cuda_copy_as(const Tensor& src, DType dtype) {
  Tensor out = empty(src.shape(), {.dtype = dtype, .device = src.device()});
  if (dtype == src.dtype()) {
    // Dims that lie back to back in src merge (out is dense in the same order), so only
    // the truly strided ones count against the kernel's kMaxCopyDims, and each element
    // costs fewer index divisions.
    const ops::MergedLayout<1> merged(src.shape(), {src.strides().data()});
    cuda::strided_copy(out.raw_data(), src.raw_data(), static_cast<int64_t>(element_size(dtype)),
                       merged.shape.data(), merged.strides[0].data(), static_cast<int>(merged.shape.size()),
                       src.device().index);
    return out;
  }
  const Shape out_strides = out.strides(), src_strides = src.strides();
  dispatch_all(src.dtype(), "copy", [&]<class S>() {
    dispatch_all(dtype, "copy", [&]<class D>() {
      cuda::cast<D, S>({static_cast<D*>(out.raw_data()), out_strides.data()}, src.shape(), src.device().index,
                       {static_cast<const S*>(src.raw_data()), src_strides.data()});
    });
  });
  return out;
}

// A fresh contiguous tensor with src's values converted to `dtype` (no autograd).
Tensor copy_as(const Tensor& src, DType dtype) {
  if (src.defined() && src.device().is_cuda()) return cuda_copy_as(src, dtype);
  ops::check_cpu("copy", {src});
  Tensor out = empty(src.shape(), {.dtype = dtype});
  dispatch_all(src.dtype(), "copy", [&]<class S>() {
    dispatch_all(dtype, "copy", [&]<class D>() {
      cpu::unary_loop(static_cast<D*>(out.raw_data()), out.strides().data(),
                      static_cast<const S*>(src.raw_data()), src.strides().data(), src.shape(),
                      [](S v) { return cpu::cast_element<D>(v); });
    });
  });
  return out;
}

}  // namespace

Tensor Tensor::clone() const {
  KILN_PROFILE_SCOPE("clone", *this);
  Tensor out = copy_as(*this, dtype());
  autograd::record("clone", out, {*this}, {}, [](const Tensor& g, const Saved&) { return Grads{g}; });
  return out;
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  KILN_PROFILE_SCOPE("contiguous", *this);
  Tensor out = copy_as(*this, dtype());
  autograd::record("contiguous", out, {*this}, {}, [](const Tensor& g, const Saved&) { return Grads{g}; });
  return out;
}

Tensor Tensor::to(DType target) const {
  if (target == dtype()) return *this;
  KILN_PROFILE_SCOPE("to", *this);
  Tensor out = copy_as(*this, target);
  if (is_floating(target)) {
    autograd::record("to", out, {*this}, {}, [from = dtype()](const Tensor& g, const Saved&) {
      return Grads{g.to(from)};
    });
  }
  return out;
}

// Copies move contiguous bytes, so a strided source is first made contiguous on its own
// device. Only a copy to the CPU waits for the GPU (cuda/copy.h); the others are queued.
Tensor Tensor::to(Device target) const {
  if (target == device()) return *this;
  KILN_CHECK(cuda::is_built(), "to: cannot move ", describe(*this), " from ", device().str(), " to ", target.str(),
             ": kiln was built without CUDA");
  KILN_PROFILE_SCOPE("to", *this);
  const Tensor src = is_contiguous() ? *this : copy_as(*this, dtype());
  Tensor out = empty(shape(), {.dtype = dtype(), .device = target});
  const size_t nbytes = static_cast<size_t>(numel()) * element_size(dtype());
  if (device().is_cpu()) cuda::copy_host_to_device(out.raw_data(), src.raw_data(), nbytes, target.index);
  else if (target.is_cpu()) cuda::copy_device_to_host(out.raw_data(), src.raw_data(), nbytes, device().index);
  else cuda::copy_device_to_device(out.raw_data(), target.index, src.raw_data(), device().index, nbytes);
  if (is_floating(dtype())) {
    autograd::record("to", out, {*this}, {}, [from = device()](const Tensor& g, const Saved&) {
      return Grads{g.to(from)};
    });
  }
  return out;
}

}  // namespace kiln
