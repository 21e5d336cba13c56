// Activations: values (golden from PyTorch), stability at large |x|, gradcheck,
// double backward (gradcheck of the gradient, and analytic second derivatives), errors.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>

#include "golden/elementwise_golden.h"
#include "helpers.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

using UnaryOp = std::function<Tensor(const Tensor&)>;

// Runs `op` on `input` in f64 and in f32 and compares both with PyTorch's f64 values.
void check_golden(const UnaryOp& op, const std::vector<double>& input, const std::vector<double>& expected) {
  check_values(op(from_vector(input, {.dtype = f64})), expected, 1e-12, 1e-10);
  check_values(op(from_vector(input, {.dtype = f32})), expected, 1e-6, 1e-5);
}

// Every activation under test, by name, for the table-driven cases below.
struct Activation {
  const char* name;
  UnaryOp fn;
};

const std::vector<Activation>& smooth_activations() {
  static const std::vector<Activation> all = {
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }},
      {"tanh", [](const Tensor& x) { return tanh(x); }},
      {"gelu", [](const Tensor& x) { return gelu(x); }},
      {"gelu tanh", [](const Tensor& x) { return gelu(x, "tanh"); }},
      {"silu", [](const Tensor& x) { return silu(x); }},
      {"softplus", [](const Tensor& x) { return softplus(x); }},
      {"softplus beta 2 threshold 5", [](const Tensor& x) { return softplus(x, 2.0, 5.0); }},
  };
  return all;
}

// f'(x) elementwise (the gradient of sum(f(x))), itself differentiable in x. gradcheck
// also evaluates it on plain copies of x under NoGradGuard: then it differentiates a
// fresh leaf and returns the values only.
Tensor derivative(const UnaryOp& f, const Tensor& x) {
  if (x.requires_grad() && GradMode::is_enabled()) return grad({sum(f(x))}, {x}, {.create_graph = true})[0];
  GradModeGuard enable(true);
  Tensor leaf = x.detach().requires_grad_();
  return grad({sum(f(leaf))}, {leaf})[0].detach();
}

}  // namespace

// ---- values -------------------------------------------------------------------------------

TEST_CASE("activations match PyTorch") {
  check_golden([](const Tensor& x) { return sigmoid(x); }, golden::x_any, golden::sigmoid_any);
  check_golden([](const Tensor& x) { return tanh(x); }, golden::x_any, golden::tanh_any);
  check_golden([](const Tensor& x) { return gelu(x); }, golden::x_any, golden::gelu_any);
  check_golden([](const Tensor& x) { return gelu(x, "tanh"); }, golden::x_any, golden::gelu_tanh_any);
  check_golden([](const Tensor& x) { return silu(x); }, golden::x_any, golden::silu_any);
  check_golden([](const Tensor& x) { return softplus(x); }, golden::x_any, golden::softplus_any);
  check_golden([](const Tensor& x) { return softplus(x, 2.0, 5.0); }, golden::x_any,
               golden::softplus_beta2_threshold5_any);
}

TEST_CASE("relu zeroes negatives and keeps NaN") {
  check_values(relu(from_vector<double>({-2, -0.5, 0, 0.5, 3, kNaN})), {0, 0, 0, 0.5, 3, kNaN});
  check_values(relu(from_vector<float>({-1, 2})), {0, 2});
}

