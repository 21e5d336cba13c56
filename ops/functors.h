// The per-element math of the elementwise ops, as small named functors that both
// backends compile: the CPU loops (ops/cpu/loops.h) call them from ops/map.h, and the
// CUDA kernels (cuda/map.cu) instantiate the same structs for the GPU. Each op's
// formula is therefore written once, here, and a CPU/GPU difference can only come from
// the math library, not from two hand-written copies.
//
// A functor is a struct with a templated, KILN_HOST_DEVICE operator(); ops that take a
// parameter (clamp's bounds, pow's exponent) hold it as a member. Only functors named in
// the lists at the bottom are compiled for the GPU (kRunsOnGpu); ops::map_unary with any
// other callable works on the CPU and throws kiln::Error for a CUDA tensor.
#pragma once

#include <cmath>
#include <cstdint>

#include "kiln/core/host_device.h"

namespace kiln::ops::fn {

// ---- arithmetic --------------------------------------------------------------------------

struct Add {
  template <class T> KILN_HOST_DEVICE T operator()(T x, T y) const { return x + y; }
};
struct Sub {
  template <class T> KILN_HOST_DEVICE T operator()(T x, T y) const { return x - y; }
};
struct Mul {
  template <class T> KILN_HOST_DEVICE T operator()(T x, T y) const { return x * y; }
};
struct Div {
  template <class T> KILN_HOST_DEVICE T operator()(T x, T y) const { return x / y; }
};
// x + alpha * y: Tensor::add_ (gradient accumulation, optimizers' helpers).
struct AddScaled {
  double alpha;
  template <class T> KILN_HOST_DEVICE T operator()(T x, T y) const { return x + static_cast<T>(alpha) * y; }
};
// x * value: Tensor::mul_.
struct Scale {
  double value;
  template <class T> KILN_HOST_DEVICE T operator()(T x) const { return x * static_cast<T>(value); }
};
// Every element = value (no input): Tensor::fill_ and the constant factories.
template <class T>
struct Fill {
  T value;
  KILN_HOST_DEVICE T operator()() const { return value; }
};

struct Pow {
  template <class T> KILN_HOST_DEVICE T operator()(T x, T y) const { return std::pow(x, y); }
};
struct PowScalar {
  double exponent;
  template <class T> KILN_HOST_DEVICE T operator()(T x) const { return std::pow(x, static_cast<T>(exponent)); }
};
// Where d(a^b)/db is taken as 0: a == 0 and b >= 0 (0 * log 0 would be NaN). Bool out.
struct ZeroBase {
  template <class T> KILN_HOST_DEVICE uint8_t operator()(T x, T y) const { return x == 0 && y >= 0; }
};

// NaN wins, as in PyTorch (std::max would drop a NaN in its second argument).
struct Maximum {
  template <class T> KILN_HOST_DEVICE T operator()(T x, T y) const { return x > y || x != x ? x : y; }
};
struct Minimum {
  template <class T> KILN_HOST_DEVICE T operator()(T x, T y) const { return x < y || x != x ? x : y; }
};
// The share of the gradient maximum/minimum route to their first operand: 1 where it
// was picked, 1/2 on a tie, else 0.
struct PickShare {
  bool picks_larger;
  template <class T> KILN_HOST_DEVICE T operator()(T x, T y) const {
    return (picks_larger ? x > y : x < y) ? T(1) : x == y ? T(0.5) : T(0);
  }
};

// ---- unary math ------------------------------------------------------------------------------

struct Neg {
  template <class T> KILN_HOST_DEVICE T operator()(T v) const { return -v; }
};
struct Abs {
  // A branch rather than std::abs so the one formula serves i64 on the GPU too; -0.0
  // becomes +0.0 as with fabs (the comparison is false, then 0.0 - ... is not taken).
  template <class T> KILN_HOST_DEVICE T operator()(T v) const { return v < T(0) ? -v : v == T(0) ? T(0) : v; }
};
// -1, 0 or 1 in the input's dtype.
struct Sign {
  template <class T> KILN_HOST_DEVICE T operator()(T v) const { return static_cast<T>((v > T(0)) - (v < T(0))); }
};
struct Exp {
  template <class T> KILN_HOST_DEVICE T operator()(T v) const { return std::exp(v); }
};
struct Log {
  template <class T> KILN_HOST_DEVICE T operator()(T v) const { return std::log(v); }
};
// log(1 + x), accurate for tiny x where 1 + x would round to 1.
struct Log1p {
  template <class T> KILN_HOST_DEVICE T operator()(T v) const { return std::log1p(v); }
};
struct Sqrt {
  template <class T> KILN_HOST_DEVICE T operator()(T v) const { return std::sqrt(v); }
};
struct Rsqrt {
  template <class T> KILN_HOST_DEVICE T operator()(T v) const { return T(1) / std::sqrt(v); }
};
struct Sin {
  template <class T> KILN_HOST_DEVICE T operator()(T v) const { return std::sin(v); }
};
struct Cos {
  template <class T> KILN_HOST_DEVICE T operator()(T v) const { return std::cos(v); }
};
// Comparisons fail for NaN, so NaN passes through clamp.
struct Clamp {
  double min, max;
  template <class T> KILN_HOST_DEVICE T operator()(T v) const {
    const T lo = static_cast<T>(min), hi = static_cast<T>(max);
    const T above = v < lo ? lo : v;
    return above > hi ? hi : above;
  }
};
// 1 where min <= v <= max (bounds included, as PyTorch's clamp gradient), else 0.
struct InRange {
  double min, max;
  template <class T> KILN_HOST_DEVICE T operator()(T v) const { return T(v >= min && v <= max); }
};

// ---- activations ----------------------------------------------------------------------------

struct Relu {
  template <class T> KILN_HOST_DEVICE T operator()(T v) const { return v < T(0) ? T(0) : v; }  // NaN stays NaN
};
// 1 where v > 0, else 0: relu's gradient mask (0 at v = 0, as in PyTorch).
struct Positive {
  template <class T> KILN_HOST_DEVICE T operator()(T v) const { return T(v > T(0)); }
};
// 1 / (1 + e^-x) is stable as written: for x << 0, e^-x overflows to inf and the result
// is 0, the right limit. Branch-free, which matters on the CPU (a sign test per element
// costs 4x on random data).
struct Sigmoid {
  template <class T> KILN_HOST_DEVICE T operator()(T v) const { return T(1) / (T(1) + std::exp(-v)); }
};
struct Tanh {
  template <class T> KILN_HOST_DEVICE T operator()(T v) const { return std::tanh(v); }
};
// x sigmoid(x); for very negative x, e^-x = inf and x / inf = -0, the right limit.
struct Silu {
  template <class T> KILN_HOST_DEVICE T operator()(T v) const { return v / (T(1) + std::exp(-v)); }
};
// log(1 + e^z) / beta with z = beta x, as max(z, 0) + log1p(e^-|z|) so it never overflows;
// above the threshold it is x itself, as in PyTorch.
struct Softplus {
  double beta, threshold;
  template <class T> KILN_HOST_DEVICE T operator()(T v) const {
    const T z = v * T(beta);
    const T abs_z = z < T(0) ? -z : z;
    return z > T(threshold) ? v : ((z > T(0) ? z : T(0)) + std::log1p(std::exp(-abs_z))) / T(beta);
  }
};

// GELU, forward and backward, for the GPU (the CPU has vectorised kernels of its own in
// ops/cpu/activation.*, held to the exact formulas below by tests/test_activation.cpp).
//   exact: gelu(x) = x Phi(x), Phi(x) = erfc(-x / sqrt 2) / 2 (erfc: no cancellation for
//          x << 0), gelu'(x) = Phi(x) + x phi(x), phi the normal density;
//   tanh:  gelu(x) = x/2 (1 + t), t = tanh(u), u = sqrt(2/pi) (x + 0.044715 x^3),
//          gelu'(x) = (1 + t)/2 + x/2 (1 - t^2) u'.
namespace gelu_constants {
inline constexpr double kInvSqrt2 = 0.70710678118654752440;
inline constexpr double kInvSqrt2Pi = 0.39894228040143267794;
inline constexpr double kSqrt2OverPi = 0.79788456080286535588;
inline constexpr double kCubic = 0.044715;
}  // namespace gelu_constants

struct GeluExact {
  template <class T> KILN_HOST_DEVICE T operator()(T x) const {
    return x * T(0.5) * std::erfc(-x * T(gelu_constants::kInvSqrt2));
  }
};
struct GeluTanh {
  template <class T> KILN_HOST_DEVICE T operator()(T x) const {
    using namespace gelu_constants;
    const T u = T(kSqrt2OverPi) * (x + T(kCubic) * x * x * x);
    return T(0.5) * x * (T(1) + std::tanh(u));
  }
};
// g * gelu'(x), for (g, x).
struct GeluExactBackward {
  template <class T> KILN_HOST_DEVICE T operator()(T g, T x) const {
    using namespace gelu_constants;
    const T cdf = T(0.5) * std::erfc(-x * T(kInvSqrt2));
    const T pdf = T(kInvSqrt2Pi) * std::exp(T(-0.5) * x * x);
    return g * (cdf + x * pdf);
  }
};
struct GeluTanhBackward {
  template <class T> KILN_HOST_DEVICE T operator()(T g, T x) const {
    using namespace gelu_constants;
    const T u = T(kSqrt2OverPi) * (x + T(kCubic) * x * x * x);
    const T du = T(kSqrt2OverPi) * (T(1) + T(3 * kCubic) * x * x);
    const T t = std::tanh(u);
    return g * (T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * du);
  }
};

// ---- comparisons (bool out) and selection ----------------------------------------------------

struct Eq {
  template <class T> KILN_HOST_DEVICE uint8_t operator()(T x, T y) const { return x == y; }
};
struct Ne {
  template <class T> KILN_HOST_DEVICE uint8_t operator()(T x, T y) const { return x != y; }
};
struct Lt {
  template <class T> KILN_HOST_DEVICE uint8_t operator()(T x, T y) const { return x < y; }
};
struct Le {
  template <class T> KILN_HOST_DEVICE uint8_t operator()(T x, T y) const { return x <= y; }
};
struct Gt {
  template <class T> KILN_HOST_DEVICE uint8_t operator()(T x, T y) const { return x > y; }
};
struct Ge {
  template <class T> KILN_HOST_DEVICE uint8_t operator()(T x, T y) const { return x >= y; }
};
// cond ? a : b (where, masked_fill).
struct Select {
  template <class T> KILN_HOST_DEVICE T operator()(uint8_t cond, T a, T b) const { return cond ? a : b; }
};

}  // namespace kiln::ops::fn

