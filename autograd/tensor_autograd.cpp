// The autograd members of Tensor (declared in core/tensor.h).
#include "kiln/autograd/engine.h"
#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"
#include "kiln/core/tensor.h"
#include "kiln/ops/elementwise.h"

namespace kiln {

Tensor& Tensor::requires_grad_(bool on) {
  KILN_CHECK(is_leaf() || on, "requires_grad_: cannot turn off requires_grad on a non-leaf ",
             describe(*this), "; use detach()");
  KILN_CHECK(!on || is_floating(dtype()), "requires_grad_: only floating tensors can require grad, got ",
             describe(*this));
  impl().requires_grad = on;
  return *this;
}

void Tensor::set_grad(const Tensor& g) {
  KILN_CHECK(!g.defined() || g.shape() == shape(), "set_grad: gradient shape ", shape_str(g.shape()),
             " does not match tensor shape ", shape_str(shape()));
  impl().grad = g.defined() ? g.impl_ptr() : nullptr;
}

Tensor Tensor::detach() const {
  return make_tensor(storage(), shape(), strides(), offset(), dtype());
}

void Tensor::backward(const Tensor& grad, bool retain_graph, bool create_graph) const {
  GradOptions opts{.retain_graph = retain_graph, .create_graph = create_graph};
  if (grad.defined()) opts.grad_outputs = {grad};
  kiln::backward({*this}, opts);
}

void Tensor::register_hook(TensorHook hook) const {
  KILN_CHECK(requires_grad(), "register_hook: tensor ", describe(*this), " does not require grad");
  // A leaf's hooks run at its accumulator, a non-leaf's at its grad_fn: both see the
  // full gradient of this tensor before it is used.
  autograd::gradient_edge(*this)->pre_hooks.push_back(std::move(hook));
}

void Tensor::retain_grad() const {
  KILN_CHECK(requires_grad(), "retain_grad: tensor ", describe(*this), " does not require grad");
  if (is_leaf() || impl().retains_grad) return;  // leaves keep .grad() anyway
  impl().retains_grad = true;
  std::weak_ptr<TensorImpl> weak = impl_;
  grad_fn()->retain_grad_hooks.push_back([weak](const Tensor& g) {
    if (auto self = weak.lock()) {
      Tensor sum = self->grad ? Tensor(self->grad) + g.detach() : g.detach().clone();
      self->grad = sum.impl_ptr();
    }
    return Tensor();
  });
}

}  // namespace kiln