TEST_CASE("activations stay finite and exact at large |x| in f32 and f64") {
  for (DType dt : {f32, f64}) {
    CAPTURE(dtype_name(dt));
    Tensor x = from_vector<double>({-1e4, -1000, 1000, 1e4}, {.dtype = dt});
    check_values(sigmoid(x), {0, 0, 1, 1}, 0, 0);
    check_values(tanh(x), {-1, -1, 1, 1}, 0, 0);
    check_values(silu(x), {0, 0, 1000, 1e4}, 0, 0);
    check_values(gelu(x), {0, 0, 1000, 1e4}, 0, 0);
    check_values(gelu(x, "tanh"), {0, 0, 1000, 1e4}, 0, 0);
    check_values(softplus(x), {0, 0, 1000, 1e4}, 0, 0);
    // With the linear region switched off, log(1 + e^x) must still not overflow.
    check_values(softplus(x, 1.0, std::numeric_limits<double>::infinity()), {0, 0, 1000, 1e4}, 0, 1e-7);

    Tensor xg = x.clone().requires_grad_();
    Tensor g = grad({sum(sigmoid(xg) + tanh(xg) + silu(xg) + gelu(xg) + softplus(xg))}, {xg})[0];
    check_values(g, {0, 0, 3, 3}, 0, 0);  // sigmoid' = tanh' = 0, the others' = 1 out there
  }
}

TEST_CASE("sigmoid keeps full relative precision deep in both tails") {
  Tensor x = from_vector<double>({-700, 700});
  check_values(sigmoid(x), {std::exp(-700.0), 1}, 0, 1e-12);
}

// ---- gradients ----------------------------------------------------------------------------

TEST_CASE("gradcheck: every activation, on a strided input") {
  manual_seed(11);
  // Scaled so the inputs straddle softplus's threshold for beta 2 (x = 2.5) and gelu's curve.
  Tensor x = leaf64({4, 3}, 2.0);
  for (const Activation& a : smooth_activations()) {
    CAPTURE(a.name);
    check_gradients([&](const std::vector<Tensor>& in) { return a.fn(in[0]); }, {x});
    check_gradients([&](const std::vector<Tensor>& in) { return a.fn(in[0].t()); }, {x});  // non-contiguous
  }
  check_gradients([](const std::vector<Tensor>& in) { return relu(in[0]); }, {x});
  check_gradients([](const std::vector<Tensor>& in) { return relu(in[0].t()); }, {x});
}

TEST_CASE("relu's gradient is 0 at 0, as in PyTorch") {
  Tensor x = from_vector<double>({-1, 0, 2}).requires_grad_();
  sum(relu(x)).backward();
  check_values(x.grad(), {0, 0, 1});
}

TEST_CASE("double backward: gradcheck of each activation's gradient") {
  manual_seed(12);
  Tensor x = leaf64({2, 3}, 2.0);
  for (const Activation& a : smooth_activations()) {
    CAPTURE(a.name);
    check_gradients([&](const std::vector<Tensor>& in) { return derivative(a.fn, in[0]); }, {x});
  }
}

TEST_CASE("double backward matches the analytic second derivatives") {
  const std::vector<double> xs = {-2.0, -0.4, 0.3, 1.7};
  Tensor x = from_vector(xs).requires_grad_();
  auto second = [&](const UnaryOp& f) { return grad({sum(derivative(f, x))}, {x})[0]; };
  std::vector<double> sigmoid1, sigmoid2, tanh2, gelu2, silu2;
  for (double v : xs) {
    const double s = 1 / (1 + std::exp(-v)), t = std::tanh(v);
    const double pdf = std::exp(-v * v / 2) / std::sqrt(2 * M_PI);
    sigmoid1.push_back(s * (1 - s));
    sigmoid2.push_back(s * (1 - s) * (1 - 2 * s));
    tanh2.push_back(-2 * t * (1 - t * t));
    gelu2.push_back(pdf * (2 - v * v));
    silu2.push_back(s * (1 - s) * (2 + v * (1 - 2 * s)));
  }
  check_values(second([](const Tensor& t) { return sigmoid(t); }), sigmoid2, 1e-12, 1e-10);
  check_values(second([](const Tensor& t) { return tanh(t); }), tanh2, 1e-12, 1e-10);
  check_values(second([](const Tensor& t) { return gelu(t); }), gelu2, 1e-12, 1e-10);
  check_values(second([](const Tensor& t) { return silu(t); }), silu2, 1e-12, 1e-10);
  // softplus' = sigmoid, so softplus'' = sigmoid' (below the threshold)
  check_values(second([](const Tensor& t) { return softplus(t); }), sigmoid1, 1e-12, 1e-10);
}

