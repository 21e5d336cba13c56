// The in-place members of Tensor (declared in core/tensor.h). They write through views
// (strided destinations are fine) and bump the storage's version counter, so autograd
// notices if a tensor it saved for backward changes. While grad mode is on they refuse
// tensors that require grad: kiln's autograd does not rewrite history for in-place ops,
// so optimizers update parameters under NoGradGuard.
#include "kiln/autograd/grad_mode.h"
#include "kiln/core/dispatch.h"
#include "kiln/core/factory.h"
#include "kiln/core/profiler.h"
#include "kiln/ops/common.h"
#include "kiln/ops/cpu/cast.h"
#include "kiln/ops/cpu/loops.h"

namespace kiln {

namespace {

void check_inplace(const char* op, const Tensor& t) {
  KILN_CHECK(t.defined(), op, ": tensor is undefined");
  KILN_CHECK(!(GradMode::is_enabled() && t.requires_grad()), op, ": in-place update of ", describe(t),
             ", which requires grad, while grad mode is on; use the out-of-place op, or wrap the update in "
             "NoGradGuard (as optimizers do)");
  ops::check_cpu(op, {t});
}

}  // namespace

Tensor& Tensor::fill_(double value) {
  KILN_PROFILE_SCOPE("fill_", *this);
  check_inplace("fill_", *this);
  dispatch_all(dtype(), "fill_", [&]<class T>() {
    const T v = cpu::cast_element<T>(value);
    const Shape zero(static_cast<size_t>(dim()), 0);  // read the one value everywhere
    cpu::unary_loop(static_cast<T*>(raw_data()), strides().data(), &v, zero.data(), shape(), [](T x) { return x; });
  });
  bump_version();
  return *this;
}

Tensor& Tensor::zero_() { return fill_(0.0); }

Tensor& Tensor::copy_(const Tensor& src) {
  KILN_PROFILE_SCOPE("copy_", src);
  check_inplace("copy_", *this);
  ops::check_cpu("copy_", {src});
  const Shape src_strides = ops::broadcast_strides(src, shape(), "copy_");
  dispatch_all(src.dtype(), "copy_", [&]<class S>() {
    dispatch_all(dtype(), "copy_", [&]<class D>() {
      cpu::unary_loop(static_cast<D*>(raw_data()), strides().data(), static_cast<const S*>(src.raw_data()),
                      src_strides.data(), shape(), [](S v) { return cpu::cast_element<D>(v); });
    });
  });
  bump_version();
  return *this;
}

Tensor& Tensor::add_(const Tensor& other, double alpha) {
  KILN_PROFILE_SCOPE("add_", other);
  check_inplace("add_", *this);
  ops::check_cpu("add_", {other});
  ops::check_same_dtype("add_", *this, other);
  const Shape other_strides = ops::broadcast_strides(other, shape(), "add_");
  dispatch_numeric(dtype(), "add_", [&]<class T>() {
    const T a = static_cast<T>(alpha);
    T* dst = data<T>();
    cpu::binary_loop(dst, strides().data(), static_cast<const T*>(dst), strides().data(), other.data<T>(),
                     other_strides.data(), shape(), [a](T x, T y) { return x + a * y; });
  });
  bump_version();
  return *this;
}

Tensor& Tensor::mul_(double value) {
  KILN_PROFILE_SCOPE("mul_", *this);
  check_inplace("mul_", *this);
  dispatch_numeric(dtype(), "mul_", [&]<class T>() {
    const T v = static_cast<T>(value);
    T* dst = data<T>();
    cpu::unary_loop(dst, strides().data(), static_cast<const T*>(dst), strides().data(), shape(),
                    [v](T x) { return x * v; });
  });
  bump_version();
  return *this;
}

}  // namespace kiln
