// The in-place members of Tensor (declared in core/tensor.h). They write through views
// (strided destinations are fine) and bump the storage's version counter, so autograd
// notices if a tensor it saved for backward changes. While grad mode is on they refuse
// tensors that require grad: kiln's autograd does not rewrite history for in-place ops,
// so optimizers update parameters under NoGradGuard. On a GPU they run as the
// elementwise kernels of cuda/map.h (copy_ converts dtypes there too).
#include <utility>

#include "kiln/autograd/grad_mode.h"
#include "kiln/core/dispatch.h"
#include "kiln/core/factory.h"
#include "kiln/core/profiler.h"
#include "kiln/cuda/map.h"
#include "kiln/ops/common.h"
#include "kiln/ops/functors.h"
#include "kiln/ops/map.h"
#include "kiln/ops/cpu/cast.h"
#include "kiln/ops/cpu/loops.h"

namespace kiln {

namespace {

void check_inplace(const char* op, const Tensor& t) {
  KILN_CHECK(t.defined(), op, ": tensor is undefined");
  KILN_CHECK(!(GradMode::is_enabled() && t.requires_grad()), op, ": in-place update of ", describe(t),
             ", which requires grad, while grad mode is on; use the out-of-place op, or wrap the update in "
             "NoGradGuard (as optimizers do)");
}

// The written tensor must give every element its own memory: through an expand (stride 0)
// one element would be updated once per view position, in order on the CPU and racing on
// a GPU. (fill_ writes one value everywhere, so it may.)
void check_no_internal_overlap(const char* op, const Tensor& t) {
  for (int64_t d = 0; d < t.dim(); ++d)
    KILN_CHECK(t.strides()[d] != 0 || t.shape()[d] <= 1, op, ": the written-to tensor ", describe(t),
               " has several elements in one memory location (stride 0 in dim ", d,
               ", an expand); write into a contiguous tensor (.contiguous() or .clone())");
}

// The elements [first, last] of its storage that t can touch (strides are >= 0 in kiln).
std::pair<int64_t, int64_t> element_span(const Tensor& t) {
  int64_t last = t.offset();
  for (int64_t d = 0; d < t.dim(); ++d) last += (t.shape()[d] - 1) * t.strides()[d];
  return {t.offset(), last};
}

// The source may be the destination itself (x.add_(x): each element reads only itself)
// but must not partly overlap it (x.add_(x.t()) reads elements already written, in an
// order the CPU and the GPU do not share).
void check_no_partial_overlap(const char* op, const Tensor& dst, const Tensor& src) {
  if (dst.numel() == 0 || src.numel() == 0 || dst.storage() != src.storage()) return;
  if (src.offset() == dst.offset() && src.shape() == dst.shape() && src.strides() == dst.strides()) return;
  const auto [dst_first, dst_last] = element_span(dst);
  const auto [src_first, src_last] = element_span(src);
  KILN_CHECK(src_last < dst_first || dst_last < src_first, op, ": the source ", describe(src),
             " shares memory with the written-to tensor ", describe(dst),
             " without being the same view of it; copy the source first (.clone())");
}

}  // namespace

Tensor& Tensor::fill_(double value) {
  KILN_PROFILE_SCOPE("fill_", *this);
  check_inplace("fill_", *this);
  const Shape dst_strides = strides();
  dispatch_all(dtype(), "fill_", [&]<class T>() {
    const T v = cpu::cast_element<T>(value);
    if (device().is_cuda()) {
      cuda::map<ops::fn::Fill<T>, T>({v}, {static_cast<T*>(raw_data()), dst_strides.data()}, shape(), device().index);
      return;
    }
    const Shape zero(static_cast<size_t>(dim()), 0);  // read the one value everywhere
    cpu::unary_loop(static_cast<T*>(raw_data()), dst_strides.data(), &v, zero.data(), shape(), [](T x) { return x; });
  });
  bump_version();
  return *this;
}

Tensor& Tensor::zero_() { return fill_(0.0); }

Tensor& Tensor::copy_(const Tensor& src) {
  KILN_PROFILE_SCOPE("copy_", src);
  check_inplace("copy_", *this);
  KILN_CHECK(src.defined(), "copy_: the source is undefined");
  check_no_internal_overlap("copy_", *this);
  check_no_partial_overlap("copy_", *this, src);
  // Across devices, bring the values over first (one transfer), then copy on this device.
  Tensor from = src;
  if (src.device() != device()) {
    NoGradGuard no_grad;
    from = src.to(device());
  }
  const Shape src_strides = ops::broadcast_strides(from, shape(), "copy_"), dst_strides = strides();
  dispatch_all(from.dtype(), "copy_", [&]<class S>() {
    dispatch_all(dtype(), "copy_", [&]<class D>() {
      if (device().is_cuda()) {
        cuda::cast<D, S>({static_cast<D*>(raw_data()), dst_strides.data()}, shape(), device().index,
                         {static_cast<const S*>(from.raw_data()), src_strides.data()});
      } else {
        cpu::unary_loop(static_cast<D*>(raw_data()), dst_strides.data(), static_cast<const S*>(from.raw_data()),
                        src_strides.data(), shape(), [](S v) { return cpu::cast_element<D>(v); });
      }
    });
  });
  bump_version();
  return *this;
}

Tensor& Tensor::add_(const Tensor& other, double alpha) {
  KILN_PROFILE_SCOPE("add_", other);
  check_inplace("add_", *this);
  ops::check_same_device("add_", {*this, other});
  ops::check_same_dtype("add_", *this, other);
  check_no_internal_overlap("add_", *this);
  check_no_partial_overlap("add_", *this, other);
  const Shape other_strides = ops::broadcast_strides(other, shape(), "add_"), dst_strides = strides();
  dispatch_numeric(dtype(), "add_", [&]<class T>() {
    T* dst = data<T>();
    if (device().is_cuda()) {
      cuda::map<ops::fn::AddScaled, T, T, T>({alpha}, {dst, dst_strides.data()}, shape(), device().index,
                                             {dst, dst_strides.data()}, ops::gpu_operand<T>(other, other_strides));
      return;
    }
    const T a = static_cast<T>(alpha);
    cpu::binary_loop(dst, dst_strides.data(), static_cast<const T*>(dst), dst_strides.data(), other.data<T>(),
                     other_strides.data(), shape(), [a](T x, T y) { return x + a * y; });
  });
  bump_version();
  return *this;
}

Tensor& Tensor::mul_(double value) {
  KILN_PROFILE_SCOPE("mul_", *this);
  check_inplace("mul_", *this);
  check_no_internal_overlap("mul_", *this);
  const Shape dst_strides = strides();
  dispatch_numeric(dtype(), "mul_", [&]<class T>() {
    T* dst = data<T>();
    if (device().is_cuda()) {
      cuda::map<ops::fn::Scale, T, T>({value}, {dst, dst_strides.data()}, shape(), device().index,
                                      {dst, dst_strides.data()});
      return;
    }
    const T v = static_cast<T>(value);
    cpu::unary_loop(dst, dst_strides.data(), static_cast<const T*>(dst), dst_strides.data(), shape(),
                    [v](T x) { return x * v; });
  });
  bump_version();
  return *this;
}

}  // namespace kiln
