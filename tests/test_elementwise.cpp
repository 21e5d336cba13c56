// Elementwise ops: values (golden from PyTorch for the transcendental ones), gradients
// (incl. broadcasting, scalar overloads and strided inputs), comparisons, where,
// masked_fill, and the error messages.
#include <functional>
#include <limits>

#include "golden/elementwise_golden.h"
#include "helpers.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

const double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::numeric_limits<double>::quiet_NaN();

using UnaryOp = std::function<Tensor(const Tensor&)>;

// Runs `op` on `input` in f64 and in f32 and compares both with PyTorch's f64 values.
void check_golden(const UnaryOp& op, const std::vector<double>& input, const std::vector<double>& expected) {
  check_values(op(from_vector(input, {.dtype = f64})), expected, 1e-12, 1e-10);
  check_values(op(from_vector(input, {.dtype = f32})), expected, 1e-6, 1e-5);
}

// An f64 leaf with values in [low, high): for ops whose domain excludes some numbers.
Tensor leaf_in(const Shape& shape, double low, double high) {
  return uniform(low, high, shape, {.dtype = f64}).requires_grad_();
}

Tensor bools(const std::vector<bool>& values, const Shape& shape) { return from_vector(values, shape); }

}  // namespace

// ---- values -------------------------------------------------------------------------------

TEST_CASE("transcendental unary ops match PyTorch") {
  check_golden([](const Tensor& x) { return exp(x); }, golden::x_any, golden::exp_any);
  check_golden([](const Tensor& x) { return sin(x); }, golden::x_any, golden::sin_any);
  check_golden([](const Tensor& x) { return cos(x); }, golden::x_any, golden::cos_any);
  check_golden([](const Tensor& x) { return log(x); }, golden::x_positive, golden::log_positive);
  check_golden([](const Tensor& x) { return sqrt(x); }, golden::x_positive, golden::sqrt_positive);
  check_golden([](const Tensor& x) { return rsqrt(x); }, golden::x_positive, golden::rsqrt_positive);
  check_golden([](const Tensor& x) { return log1p(x); }, golden::x_above_minus_one, golden::log1p_above_minus_one);
  check_golden([](const Tensor& x) { return pow(x, 2.5); }, golden::x_positive, golden::pow_positive_2_5);
  check_golden([](const Tensor& x) { return pow(x, -1.5); }, golden::x_positive, golden::pow_positive_minus_1_5);
  check_golden([](const Tensor& x) { return pow(x, 3.0); }, golden::x_any, golden::pow_any_3);
}

TEST_CASE("pow of two tensors broadcasts and matches PyTorch") {
  for (DType dt : {f64, f32}) {
    Tensor base = from_vector(golden::pow_base, {3, 1}, {.dtype = dt});
    Tensor exponent = from_vector(golden::pow_exponent, {1, 4}, {.dtype = dt});
    Tensor out = pow(base, exponent);
    CHECK(out.shape() == Shape{3, 4});
    check_values(out, golden::pow_tensor, 1e-6, 1e-6);
  }
}

TEST_CASE("log1p keeps precision where 1 + x rounds to 1") {
  Tensor x = from_vector<double>({1e-20});
  check_values(log1p(x), {1e-20}, 0, 1e-12);  // log(1 + 1e-20) would give 0
}

TEST_CASE("abs and neg work on floating and i64 tensors") {
  check_values(abs(from_vector<double>({-2.5, 0, 3})), {2.5, 0, 3});
  Tensor i = from_vector<int64_t>({-4, 0, 7});
  Tensor a = abs(i), n = neg(i);
  CHECK(a.dtype() == i64);
  CHECK(a.to_vector<int64_t>() == std::vector<int64_t>{4, 0, 7});
  CHECK(n.to_vector<int64_t>() == std::vector<int64_t>{4, 0, -7});
}

