// Elementwise maps: run a small lambda over every element of one or two tensors
// (with NumPy broadcasting) on the CPU. The ops in elementwise.cpp and activation.cpp
// are written with these, so each op's forward is one line of math:
//
//   Tensor out = map_unary("exp", x, [](auto v) { return std::exp(v); });
//
// The lambda is generic (`auto`) and is instantiated for each dtype the map accepts.
#pragma once

#include "kiln/core/dispatch.h"
#include "kiln/core/factory.h"
#include "kiln/ops/common.h"
#include "kiln/ops/cpu/loops.h"

namespace kiln::ops {

// out = f(x), same dtype as x. Floating dtypes only unless `numeric` (then i64 too).
template <class F>
Tensor map_unary(const char* op, const Tensor& x, F f, bool numeric = false) {
  check_cpu(op, {x});
  Tensor out = empty(x.shape(), {.dtype = x.dtype()});
  auto run = [&]<class T>() {
    const Shape out_strides = out.strides();
    cpu::unary_loop(out.data<T>(), out_strides.data(), x.data<T>(), x.strides().data(), x.shape(),
                    [&](T v) { return static_cast<T>(f(v)); });
  };
  if (numeric) dispatch_numeric(x.dtype(), op, run);
  else dispatch_floating(x.dtype(), op, run);
  return out;
}

// out = f(a, b) with broadcasting; a and b must share dtype. Result dtype = that dtype,
// or `Out` when given (bool for comparisons). Accepts f32/f64, plus i64 when `numeric`.
template <class Out = void, class F>
Tensor map_binary(const char* op, const Tensor& a, const Tensor& b, F f, bool numeric = true) {
  check_cpu(op, {a, b});
  check_same_dtype(op, a, b);
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), op);
  const DType out_dtype = std::is_void_v<Out> ? a.dtype() : dtype_of<std::conditional_t<std::is_void_v<Out>, float, Out>>();
  Tensor out = empty(shape, {.dtype = out_dtype});
  const Shape sa = broadcast_strides(a, shape, op), sb = broadcast_strides(b, shape, op);
  auto run = [&]<class T>() {
    using R = std::conditional_t<std::is_void_v<Out>, T, Out>;
    cpu::binary_loop(out.data<R>(), out.strides().data(), a.data<T>(), sa.data(), b.data<T>(), sb.data(),
                     shape, [&](T x, T y) { return static_cast<R>(f(x, y)); });
  };
  if (numeric) dispatch_numeric(a.dtype(), op, run);
  else dispatch_floating(a.dtype(), op, run);
  return out;
}

}  // namespace kiln::ops