// ---- what the GPU compiles ------------------------------------------------------------------
// X(functor, element types) for cuda/map.cu: FLOATING = f32, f64; NUMERIC = f32, f64, i64.
// A functor used by ops::map_unary / map_binary on a CUDA tensor must be listed here with
// the dtypes its op dispatches on.
#define KILN_UNARY_FUNCTORS(X)                                                                    \
  X(Neg, NUMERIC) X(Abs, NUMERIC) X(Sign, NUMERIC) X(Scale, NUMERIC) X(Exp, FLOATING) X(Log, FLOATING) \
  X(Log1p, FLOATING) X(Sqrt, FLOATING) X(Rsqrt, FLOATING) X(Sin, FLOATING) X(Cos, FLOATING)      \
  X(PowScalar, FLOATING) X(Clamp, FLOATING) X(InRange, FLOATING) X(Relu, FLOATING)               \
  X(Positive, FLOATING) X(Sigmoid, FLOATING) X(Tanh, FLOATING) X(Silu, FLOATING)                 \
  X(Softplus, FLOATING) X(GeluExact, FLOATING) X(GeluTanh, FLOATING)

// Same-dtype binary functors whose result has the operands' dtype.
#define KILN_BINARY_FUNCTORS(X)                                                                  \
  X(Add, NUMERIC) X(Sub, NUMERIC) X(Mul, NUMERIC) X(Div, NUMERIC) X(AddScaled, NUMERIC)          \
  X(Maximum, NUMERIC) X(Minimum, NUMERIC) X(Pow, FLOATING) X(PickShare, FLOATING)                \
  X(GeluExactBackward, FLOATING) X(GeluTanhBackward, FLOATING)

