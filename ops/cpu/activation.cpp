// GELU, forward and backward, fused and vectorised (see activation.h).
//
// Both forms are written so that nothing overflows and nothing cancels:
//
//  tanh form. y = x/2 (1 + tanh(u)) = x s, s = sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3).
//    With e = exp(-2|u|), which lies in (0, 1] on both sides,
//      s = 1/(1 + e) for u >= 0,  e/(1 + e) for u < 0,   s (1 - s) = e/(1 + e)^2,
//    and y' = s + 2 x s (1 - s) u'. (1 + tanh(u) and 1 - s would cancel for large |x|;
//    exp(+2|u|) would overflow.)
//
//  exact form. y = x Phi(x). With q = Phi(-|x|), the lower tail, Phi(x) = 1 - q for
//    x >= 0 and q for x < 0, and y' = Phi(x) + x phi(x), phi(x) = exp(-x^2/2) / sqrt(2 pi).
//    In f32, q = exp(-x^2/2) t Q(t) / 2 with t = 1/(1 + |x|/2) and Q a degree-10
//    polynomial fitted by tests/golden/fit_gelu_erfc.py (relative error 2.2e-8), so one
//    exp serves q and phi. x^2 is split exactly into xx + xx_err with an FMA and
//    exp(-x^2/2) corrected by (1 - xx_err/2): the rounding of x^2 would otherwise cost
//    up to x^2/2 * 6e-8 relative, 5e-6 at x = 13. In f64, q and phi are std::erfc and
//    std::exp, as before this kernel existed.
//
// Past kSaturation<T> every tail term (exp(-2|u|), exp(-x^2/2)) is 0 in T, so gelu(x) is x
// or -0 and gelu' is 1 or 0. The tail terms are computed from x clamped there, which keeps
// x^3 and x^2 finite for any x (y' would be 0 * inf = NaN at |x| > 1.8e19 in f32);
// x itself multiplies s or Phi, so NaN stays NaN and gelu(-inf) = -inf * 0 = NaN, as in
// PyTorch.
//
// Accuracy (`bench_activation --accuracy`): 2^21 points evenly over [-16, 16] plus +-2^k,
// k = -64..64, against the same math in long double; max error in ulps of the result
// (for gelu', of its larger term: it crosses 0 at x = -0.75, where its terms cancel);
// results below 2^-100 (f32) or 2^-1000 (f64) skipped:
//
//                         |x| <= 4               everywhere
//                      fused   before (f32)   fused   before (f32)    fused f64, everywhere
//   tanh form   gelu    23       20             175     161              636
//               gelu'   23       21             171     155              653
//   exact form  gelu     5.2     17               5.4   168              336
//               gelu'    4.2      6.4             4.2    65                4.2
//
// The tanh form's error is its conditioning, the same before and after: an error of one
// ulp in u (the float constants sqrt(2/pi) and 0.044715 alone carry that) becomes |2u|
// ulps in exp(-2|u|): 21 at x = -4, 170 at x = -9. The exact form computes x^2 exactly,
// so its f32 kernel stays within 5.4 ulp everywhere; in f64, std::erfc's argument
// |x|/sqrt 2 is rounded, which costs x^2 ulps (336 at x = -16).
#include "kiln/ops/cpu/activation.h"

#include <algorithm>
#include <cmath>

#include "kiln/ops/cpu/fast_exp.h"
#include "kiln/ops/cpu/loops.h"

