// Elementwise maps: run a functor over every element of one or two tensors (with NumPy
// broadcasting), on the tensors' device. The ops in elementwise.cpp and activation.cpp
// are written with these, so each op's forward is one line:
//
//   Tensor out = map_unary("exp", x, fn::Exp{});
//
// The functor's math lives in ops/functors.h, compiled for both backends: on the CPU
// the loops of ops/cpu/loops.h call it, on a GPU the kernels of cuda/map.cuh do. A
// functor runs on CUDA tensors only if ops/functors.h lists it for the GPU (else the
// build fails to link); any callable works on the CPU.
#pragma once

#include "kiln/core/dispatch.h"
#include "kiln/core/factory.h"
#include "kiln/cuda/map.h"
#include "kiln/ops/common.h"
#include "kiln/ops/cpu/loops.h"
#include "kiln/ops/functors.h"

namespace kiln::ops {

// A tensor as the CUDA kernels take an operand: its first element and `strides`
// (the tensor's own, or broadcast ones). `strides` must outlive the call.
template <class T>
cuda::Strided<const T> gpu_operand(const Tensor& t, const Shape& strides) {
  return {static_cast<const T*>(t.raw_data()), strides.data()};
}

[[noreturn]] inline void throw_no_gpu_functor(const char* op, const Tensor& t) {
  // describe(t) ends with the device ("f32[4]@cuda:0").
  throw Error(detail::str(op, ": ", describe(t),
                          " is on a GPU, but this map has no GPU kernel for its dtype (see ops/functors.h)"));
}

// out = f(x), same dtype as x. Floating dtypes only unless `numeric` (then i64 too).
template <class F>
Tensor map_unary(const char* op, const Tensor& x, F f, bool numeric = false) {
  check_same_device(op, {x});
  Tensor out = empty(x.shape(), {.dtype = x.dtype(), .device = x.device()});
  auto run = [&]<class T>() {
    const Shape out_strides = out.strides(), x_strides = x.strides();
    if (x.device().is_cuda()) {
      if constexpr (!fn::kRunsOnGpu<F, T>) throw_no_gpu_functor(op, x);
      else cuda::map<F, T, T>(f, {out.data<T>(), out_strides.data()}, x.shape(), x.device().index,
                         gpu_operand<T>(x, x_strides));
    } else {
      cpu::unary_loop(out.data<T>(), out_strides.data(), x.data<T>(), x_strides.data(), x.shape(),
                      [&](T v) { return static_cast<T>(f(v)); });
    }
  };
  if (numeric) dispatch_numeric(x.dtype(), op, run);
  else dispatch_floating(x.dtype(), op, run);
  return out;
}

// out = f(a, b) with broadcasting; a and b must share dtype and device. Result dtype =
// that dtype, or `Out` when given (uint8_t, i.e. bool, for comparisons). Accepts f32/f64,
// plus i64 when `numeric`.
template <class Out = void, class F>
Tensor map_binary(const char* op, const Tensor& a, const Tensor& b, F f, bool numeric = true) {
  check_same_device(op, {a, b});
  check_same_dtype(op, a, b);
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), op);
  const DType out_dtype = std::is_void_v<Out> ? a.dtype() : dtype_of<std::conditional_t<std::is_void_v<Out>, float, Out>>();
  Tensor out = empty(shape, {.dtype = out_dtype, .device = a.device()});
  const Shape sa = broadcast_strides(a, shape, op), sb = broadcast_strides(b, shape, op);
  auto run = [&]<class T>() {
    using R = std::conditional_t<std::is_void_v<Out>, T, Out>;
    const Shape out_strides = out.strides();
    if (a.device().is_cuda()) {
      if constexpr (!fn::kRunsOnGpu<F, T>) throw_no_gpu_functor(op, a);
      else cuda::map<F, R, T, T>(f, {out.data<R>(), out_strides.data()}, shape, a.device().index, gpu_operand<T>(a, sa),
                            gpu_operand<T>(b, sb));
    } else {
      cpu::binary_loop(out.data<R>(), out_strides.data(), a.data<T>(), sa.data(), b.data<T>(), sb.data(), shape,
                       [&](T x, T y) { return static_cast<R>(f(x, y)); });
    }
  };
  if (numeric) dispatch_numeric(a.dtype(), op, run);
  else dispatch_floating(a.dtype(), op, run);
  return out;
}

}  // namespace kiln::ops