// Same-dtype binary functors with a bool (b8) result.
#define KILN_PREDICATE_FUNCTORS(X) \
  X(Eq, NUMERIC) X(Ne, NUMERIC) X(Lt, NUMERIC) X(Le, NUMERIC) X(Gt, NUMERIC) X(Ge, NUMERIC) X(ZeroBase, FLOATING)

namespace kiln::ops::fn {

// kRunsOnGpu<F, T>: whether F is compiled for the GPU with elements of type T (listed
// above). ops/map.h asks it, so a map with any other callable (a lambda), or a dtype the
// list leaves out, still runs on the CPU and, given a CUDA tensor, throws a kiln::Error
// naming the op instead of failing to link.
template <class F, class T>
inline constexpr bool kRunsOnGpu = false;
#define KILN_GPU_TYPES_FLOATING(F)                              \
  template <> inline constexpr bool kRunsOnGpu<F, float> = true; \
  template <> inline constexpr bool kRunsOnGpu<F, double> = true;
#define KILN_GPU_TYPES_NUMERIC(F) \
  KILN_GPU_TYPES_FLOATING(F) template <> inline constexpr bool kRunsOnGpu<F, int64_t> = true;
#define KILN_RUNS_ON_GPU(F, TYPES) KILN_GPU_TYPES_##TYPES(F)
KILN_UNARY_FUNCTORS(KILN_RUNS_ON_GPU)
KILN_BINARY_FUNCTORS(KILN_RUNS_ON_GPU)
KILN_PREDICATE_FUNCTORS(KILN_RUNS_ON_GPU)
#undef KILN_RUNS_ON_GPU
#undef KILN_GPU_TYPES_NUMERIC
#undef KILN_GPU_TYPES_FLOATING

}  // namespace kiln::ops::fn