TEST_CASE("clamp clips to [min, max], leaves a side open with inf and keeps NaN") {
  Tensor x = from_vector<double>({-3, -1, 0.5, 1, 4, kNaN});
  check_values(clamp(x, -1, 1), {-1, -1, 0.5, 1, 1, kNaN});
  check_values(clamp(x, 0, kInf), {0, 0, 0.5, 1, 4, kNaN});
  check_values(clamp(x.to(f32), -kInf, 0.5), {-3, -1, 0.5, 0.5, 0.5, kNaN});
}

TEST_CASE("maximum and minimum broadcast, propagate NaN and work on i64") {
  Tensor a = from_vector<double>({1, 5, kNaN}, {3, 1});
  Tensor b = from_vector<double>({2, 4}, {1, 2});
  check_values(maximum(a, b), {2, 4, 5, 5, kNaN, kNaN});
  check_values(minimum(a, b), {1, 1, 2, 4, kNaN, kNaN});
  check_values(maximum(b, a), {2, 4, 5, 5, kNaN, kNaN});  // NaN wins from either side
  Tensor i = from_vector<int64_t>({3, -2}), j = from_vector<int64_t>({1, 0});
  CHECK(maximum(i, j).to_vector<int64_t>() == std::vector<int64_t>{3, 0});
}

TEST_CASE("comparisons return bool masks, broadcast, and take scalars") {
  Tensor a = from_vector<double>({1, 2, 3}, {3, 1});
  Tensor b = from_vector<double>({2, 3}, {1, 2});
  Tensor m = lt(a, b);
  CHECK(m.dtype() == b8);
  CHECK(m.shape() == Shape{3, 2});
  check_values(m, {1, 1, 0, 1, 0, 0});
  check_values(le(a, b), {1, 1, 1, 1, 0, 1});
  check_values(gt(a, b), {0, 0, 0, 0, 1, 0});
  check_values(ge(a, b), {0, 0, 1, 0, 1, 1});
  check_values(eq(a, b), {0, 0, 1, 0, 0, 1});
  check_values(ne(a, b), {1, 1, 0, 1, 1, 0});

  Tensor x = from_vector<double>({-1, 0, 2});
  check_values(gt(x, 0.0), {0, 0, 1});
  check_values(ge(x, 0.0), {0, 1, 1});
  check_values(lt(x, 0.0), {1, 0, 0});
  check_values(le(x, 0.0), {1, 1, 0});
  check_values(eq(x, 2.0), {0, 0, 1});
  check_values(ne(x, 2.0), {1, 1, 0});
  check_values(eq(from_vector<int64_t>({4, 5}), 5.0), {0, 1});
  check_values(ne(from_vector<double>({kNaN}), from_vector<double>({kNaN})), {1});  // NaN != NaN

  Tensor y = from_vector<double>({1.0}).requires_grad_();
  CHECK_FALSE(gt(y, 0.0).requires_grad());  // masks carry no gradient
}

TEST_CASE("where selects elementwise with all three operands broadcast") {
  Tensor cond = bools({true, false, true}, {1, 3});
  Tensor a = from_vector<double>({10, 20}, {2, 1});
  Tensor b = scalar_tensor(-1, {.dtype = f64});
  Tensor out = where(cond, a, b);
  CHECK(out.shape() == Shape{2, 3});
  check_values(out, {10, -1, 10, 20, -1, 20});
  Tensor i = where(bools({false, true}, {2}), from_vector<int64_t>({1, 2}), from_vector<int64_t>({7, 8}));
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{7, 2});
}

TEST_CASE("masked_fill writes the value where the mask is true") {
  Tensor x = from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
  check_values(masked_fill(x, bools({false, true, false}, {3}), -kInf), {1, -kInf, 3, 4, -kInf, 6});
  Tensor xi = from_vector<int64_t>({1, 2});
  CHECK(masked_fill(xi, bools({true, false}, {2}), 9).to_vector<int64_t>() == std::vector<int64_t>{9, 2});
}

