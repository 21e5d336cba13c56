// Element conversion between any two storage types (16-bit floats go through f32).
#pragma once

#include <type_traits>

#include "kiln/core/dtype.h"

namespace kiln::cpu {

template <class T>
float to_float_value(T v) {
  if constexpr (std::is_same_v<T, bfloat16>) return bf16_to_float(v);
  else if constexpr (std::is_same_v<T, float16>) return f16_to_float(v);
  else return static_cast<float>(v);
}

template <class D, class S>
D cast_element(S v) {
  if constexpr (std::is_same_v<D, S>) {
    return v;
  } else if constexpr (std::is_same_v<D, bfloat16>) {
    return float_to_bf16(to_float_value(v));
  } else if constexpr (std::is_same_v<D, float16>) {
    return float_to_f16(to_float_value(v));
  } else if constexpr (std::is_same_v<D, uint8_t>) {  // bool: any non-zero is true (0.5 too)
    if constexpr (std::is_same_v<S, bfloat16> || std::is_same_v<S, float16>) return to_float_value(v) != 0.0f;
    else return static_cast<uint8_t>(v != S(0));
  } else if constexpr (std::is_same_v<S, bfloat16> || std::is_same_v<S, float16>) {
    return static_cast<D>(to_float_value(v));
  } else {
    return static_cast<D>(v);
  }
}

}  // namespace kiln::cpu
