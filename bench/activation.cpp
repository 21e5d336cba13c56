// GELU: the fused kernels (ops/cpu/activation.*) against the composed version they
// replaced, for speed and for accuracy.
//
//   bench_activation [--n 4194304] [--threads 2]     throughput
//   bench_activation --accuracy                      error in ulps over a sweep of x
//
// Throughput: GB/s of f32 forward (gelu(x): reads x, writes y) and backward (dx = g * gelu'(x):
// reads x and g, writes dx) on n elements (default 16 * 256 * 1024, the MLP activation of
// the char-LM step), through the public op (gelu(x), and grad() of it with grad_outputs g),
// best of several runs. "before" runs the code this kernel replaced: a map_unary over
// std::exp / std::erfc, and for the backward a map for gelu'(x) then a multiply by g (two
// passes and a temporary). GB/s counts each tensor read or written once, for both, so
// the figures compare times:
//   RESULT bench=gelu form=tanh pass=forward impl=fused n=.. threads=.. ms=.. gbps=..
//
// Accuracy: the f32 and f64 kernels and the f32 "before" formulas against the same math in
// long double, on 2^21 points spread evenly over [-16, 16] plus +-2^k for k = -64..64, in
// ulps of the exact result (results below 2^-100 in f32, 2^-1000 in f64, skipped). For gelu'
// the unit is the ulp of its larger term (s or Phi, against 2 x s (1 - s) u' or x phi):
// gelu' crosses 0 near x = -0.75, where the terms cancel and no formula has a relative
// error to speak of.
//   RESULT bench=gelu_accuracy form=tanh fn=forward impl=fused dtype=f32 max_ulp_abs_le_4=.. max_ulp=.. at_x=..
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <kiln/kiln.h>
#include <kiln/ops/cpu/activation.h>
#include <kiln/ops/map.h>

#include "timing.h"

using namespace kiln;
using cpu::GeluApproximation;