TEST_CASE("strided (transposed) inputs give the same values as contiguous ones") {
  Tensor x = randn({4, 3}, {.dtype = f64});
  Tensor xt = x.t();
  REQUIRE_FALSE(xt.is_contiguous());
  Tensor c = xt.contiguous();
  check_close(exp(xt), exp(c), 0, 1e-14);
  check_close(abs(xt), abs(c), 0, 0);
  check_close(maximum(xt, c * 0.5), maximum(c, c * 0.5), 0, 0);
  check_close(where(gt(xt, 0.0), xt, c * 2.0), where(gt(c, 0.0), c, c * 2.0), 0, 0);
}

// ---- gradients ----------------------------------------------------------------------------

TEST_CASE("gradcheck: unary ops") {
  manual_seed(1);
  Tensor any = leaf64({2, 3});
  Tensor positive = leaf_in({2, 3}, 0.2, 3.0);
  auto unary = [](const UnaryOp& op) { return [op](const std::vector<Tensor>& in) { return op(in[0]); }; };
  check_gradients(unary([](const Tensor& x) { return neg(x); }), {any});
  check_gradients(unary([](const Tensor& x) { return abs(x); }), {any});
  check_gradients(unary([](const Tensor& x) { return exp(x); }), {any});
  check_gradients(unary([](const Tensor& x) { return sin(x); }), {any});
  check_gradients(unary([](const Tensor& x) { return cos(x); }), {any});
  check_gradients(unary([](const Tensor& x) { return pow(x, 3.0); }), {any});
  check_gradients(unary([](const Tensor& x) { return clamp(x, -0.5, 0.5); }), {any});
  check_gradients(unary([](const Tensor& x) { return log(x); }), {positive});
  check_gradients(unary([](const Tensor& x) { return log1p(x); }), {positive});
  check_gradients(unary([](const Tensor& x) { return sqrt(x); }), {positive});
  check_gradients(unary([](const Tensor& x) { return rsqrt(x); }), {positive});
  check_gradients(unary([](const Tensor& x) { return pow(x, 2.5); }), {positive});
  check_gradients(unary([](const Tensor& x) { return pow(x, -1.5); }), {positive});
}

TEST_CASE("gradcheck: binary ops broadcasting (3, 1) with (1, 4)") {
  manual_seed(2);
  Tensor a = leaf64({3, 1}), b = leaf64({1, 4});
  Tensor a_pos = leaf_in({3, 1}, 0.3, 2.0), b_away = leaf_in({1, 4}, 0.5, 2.0);
  check_gradients([](const std::vector<Tensor>& in) { return in[0] + in[1]; }, {a, b});
  check_gradients([](const std::vector<Tensor>& in) { return in[0] - in[1]; }, {a, b});
  check_gradients([](const std::vector<Tensor>& in) { return in[0] * in[1]; }, {a, b});
  check_gradients([](const std::vector<Tensor>& in) { return in[0] / in[1]; }, {a, b_away});
  check_gradients([](const std::vector<Tensor>& in) { return pow(in[0], in[1]); }, {a_pos, b});
  check_gradients([](const std::vector<Tensor>& in) { return maximum(in[0], in[1]); }, {a, b});
  check_gradients([](const std::vector<Tensor>& in) { return minimum(in[0], in[1]); }, {a, b});
}

TEST_CASE("gradcheck: scalar overloads and a 0-d operand") {
  manual_seed(3);
  Tensor x = leaf_in({2, 3}, 0.5, 2.0);
  Tensor s = leaf64({});
  check_gradients([](const std::vector<Tensor>& in) { return in[0] + 2.0; }, {x});
  check_gradients([](const std::vector<Tensor>& in) { return 2.0 - in[0]; }, {x});
  check_gradients([](const std::vector<Tensor>& in) { return in[0] * 3.0 - 1.0; }, {x});
  check_gradients([](const std::vector<Tensor>& in) { return 2.0 / in[0] + in[0] / 4.0; }, {x});
  check_gradients([](const std::vector<Tensor>& in) { return -in[0] * 2.0 + 1.0 * in[0]; }, {x});
  check_gradients([](const std::vector<Tensor>& in) { return in[0] * in[1]; }, {x, s});
  check_gradients([](const std::vector<Tensor>& in) { return pow(in[1], in[0]); }, {x, leaf_in({}, 0.5, 2.0)});
}

