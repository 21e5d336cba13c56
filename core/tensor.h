// Tensor: a cheap, copyable handle to a TensorImpl (a view into a Storage plus
// autograd metadata). Copying a Tensor shares data, exactly like torch::Tensor.
//
// Members are grouped by where they are implemented:
//   metadata & element access ........ core/tensor.cpp
//   views, contiguous, clone, to() .... ops/view.cpp    (they are differentiable ops)
//   in-place fills and updates ........ ops/inplace.cpp
//   autograd ........................... autograd/tensor_autograd.cpp
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "kiln/core/device.h"
#include "kiln/core/dtype.h"
#include "kiln/core/error.h"
#include "kiln/core/shape.h"
#include "kiln/core/storage.h"

namespace kiln {

namespace autograd {
class Node;
}

class Tensor;
using TensorHook = std::function<Tensor(const Tensor&)>;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;       // in elements
  int64_t offset = 0;  // in elements, from storage->data()
  DType dtype = f32;

  // autograd: a leaf has no grad_fn; a non-leaf's gradient comes from grad_fn.
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<autograd::Node> grad_fn;
  // Leaf only, created lazily. Tensor hooks live on this node for a leaf and on
  // grad_fn for a non-leaf (see Tensor::register_hook).
  std::shared_ptr<autograd::Node> grad_accumulator;
  bool retains_grad = false;
};

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor (like a null torch::Tensor)
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- metadata ---------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Shape& strides() const { return impl().strides; }
  int64_t offset() const { return impl().offset; }
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const;
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  bool is_contiguous() const;
  bool is_same(const Tensor& o) const { return impl_ == o.impl_; }
  TensorImpl* unsafe_impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  const std::shared_ptr<Storage>& storage() const { return impl().storage; }

  // ---- element access ---------------------------------------------------------
  // Pointer to the first element (storage data + offset). data<T>() checks T matches dtype.
  void* raw_data() const;
  template <class T>
  T* data() const {
    KILN_CHECK(dtype_of<T>() == dtype(), "data<T>: tensor has dtype ", dtype_name(dtype()),
               ", requested ", dtype_name(dtype_of<T>()));
    return static_cast<T*>(raw_data());
  }
  // The single value of a one-element tensor, converted to T. On a GPU it copies the
  // value to the host, so it waits for the work queued before it.
  template <class T = double>
  T item() const;
  // All elements in row-major order, converted to T (works for any layout, dtype and
  // device; from a GPU it is a copy to the host, which waits).
  template <class T>
  std::vector<T> to_vector() const;

  // ---- views (share storage) and copies; differentiable ---------------------------
  Tensor view(const Shape& shape) const;     // needs compatible strides; -1 infers one size
  Tensor reshape(const Shape& shape) const;  // a view when possible, else a copy
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const;  // transpose of a 2-D tensor
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;
  Tensor expand(const Shape& shape) const;  // -1 keeps a size; new dims go in front
  Tensor squeeze() const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor contiguous() const;  // itself when already contiguous
  Tensor clone() const;       // always a fresh contiguous copy
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;

  // ---- in-place (bump the version counter; refused on tensors needing grad) ------
  Tensor& fill_(double value);
  Tensor& zero_();
  Tensor& copy_(const Tensor& src);  // src broadcasts to this shape
  Tensor& add_(const Tensor& other, double alpha = 1.0);
  Tensor& mul_(double value);
  // Makes this tensor (and every handle to it) refer to other's data, shape and dtype,
  // keeping its autograd identity. nn::Module::to() uses it to move parameters.
  void set_data(const Tensor& other) const;

  // ---- autograd -------------------------------------------------------------------
  bool requires_grad() const { return impl().requires_grad; }
  Tensor& requires_grad_(bool on = true);
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  const std::shared_ptr<autograd::Node>& grad_fn() const { return impl().grad_fn; }
  Tensor grad() const { return Tensor(impl().grad); }
  void set_grad(const Tensor& g);
  void zero_grad() { impl().grad.reset(); }  // "set to none", as PyTorch does by default
  Tensor detach() const;                     // same data, no history
  // backward() of a scalar uses grad 1; a non-scalar needs an explicit `grad`.
  void backward(const Tensor& grad = {}, bool retain_graph = false, bool create_graph = false) const;
  // hook(grad) runs when this tensor's gradient is computed; a defined return replaces it.
  void register_hook(TensorHook hook) const;
  void retain_grad() const;  // keep .grad() on a non-leaf after backward
  uint64_t version() const { return impl().storage->version(); }
  void bump_version() const { impl().storage->bump_version(); }

  std::string str() const;  // PyTorch-like repr, summarised for large tensors

 private:
  TensorImpl& impl() const {
    KILN_CHECK(impl_ != nullptr, "tensor is undefined (default-constructed)");
    return *impl_;
  }
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// Builds a tensor over `storage` with the given geometry (no copy, no checks). Used by views.
Tensor make_tensor(std::shared_ptr<Storage> storage, Shape shape, Shape strides, int64_t offset,
                   DType dtype);

// "f32[2, 3]" for error messages.
std::string describe(const Tensor& t);

}  // namespace kiln
