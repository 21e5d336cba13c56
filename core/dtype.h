// Element types. f32 is the default; f64 is for gradcheck; i64 holds indices and
// targets; b8 holds masks; bf16/f16 are storage types on CPU (convert to f32 to compute).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

namespace kiln {

enum class DType : uint8_t { f32, f64, i64, bf16, f16, b8 };

inline constexpr DType f32 = DType::f32;
inline constexpr DType f64 = DType::f64;
inline constexpr DType i64 = DType::i64;
inline constexpr DType bf16 = DType::bf16;
inline constexpr DType f16 = DType::f16;
inline constexpr DType b8 = DType::b8;

size_t element_size(DType t);
const char* dtype_name(DType t);
inline bool is_floating(DType t) { return t == f32 || t == f64 || t == bf16 || t == f16; }

// 16-bit float storage types. Conversions round to nearest even, like PyTorch.
struct bfloat16 {
  uint16_t bits = 0;
};
struct float16 {
  uint16_t bits = 0;
};

inline bfloat16 float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  bfloat16 r;
  if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN: keep it quiet NaN
    r.bits = static_cast<uint16_t>((u >> 16) | 0x40);
    return r;
  }
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
  r.bits = static_cast<uint16_t>(u >> 16);
  return r;
}
inline float bf16_to_float(bfloat16 b) {
  uint32_t u = static_cast<uint32_t>(b.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
float16 float_to_f16(float f);
float f16_to_float(float16 h);

// dtype_of<T>() maps a C++ element type to its DType.
template <class T>
constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return f32; }
template <> constexpr DType dtype_of<double>() { return f64; }
template <> constexpr DType dtype_of<int64_t>() { return i64; }
template <> constexpr DType dtype_of<bfloat16>() { return bf16; }
template <> constexpr DType dtype_of<float16>() { return f16; }
template <> constexpr DType dtype_of<bool>() { return b8; }
template <> constexpr DType dtype_of<uint8_t>() { return b8; }  // how bool is stored

}  // namespace kiln