TEST_CASE("gradcheck: a transposed (non-contiguous) input") {
  manual_seed(4);
  Tensor x = leaf64({4, 3}), b = leaf64({1, 4});
  check_gradients([](const std::vector<Tensor>& in) { return exp(in[0].t()) * in[1]; }, {x, b});
  check_gradients([](const std::vector<Tensor>& in) { return maximum(in[0].t(), in[1]); }, {x, b});
  check_gradients([](const std::vector<Tensor>& in) { return where(gt(in[1], 0.0), in[0].t(), in[1]); }, {x, b});
}

TEST_CASE("gradcheck: where and masked_fill with broadcasting") {
  manual_seed(5);
  Tensor cond = bools({true, false, false, true}, {1, 4});
  Tensor a = leaf64({3, 1}), b = leaf64({3, 4}), s = leaf64({});
  check_gradients([&](const std::vector<Tensor>& in) { return where(cond, in[0], in[1]); }, {a, b});
  check_gradients([&](const std::vector<Tensor>& in) { return where(cond, in[0], in[1]); }, {s, b});
  check_gradients([&](const std::vector<Tensor>& in) { return masked_fill(in[0], cond, 7.0); }, {b});
}

TEST_CASE("maximum and minimum split the gradient evenly on ties") {
  Tensor a = from_vector<double>({1, 2, 3}).requires_grad_();
  Tensor b = from_vector<double>({3, 2, 1}).requires_grad_();
  sum(maximum(a, b)).backward();
  check_values(a.grad(), {0, 0.5, 1});
  check_values(b.grad(), {1, 0.5, 0});
  a.zero_grad();
  b.zero_grad();
  sum(minimum(a, b)).backward();
  check_values(a.grad(), {1, 0.5, 0});
  check_values(b.grad(), {0, 0.5, 1});
}

TEST_CASE("abs and clamp gradients at the kinks follow PyTorch") {
  Tensor x = from_vector<double>({0, -1, 1, 2}).requires_grad_();
  sum(abs(x)).backward();
  check_values(x.grad(), {0, -1, 1, 1});  // sign(0) = 0
  x.zero_grad();
  sum(clamp(x, -1, 1)).backward();
  check_values(x.grad(), {1, 1, 1, 0});  // the bounds themselves pass the gradient
}

TEST_CASE("pow gradients stay finite at a zero base or a zero exponent") {
  Tensor a = from_vector<double>({0, 2}).requires_grad_();
  Tensor b = from_vector<double>({2, 0}).requires_grad_();
  sum(pow(a, b)).backward();
  check_values(a.grad(), {0, 0});              // b a^(b-1): 2 * 0^1 and 0 * 2^-1
  check_values(b.grad(), {0, std::log(2.0)});  // a^b log a: the 0 * log 0 limit is 0
  // 0^0: the exponent-0 rule must not compute 0 * 0^-1 = NaN.
  Tensor z = from_vector<double>({0.0}).requires_grad_();
  sum(pow(z, 0.0)).backward();
  check_values(z.grad(), {0});
  Tensor zb = from_vector<double>({0.0}).requires_grad_(), e = from_vector<double>({0.0});
  sum(pow(zb, e)).backward();
  check_values(zb.grad(), {0});
}

TEST_CASE("broadcasting backward reduces each gradient to its input's shape") {
  Tensor a = from_vector<double>({1, 2, 3}, {3, 1}).requires_grad_();
  Tensor b = from_vector<double>({1, 10, 100, 1000}, {1, 4}).requires_grad_();
  Tensor s = scalar_tensor(2, {.dtype = f64, .requires_grad = true});
  sum(a * b * s).backward();
  CHECK(a.grad().shape() == Shape{3, 1});
  CHECK(b.grad().shape() == Shape{1, 4});
  CHECK(s.grad().shape() == Shape{});
  check_values(a.grad(), {2222, 2222, 2222});      // s * sum(b)
  check_values(b.grad(), {12, 12, 12, 12});        // s * sum(a)
  check_values(s.grad(), {6 * 1111});              // sum(a) * sum(b)
}

