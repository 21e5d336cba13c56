#include "kiln/ops/common.h"

namespace kiln::ops {

void check_cpu(const char* op, std::initializer_list<Tensor> tensors) {
  for (const Tensor& t : tensors) {
    KILN_CHECK(t.defined(), op, ": got an undefined tensor");
    KILN_CHECK(t.device().is_cpu(), op, ": tensor ", describe(t), " is on ", t.device().str(),
               ", but this op has no ", t.device().str(), " kernel in this build");
  }
}

void check_same_device(const char* op, std::initializer_list<Tensor> tensors) {
  const Tensor* first = nullptr;
  for (const Tensor& t : tensors) {
    KILN_CHECK(t.defined(), op, ": got an undefined tensor");
    if (!first) first = &t;
    KILN_CHECK(t.device() == first->device(), op, ": tensors are on different devices (",
               describe(*first), " on ", first->device().str(), ", ", describe(t), " on ",
               t.device().str(), "); move them with .to(device)");
  }
}

void check_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  KILN_CHECK(a.dtype() == b.dtype(), op, ": dtypes differ (", describe(a), " and ", describe(b),
             "); convert one with .to(dtype)");
}

void check_floating(const char* op, const Tensor& t) {
  KILN_CHECK(t.dtype() == f32 || t.dtype() == f64, op, ": expected a floating tensor (f32 or f64), got ",
             describe(t));
}

Shape broadcast_strides(const Tensor& t, const Shape& shape, const char* op) {
  const int64_t n = static_cast<int64_t>(shape.size()), k = t.dim();
  KILN_CHECK(k <= n, op, ": cannot broadcast ", shape_str(t.shape()), " to ", shape_str(shape));
  Shape strides(shape.size(), 0);
  for (int64_t i = 0; i < k; ++i) {
    const int64_t d = n - k + i;
    const int64_t size = t.shape()[i];
    KILN_CHECK(size == shape[d] || size == 1, op, ": cannot broadcast ", shape_str(t.shape()), " to ",
               shape_str(shape));
    strides[d] = size == 1 ? 0 : t.strides()[i];
  }
  return strides;
}

}  // namespace kiln::ops