// ---- the fused GELU kernels against the exact formulas ----------------------------------------

namespace {

using Exact = long double;

// gelu(x) and gelu'(x) in long double, each with the scale its error is measured against:
// the value itself for gelu, the larger of its two terms for gelu' (which crosses 0 near
// x = -0.75, where they cancel).
struct GeluReference {
  Exact value, derivative, derivative_scale;
};

GeluReference exact_gelu(Exact x, bool tanh_form) {
  if (!tanh_form) {
    const Exact cdf = 0.5L * std::erfc(-x / std::sqrt(2.0L));
    const Exact x_pdf = x * std::exp(-x * x / 2) / std::sqrt(2 * M_PIl);
    return {x * cdf, cdf + x_pdf, std::max(std::fabs(cdf), std::fabs(x_pdf))};
  }
  const Exact u = std::sqrt(2 / M_PIl) * (x + 0.044715L * x * x * x);
  const Exact du = std::sqrt(2 / M_PIl) * (1 + 3 * 0.044715L * x * x);
  const Exact e = std::exp(-2 * std::fabs(u));  // sigmoid(2u) without overflow
  const Exact s = (u >= 0 ? 1 : e) / (1 + e);
  const Exact slope = 2 * x * e / ((1 + e) * (1 + e)) * du;
  return {x * s, s + slope, std::max(std::fabs(s), std::fabs(slope))};
}

// The relative error allowed, in units of the dtype's epsilon. The tanh form is
// ill-conditioned for x < 0: one rounding in u = sqrt(2/pi) (x + 0.044715 x^3) is
// multiplied by |2 x u'(x)| (170 at x = -9) in exp(-2|u|), in any implementation. The
// exact form's f32 kernel has no such term (it splits x^2 exactly); its f64 one rounds
// erfc's argument x/sqrt 2, which costs x^2.
double allowed_epsilons(double x, bool tanh_form, DType dtype) {
  const double condition = tanh_form ? std::fabs(2 * x * 0.7978845608 * (1 + 3 * 0.044715 * x * x))
                           : dtype == f64 ? x * x
                                          : 0;
  return 8 + 2 * std::min(condition, 1e6);
}

std::vector<double> wide_range_of_x() {
  std::vector<double> xs = {0.0, 1e-30, -1e-30, 1e-7, -1e-7, 10, -10, 1e4, -1e4, 1e30, -1e30};
  for (double x = -14; x <= 14; x += 0.01) xs.push_back(x);
  return xs;
}

// Runs the fused forward and backward (through the public op) in `dtype` and compares with
// exact_gelu on the values the dtype holds.
void check_gelu_kernel(const std::string& approximate, DType dtype) {
  const bool tanh_form = approximate == "tanh";
  const Tensor x = from_vector(wide_range_of_x(), {.dtype = dtype}).requires_grad_();
  const Tensor y = gelu(x, approximate);
  const Tensor dy = grad({y}, {x}, {.grad_outputs = {ones_like(x)}})[0];
  const std::vector<double> xv = x.to_vector<double>(), yv = y.to_vector<double>(), dyv = dy.to_vector<double>();
  const double epsilon = dtype == f32 ? 0x1p-23 : 0x1p-52;
  const double smallest = dtype == f32 ? 0x1p-100 : 0x1p-1000;  // the exps flush below this
  for (size_t i = 0; i < xv.size(); ++i) {
    CAPTURE(xv[i]);
    const GeluReference ref = exact_gelu(xv[i], tanh_form);
    const double tolerance = allowed_epsilons(xv[i], tanh_form, dtype) * epsilon;
    CHECK(std::fabs(yv[i] - ref.value) <= tolerance * std::fabs(ref.value) + smallest);
    CHECK(std::fabs(dyv[i] - ref.derivative) <= tolerance * ref.derivative_scale + smallest);
  }
}

}  // namespace