TEST_CASE("double backward through pow and where") {
  // f = x^3 -> f'' = 6x; where(x > 0, x^2, -x) -> f'' = 2 for x > 0
  Tensor x = from_vector<double>({-0.5, 1.5}).requires_grad_();
  Tensor df = grad({sum(pow(x, 3.0))}, {x}, {.create_graph = true})[0];
  check_values(grad({sum(df)}, {x})[0], {-3, 9}, 1e-12);
  Tensor dg = grad({sum(where(gt(x, 0.0), x * x, -x))}, {x}, {.create_graph = true})[0];
  check_values(dg, {-1, 3}, 1e-12);
  check_values(grad({sum(dg)}, {x}, {.allow_unused = true})[0], {0, 2}, 1e-12);
}

// ---- errors ---------------------------------------------------------------------------------

TEST_CASE("binary ops reject mixed dtypes and shapes that do not broadcast") {
  Tensor x32 = ones({2, 3}), x64 = ones({2, 3}, {.dtype = f64});
  CHECK_THROWS_KILN(add(x32, x64), "add: dtypes differ (f32[2, 3] and f64[2, 3])");
  CHECK_THROWS_KILN(pow(x32, x64), "pow: dtypes differ");
  CHECK_THROWS_KILN(maximum(x32, x64), "maximum: dtypes differ");
  CHECK_THROWS_KILN(lt(x32, x64), "lt: dtypes differ");
  CHECK_THROWS_KILN(mul(x32, ones({4})), "mul: shapes [2, 3] and [4] cannot be broadcast together");
  CHECK_THROWS_KILN(eq(x32, ones({2, 2})), "eq: shapes [2, 3] and [2, 2] cannot be broadcast");
}

TEST_CASE("floating-only ops name the op and the dtype for i64 and bool inputs") {
  Tensor i = from_vector<int64_t>({1, 2});
  Tensor m = bools({true, false}, {2});
  CHECK_THROWS_KILN(exp(i), "exp: unsupported dtype i64 (expected f32 or f64)");
  CHECK_THROWS_KILN(sqrt(m), "sqrt: unsupported dtype bool (expected f32 or f64)");
  CHECK_THROWS_KILN(pow(i, i), "pow: unsupported dtype i64");
  CHECK_THROWS_KILN(clamp(i, 0, 1), "clamp: unsupported dtype i64");
  CHECK_THROWS_KILN(abs(m), "abs: unsupported dtype bool (expected f32, f64 or i64)");
  CHECK_THROWS_KILN(add(m, m), "add: unsupported dtype bool");
  CHECK_THROWS_KILN(i * 0.5, "mul: scalar 0.5 is not an integer");
}

TEST_CASE("where and masked_fill check their condition and shapes") {
  Tensor x = ones({2, 3}, {.dtype = f64});
  CHECK_THROWS_KILN(where(x, x, x), "where: the condition must be a bool (b8) tensor, got f64[2, 3]");
  CHECK_THROWS_KILN(where(gt(x, 0.0), x, ones({2, 3})), "where: dtypes differ");
  CHECK_THROWS_KILN(where(bools({true, false}, {2}), x, x), "where: shapes [2] and [2, 3] cannot be broadcast");
  CHECK_THROWS_KILN(masked_fill(x, ones({3}), 0), "masked_fill: the mask must be a bool (b8) tensor, got f32[3]");
  CHECK_THROWS_KILN(masked_fill(x, gt(ones({4, 2, 3}), 0.0), 0), "masked_fill: cannot broadcast [4, 2, 3] to [2, 3]");
}

TEST_CASE("clamp rejects min > max") {
  CHECK_THROWS_KILN(clamp(ones({2}), 1, -1), "clamp: min 1 is greater than max -1");
}
