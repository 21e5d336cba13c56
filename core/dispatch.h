// Dtype dispatch: turn a runtime DType into a compile-time element type.
//
//   dispatch_floating(x.dtype(), "exp", [&]<class T>() { cpu::exp(x.data<T>(), ...); });
//
// Each helper names the dtypes it accepts; anything else is a kiln::Error naming the op.
// bf16/f16 are storage types (only GPU matrix products and attention compute in bf16):
// the error tells the user to convert to f32.
#pragma once

#include "kiln/core/dtype.h"
#include "kiln/core/error.h"

namespace kiln {

namespace detail {
[[noreturn]] inline void unsupported_dtype(const char* op, DType t, const char* expected) {
  if (t == DType::bf16 || t == DType::f16)
    throw Error(str(op, ": dtype ", dtype_name(t),
                    " is a storage type (kiln computes in it only in matrix products and attention on a GPU); "
                    "convert with .to(kiln::f32) to compute"));
  throw Error(str(op, ": unsupported dtype ", dtype_name(t), " (expected ", expected, ")"));
}
}  // namespace detail

// f32, f64
template <class F>
decltype(auto) dispatch_floating(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::f32: return f.template operator()<float>();
    case DType::f64: return f.template operator()<double>();
    default: detail::unsupported_dtype(op, t, "f32 or f64");
  }
}

// f32, f64, i64
template <class F>
decltype(auto) dispatch_numeric(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::f32: return f.template operator()<float>();
    case DType::f64: return f.template operator()<double>();
    case DType::i64: return f.template operator()<int64_t>();
    default: detail::unsupported_dtype(op, t, "f32, f64 or i64");
  }
}

// every dtype, by storage type (bool is stored as uint8_t); for copies and fills.
template <class F>
decltype(auto) dispatch_all(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::f32: return f.template operator()<float>();
    case DType::f64: return f.template operator()<double>();
    case DType::i64: return f.template operator()<int64_t>();
    case DType::bf16: return f.template operator()<bfloat16>();
    case DType::f16: return f.template operator()<float16>();
    case DType::b8: return f.template operator()<uint8_t>();
  }
  detail::unsupported_dtype(op, t, "a known dtype");
}

}  // namespace kiln