namespace kiln::cpu {

namespace {

constexpr double kInvSqrt2Pi = 0.39894228040143267794;   // 1/sqrt(2 pi): the normal pdf's scale
constexpr double kSqrt2OverPi = 0.79788456080286535588;  // sqrt(2/pi): the tanh form's scale
constexpr double kGeluCubic = 0.044715;                   // ...and its cubic coefficient
constexpr double kInvSqrt2 = 0.70710678118654752440;

// |x| beyond which gelu(x) is x * step(x) exactly in T. f32: fast_exp flushes below
// -87.3, which exp(-2|u|) passes at |x| = 10.0 and exp(-x^2/2) at 13.2. f64: std::exp
// reaches 0 below -745.2, at |x| = 21.5 and 38.6.
template <class T>
constexpr T kSaturation = sizeof(T) == 4 ? T(14) : T(40);

template <class T>
T saturate(T x) {
  return std::clamp(x, -kSaturation<T>, kSaturation<T>);  // NaN passes through
}

// ---- tanh form ------------------------------------------------------------------------

// s = sigmoid(2u) and its derivative's building blocks, for x already saturated.
template <class T>
struct TanhGeluParts {
  T s;        // sigmoid(2u)
  T s_slope;  // s (1 - s) = e/(1 + e)^2
  T du;       // u'(x)
};

template <class T>
inline TanhGeluParts<T> tanh_gelu_parts(T xc) {
  const T x2 = xc * xc;
  const T u = T(kSqrt2OverPi) * xc * (1 + T(kGeluCubic) * x2);
  const T e = fast_exp_nonpositive(-2 * std::abs(u));
  const T inv = 1 / (1 + e);
  return {(u >= 0 ? T(1) : e) * inv, e * inv * inv, T(kSqrt2OverPi) * (1 + 3 * T(kGeluCubic) * x2)};
}

template <class T>
inline T gelu_tanh(T x) {
  return x * tanh_gelu_parts(saturate(x)).s;
}

template <class T>
inline T gelu_tanh_derivative(T x) {
  const T xc = saturate(x);
  const TanhGeluParts<T> p = tanh_gelu_parts(xc);
  return p.s + 2 * xc * p.s_slope * p.du;
}

// ---- exact form ------------------------------------------------------------------------

// Phi(-|x|) and phi(x) for x already saturated.
template <class T>
struct NormalTail {
  T lower;  // Phi(-|x|)
  T pdf;    // phi(x)
};

// Q(t) of the file comment, lowest power first (tests/golden/fit_gelu_erfc.py).
constexpr float kErfcPoly[11] = {3.989627142e-01f, 3.983121477e-01f,  3.073857851e-01f, 4.140949070e-02f,
                                 1.238074494e-01f, -8.559803576e-01f, 7.706315033e-01f, 1.114029397e-01f,
                                 -5.779001339e-01f, 3.569693940e-01f, -7.500095455e-02f};

inline NormalTail<float> normal_tail(float xc) {
  const float xx = xc * xc;
  const float xx_err = std::fma(xc, xc, -xx);  // xc^2 = xx + xx_err exactly
  const float gauss = fast_exp_nonpositive(-0.5f * xx) * (1 - 0.5f * xx_err);
  const float t = 1 / (1 + 0.5f * std::abs(xc));
  float q = kErfcPoly[10];
#pragma GCC unroll 16  // unrolled before vectorisation: the caller's loop must be straight-line
  for (int k = 9; k >= 0; --k) q = std::fma(q, t, kErfcPoly[k]);
  return {0.5f * t * q * gauss, gauss * float(kInvSqrt2Pi)};
}

inline NormalTail<double> normal_tail(double xc) {
  return {0.5 * std::erfc(std::abs(xc) * kInvSqrt2), std::exp(-0.5 * xc * xc) * kInvSqrt2Pi};
}

template <class T>
inline T normal_cdf(T x, const NormalTail<T>& tail) {
  return x >= 0 ? 1 - tail.lower : tail.lower;
}

template <class T>
inline T gelu_exact(T x) {
  return x * normal_cdf(x, normal_tail(saturate(x)));
}

template <class T>
inline T gelu_exact_derivative(T x) {
  const T xc = saturate(x);
  const NormalTail<T> tail = normal_tail(xc);
  return normal_cdf(xc, tail) + xc * tail.pdf;
}

// ---- loops ------------------------------------------------------------------------------

// body(begin, end) over blocks of [0, n), in parallel above the threshold.
template <class Body>
void for_each_block(int64_t n, Body body) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n > kParallelThreshold)
  for (int64_t b = 0; b < blocks; ++b) body(b * kBlock, std::min(n, (b + 1) * kBlock));
}

template <class T, class F>
void map_contiguous(const T* x, T* y, int64_t n, F f) {
  for_each_block(n, [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) y[i] = f(x[i]);
  });
}

template <class T, class F>
void scale_by_derivative(const T* x, const T* g, T* dx, int64_t n, F derivative) {
  for_each_block(n, [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) dx[i] = g[i] * derivative(x[i]);
  });
}

}  // namespace

template <class T>
void gelu_forward(const T* x, T* y, int64_t n, GeluApproximation approximation) {
  if (approximation == GeluApproximation::tanh) map_contiguous(x, y, n, [](T v) { return gelu_tanh(v); });
  else map_contiguous(x, y, n, [](T v) { return gelu_exact(v); });
}

template <class T>
void gelu_backward(const T* x, const T* g, T* dx, int64_t n, GeluApproximation approximation) {
  if (approximation == GeluApproximation::tanh)
    scale_by_derivative(x, g, dx, n, [](T v) { return gelu_tanh_derivative(v); });
  else scale_by_derivative(x, g, dx, n, [](T v) { return gelu_exact_derivative(v); });
}

template void gelu_forward<float>(const float*, float*, int64_t, GeluApproximation);
template void gelu_forward<double>(const double*, double*, int64_t, GeluApproximation);
template void gelu_backward<float>(const float*, const float*, float*, int64_t, GeluApproximation);
template void gelu_backward<double>(const double*, const double*, double*, int64_t, GeluApproximation);

}  // namespace kiln::cpu