TEST_CASE("gelu's fused kernels match the exact formulas from -1e30 to 1e30, f32 and f64") {
  for (const char* approximate : {"none", "tanh"}) {
    for (DType dtype : {f32, f64}) {
      CAPTURE(approximate);
      CAPTURE(dtype_name(dtype));
      check_gelu_kernel(approximate, dtype);
    }
  }
}

TEST_CASE("gelu at infinities and NaN: inf, NaN (-inf * 0) and NaN, as in PyTorch") {
  const double inf = std::numeric_limits<double>::infinity();
  for (const char* approximate : {"none", "tanh"}) {
    for (DType dtype : {f32, f64}) {
      CAPTURE(approximate);
      CAPTURE(dtype_name(dtype));
      const Tensor x = from_vector<double>({inf, -inf, kNaN}, {.dtype = dtype}).requires_grad_();
      const Tensor y = gelu(x, approximate);
      check_values(y, {inf, kNaN, kNaN}, 0, 0);
      // gelu' is 1 at +inf and 0 at -inf (its limits); NaN stays NaN.
      check_values(grad({y}, {x}, {.grad_outputs = {ones_like(x)}})[0], {1, 0, kNaN}, 0, 0);
    }
  }
}

TEST_CASE("gelu on a non-contiguous input equals gelu on its contiguous copy, forward and backward") {
  manual_seed(13);
  for (const char* approximate : {"none", "tanh"}) {
    CAPTURE(approximate);
    const Tensor base = randn({64, 48}) * 3.0;
    const Tensor strided = base.t().slice(0, 1, 40, 2);  // transposed and stepped
    REQUIRE_FALSE(strided.is_contiguous());
    check_close(gelu(strided, approximate), gelu(strided.contiguous(), approximate), 0, 0);

    const Tensor g = randn(strided.shape());
    const Tensor a = strided.detach().requires_grad_(), b = strided.contiguous().requires_grad_();
    const Tensor da = grad({gelu(a, approximate)}, {a}, {.grad_outputs = {g.t().contiguous().t()}})[0];
    const Tensor db = grad({gelu(b, approximate)}, {b}, {.grad_outputs = {g}})[0];
    check_close(da, db, 0, 0);
  }
}

TEST_CASE("gelu's fused backward is differentiable in the incoming gradient and in x") {
  manual_seed(14);
  const Tensor x = leaf64({2, 3}, 2.0), g = leaf64({2, 3});
  for (const char* approximate : {"none", "tanh"}) {
    CAPTURE(approximate);
    // dx = g * gelu'(x) as a function of (x, g). As in derivative() above, gradcheck also
    // calls it on plain copies under NoGradGuard: then it differentiates a fresh leaf.
    check_gradients(
        [&](const std::vector<Tensor>& in) {
          const bool recording = in[0].requires_grad() && GradMode::is_enabled();
          GradModeGuard enable(true);
          const Tensor leaf = recording ? in[0] : in[0].detach().requires_grad_();
          const Tensor dx =
              grad({gelu(leaf, approximate)}, {leaf}, {.create_graph = recording, .grad_outputs = {in[1]}})[0];
          return recording ? dx : dx.detach();
        },
        {x, g});
  }
}

// ---- errors ---------------------------------------------------------------------------------

TEST_CASE("activations reject bad options and non-floating inputs") {
  Tensor x = ones({2});
  CHECK_THROWS_KILN(gelu(x, "fast"), "gelu: approximate must be \"none\" or \"tanh\", got \"fast\"");
  CHECK_THROWS_KILN(softplus(x, 0.0), "softplus: beta must be positive, got 0");
  CHECK_THROWS_KILN(relu(from_vector<int64_t>({1, -1})), "relu: unsupported dtype i64 (expected f32 or f64)");
  CHECK_THROWS_KILN(sigmoid(gt(x, 0.0)), "sigmoid: unsupported dtype bool");
  CHECK_THROWS_KILN(gelu(ones({2}, {.dtype = bf16})), "gelu: dtype bf16 is a storage type (kiln computes in it only");
}