namespace {

constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
constexpr double kSqrt2OverPi = 0.79788456080286535588;
constexpr double kGeluCubic = 0.044715;

const char* form_name(GeluApproximation a) { return a == GeluApproximation::tanh ? "tanh" : "exact"; }

// ---- "before": the formulas of ops/activation.cpp before the fused kernels -------------

template <class T>
T before_forward(T v, GeluApproximation a) {
  if (a == GeluApproximation::none) return T(0.5) * v * std::erfc(-v * T(kInvSqrt2));
  const T u = T(kSqrt2OverPi) * (v + T(kGeluCubic) * v * v * v);
  return v / (1 + std::exp(-2 * u));
}

template <class T>
T before_derivative(T v, GeluApproximation a) {
  if (a == GeluApproximation::none)
    return T(0.5) * std::erfc(-v * T(kInvSqrt2)) + v * std::exp(T(-0.5) * v * v) * T(kInvSqrt2Pi);
  const T u = T(kSqrt2OverPi) * (v + T(kGeluCubic) * v * v * v);
  const T s = 1 / (1 + std::exp(-2 * u));
  const T du = T(kSqrt2OverPi) * (1 + 3 * T(kGeluCubic) * v * v);
  return s + 2 * v * s * (1 - s) * du;
}

Tensor before_gelu(const Tensor& x, GeluApproximation a) {
  return ops::map_unary("gelu", x, [a](auto v) { return before_forward(v, a); });
}

Tensor before_gelu_backward(const Tensor& g, const Tensor& x, GeluApproximation a) {
  return g * ops::map_unary("gelu_backward", x, [a](auto v) { return before_derivative(v, a); });
}

// ---- throughput ----------------------------------------------------------------------------

using kiln::bench::best_seconds;

void report_speed(GeluApproximation a, const char* pass, const char* impl, int64_t n, int tensors, double seconds) {
  const double gbps = static_cast<double>(tensors) * static_cast<double>(n) * sizeof(float) / seconds * 1e-9;
  std::printf("RESULT bench=gelu form=%s pass=%s impl=%s n=%ld threads=%d ms=%.3f gbps=%.2f\n", form_name(a), pass,
              impl, n, omp_get_max_threads(), seconds * 1e3, gbps);
}

void run_throughput(int64_t n) {
  constexpr int kRepeats = 15;
  manual_seed(0);
  const Tensor x = randn({n}) * 2.0, g = randn({n});
  for (GeluApproximation a : {GeluApproximation::tanh, GeluApproximation::none}) {
    const std::string approximate = a == GeluApproximation::tanh ? "tanh" : "none";
    {
      NoGradGuard no_grad;
      report_speed(a, "forward", "before", n, 2, best_seconds([&] { before_gelu(x, a); }, kRepeats));
      report_speed(a, "forward", "fused", n, 2, best_seconds([&] { gelu(x, approximate); }, kRepeats));
      report_speed(a, "backward", "before", n, 3, best_seconds([&] { before_gelu_backward(g, x, a); }, kRepeats));
    }
    const Tensor leaf = x.detach().requires_grad_();
    const Tensor y = gelu(leaf, approximate);
    report_speed(a, "backward", "fused", n, 3, best_seconds([&] {
                   grad({y}, {leaf}, {.retain_graph = true, .grad_outputs = {g}});
                 }, kRepeats));
  }
}

// ---- accuracy ------------------------------------------------------------------------------

using Exact = long double;

// The terms of gelu and gelu' in long double; value = the function, scale = the unit its
// error is measured in (the result for gelu, the larger term for gelu').
struct Reference {
  Exact value, scale;
};

Reference exact_forward(Exact x, GeluApproximation a) {
  if (a == GeluApproximation::none) {
    const Exact y = x * 0.5L * std::erfc(-x / std::sqrt(2.0L));
    return {y, y};
  }
  const Exact u = std::sqrt(2.0L / M_PIl) * (x + 0.044715L * x * x * x);
  const Exact e = std::exp(-2 * std::fabs(u));
  const Exact y = x * (u >= 0 ? 1 : e) / (1 + e);
  return {y, y};
}

Reference exact_derivative(Exact x, GeluApproximation a) {
  if (a == GeluApproximation::none) {
    const Exact cdf = 0.5L * std::erfc(-x / std::sqrt(2.0L));
    const Exact x_pdf = x * std::exp(-x * x / 2) / std::sqrt(2 * M_PIl);
    return {cdf + x_pdf, std::max(std::fabs(cdf), std::fabs(x_pdf))};
  }
  const Exact u = std::sqrt(2.0L / M_PIl) * (x + 0.044715L * x * x * x);
  const Exact du = std::sqrt(2.0L / M_PIl) * (1 + 3 * 0.044715L * x * x);
  const Exact e = std::exp(-2 * std::fabs(u));
  const Exact s = (u >= 0 ? 1 : e) / (1 + e);
  const Exact slope_term = 2 * x * e / ((1 + e) * (1 + e)) * du;
  return {s + slope_term, std::max(std::fabs(s), std::fabs(slope_term))};
}

// Results smaller than this are not measured: near the bottom of T's range the exps flush
// to 0 (fast_exp below FLT_MIN; std::exp through the subnormals), so their relative
// error means nothing.
template <class T>
constexpr Exact kSmallest = sizeof(T) == 4 ? 0x1p-100L : 0x1p-1000L;

// Distance from `got` to the exact value in ulps of T at `scale`; -1 when not measured.
template <class T>
double ulps(T got, const Reference& ref) {
  const Exact scale = std::fabs(ref.scale);
  if (!(scale >= kSmallest<T>) || !std::isfinite(static_cast<double>(scale))) return -1;
  const T at = static_cast<T>(scale);
  const Exact ulp = static_cast<Exact>(std::nextafter(at, std::numeric_limits<T>::infinity())) - at;
  return static_cast<double>(std::fabs(static_cast<Exact>(got) - ref.value) / ulp);
}

template <class T>
std::vector<T> sweep_points() {
  std::vector<T> x;
  constexpr int64_t kEven = int64_t{1} << 21;
  for (int64_t i = 0; i <= kEven; ++i) x.push_back(static_cast<T>(-16.0 + 32.0 * static_cast<double>(i) / kEven));
  for (int k = -64; k <= 64; ++k) {
    x.push_back(static_cast<T>(std::ldexp(1.0, k)));
    x.push_back(static_cast<T>(-std::ldexp(1.0, k)));
  }
  return x;
}

struct Worst {
  double near = 0, all = 0;  // max over |x| <= 4, over everything
  double at_x = 0;
  void add(double u, double x) {
    if (u < 0) return;
    if (std::fabs(x) <= 4) near = std::max(near, u);
    if (u > all) all = u, at_x = x;
  }
};

void report_accuracy(GeluApproximation a, const char* fn, const char* impl, const char* dtype, const Worst& w) {
  std::printf("RESULT bench=gelu_accuracy form=%s fn=%s impl=%s dtype=%s max_ulp_abs_le_4=%.2f max_ulp=%.2f at_x=%.6g\n",
              form_name(a), fn, impl, dtype, w.near, w.all, w.at_x);
}

template <class T>
void check_fused(GeluApproximation a, const char* dtype) {
  const std::vector<T> x = sweep_points<T>();
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<T> y(x.size()), ones(x.size(), T(1)), dy(x.size());
  cpu::gelu_forward(x.data(), y.data(), n, a);
  cpu::gelu_backward(x.data(), ones.data(), dy.data(), n, a);
  Worst forward, derivative;
  for (int64_t i = 0; i < n; ++i) {
    forward.add(ulps(y[i], exact_forward(x[i], a)), x[i]);
    derivative.add(ulps(dy[i], exact_derivative(x[i], a)), x[i]);
  }
  report_accuracy(a, "forward", "fused", dtype, forward);
  report_accuracy(a, "derivative", "fused", dtype, derivative);
}

void check_before(GeluApproximation a) {
  Worst forward, derivative;
  for (float v : sweep_points<float>()) {
    forward.add(ulps(before_forward(v, a), exact_forward(v, a)), v);
    derivative.add(ulps(before_derivative(v, a), exact_derivative(v, a)), v);
  }
  report_accuracy(a, "forward", "before", "f32", forward);
  report_accuracy(a, "derivative", "before", "f32", derivative);
}

void run_accuracy() {
  for (GeluApproximation a : {GeluApproximation::tanh, GeluApproximation::none}) {
    check_fused<float>(a, "f32");
    check_before(a);
    check_fused<double>(a, "f64");
  }
}

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "bench_activation: %s\nusage: bench_activation [--n N] [--threads N] [--accuracy]\n",
               message.c_str());
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  int64_t n = 16 * 256 * 1024;
  bool accuracy = false;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--accuracy") {
      accuracy = true;
    } else if ((flag == "--n" || flag == "--threads") && i + 1 < argc) {
      const long long v = std::atoll(argv[++i]);
      if (v <= 0) usage_error(flag + " needs a positive integer");
      if (flag == "--n") n = v;
      else omp_set_num_threads(static_cast<int>(v));
    } else {
      usage_error("unknown or incomplete flag '" + flag + "'");
    }
  }
  if (accuracy) run_accuracy();
  else run_throughput(n);
}
