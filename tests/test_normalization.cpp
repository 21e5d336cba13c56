// softmax, log_softmax and layer_norm: values and gradients against PyTorch (golden),
// gradcheck in f64 (also through the create_graph path, i.e. second derivatives),
// the parallel / tiled kernel paths against a composite reference, numerical
// stability, and the error messages.
#include <functional>
#include <limits>

#include "fused_op_checks.h"
#include "helpers.h"

using namespace kiln;
using namespace kiln::testing;
namespace G = golden::normalization;

namespace {

const double kInf = std::numeric_limits<double>::infinity();

using UnaryFn = std::function<Tensor(const Tensor&)>;

// Fixed, non-uniform output weights (a constant for autograd).
Tensor weights_like(const Tensor& y) {
  return cos(arange(static_cast<double>(y.numel()), {.dtype = y.dtype()}) * 0.9 + 0.2).reshape(y.shape());
}

// Checks the second derivatives of f at x: gradcheck of x -> d/dx sum(f(x) * W).
// When gradcheck differentiates it (grad mode on), the inner gradient is built with
// create_graph, i.e. by the composite backward; its finite differences come from the
// fused backward kernel. So this also checks that both backward paths agree.
void check_second_derivatives(const UnaryFn& f, const Tensor& x) {
  check_gradients(
      [&](const std::vector<Tensor>& in) {
        GradModeGuard grad_mode(true);
        const bool outer_graph = in[0].requires_grad();
        const Tensor leaf = outer_graph ? in[0] : in[0].detach().requires_grad_();
        const Tensor y = f(leaf);
        return grad({sum(y * weights_like(y))}, {leaf}, {.create_graph = outer_graph})[0];
      },
      {x});
}

// The textbook formulas with Tensor ops, for comparison with the fused kernels.
Tensor reference_softmax(const Tensor& x, int64_t dim) {
  const Tensor e = exp(x - max(x, dim, /*keepdim=*/true));
  return e / sum(e, {dim}, /*keepdim=*/true);
}

Tensor reference_layer_norm(const Tensor& x, int64_t normalized_dims, const Tensor& w, const Tensor& b) {
  Dims dims;
  for (int64_t d = x.dim() - normalized_dims; d < x.dim(); ++d) dims.push_back(d);
  const Tensor centered = x - mean(x, dims, true);
  return centered * rsqrt(mean(centered * centered, dims, true) + 1e-5) * w + b;
}

}  // namespace

// ---- softmax / log_softmax: golden values and gradients -----------------------------------

TEST_CASE("softmax and log_softmax match PyTorch on every dim, values and gradients") {
  struct Case {
    const std::vector<double>& x;
    Shape shape;
    int64_t dim;
    const std::vector<double>& softmax;
    const std::vector<double>& softmax_grad;
    const std::vector<double>& log_softmax;
    const std::vector<double>& log_softmax_grad;
  };
  const Case cases[] = {
      {G::x2, {3, 5}, -1, G::softmax_x2_dlast, G::softmax_x2_dlast_grad0, G::log_softmax_x2_dlast,
       G::log_softmax_x2_dlast_grad0},
      {G::x2, {3, 5}, 0, G::softmax_x2_d0, G::softmax_x2_d0_grad0, G::log_softmax_x2_d0, G::log_softmax_x2_d0_grad0},
      {G::x3, {2, 3, 4}, 1, G::softmax_x3_d1, G::softmax_x3_d1_grad0, G::log_softmax_x3_d1,
       G::log_softmax_x3_d1_grad0},
      {G::x3, {2, 3, 4}, 0, G::softmax_x3_d0, G::softmax_x3_d0_grad0, G::log_softmax_x3_d0,
       G::log_softmax_x3_d0_grad0},
      {G::x3, {2, 3, 4}, 2, G::softmax_x3_dlast, G::softmax_x3_dlast_grad0, G::log_softmax_x3_dlast,
       G::log_softmax_x3_dlast_grad0},
  };
  for (const Case& c : cases) {
    for (DType dtype : {f64, f32}) {
      CAPTURE(c.dim);
      CAPTURE(dtype_name(dtype));
      const int64_t dim = c.dim;
      check_golden_with_grads([dim](const std::vector<Tensor>& in) { return softmax(in[0], dim); },
                              {{c.x, c.shape}}, c.softmax, {c.softmax_grad}, dtype);
      check_golden_with_grads([dim](const std::vector<Tensor>& in) { return log_softmax(in[0], dim); },
                              {{c.x, c.shape}}, c.log_softmax, {c.log_softmax_grad}, dtype);
    }
  }
}

TEST_CASE("softmax of a hand-computed row") {
  // softmax([0, ln 2, ln 5]) = [1, 2, 5] / 8
  Tensor x = from_vector<double>({0.0, std::log(2.0), std::log(5.0)});
  check_values(softmax(x, 0), {0.125, 0.25, 0.625}, 1e-15);
  check_values(log_softmax(x, -1), {std::log(0.125), std::log(0.25), std::log(0.625)}, 1e-15);
  // d/dx sum(log_softmax(x)) = 1 - 3 p; the incoming gradient is a stride-0 expand.
  Tensor xl = x.detach().requires_grad_();
  sum(log_softmax(xl, 0)).backward();
  check_values(xl.grad(), {0.625, 0.25, -0.875}, 1e-15);
}

// ---- softmax / log_softmax: gradcheck -----------------------------------------------------

TEST_CASE("softmax and log_softmax pass gradcheck on every dim, contiguous or not") {
  Tensor x = leaf64({2, 3, 4});
  for (int64_t dim : {0, 1, 2, -1}) {
    CAPTURE(dim);
    check_gradients([dim](const std::vector<Tensor>& in) { return softmax(in[0], dim); }, {x});
    check_gradients([dim](const std::vector<Tensor>& in) { return log_softmax(in[0], dim); }, {x});
  }
  // A transposed (non-contiguous) input.
  Tensor xt = leaf64({4, 3});
  check_gradients([](const std::vector<Tensor>& in) { return softmax(in[0].t(), 1); }, {xt});
  check_gradients([](const std::vector<Tensor>& in) { return log_softmax(in[0].t(), 0); }, {xt});
}

TEST_CASE("softmax and log_softmax support double backward (create_graph)") {
  Tensor x = leaf64({2, 3, 4});
  for (int64_t dim : {1, -1}) {
    CAPTURE(dim);
    check_second_derivatives([dim](const Tensor& t) { return softmax(t, dim); }, x);
    check_second_derivatives([dim](const Tensor& t) { return log_softmax(t, dim); }, x);
  }
}

TEST_CASE("the fused and the create_graph backward of softmax give the same gradient") {
  Tensor x = leaf64({3, 7});
  for (const UnaryFn& f : {UnaryFn([](const Tensor& t) { return softmax(t, 1); }),
                           UnaryFn([](const Tensor& t) { return log_softmax(t, 0); })}) {
    const Tensor y = f(x);
    const Tensor w = weights_like(y);
    const Tensor fused = grad({sum(y * w)}, {x}, {.retain_graph = true})[0];
    const Tensor composite = grad({sum(y * w)}, {x}, {.create_graph = true})[0];
    CHECK(composite.requires_grad());  // recorded: differentiable again
    check_close(fused, composite.detach(), 1e-14, 1e-12);
  }
}

// ---- softmax / log_softmax: kernel paths ----------------------------------------------------

TEST_CASE("softmax kernels match the composite formula on parallel and tiled paths") {
  // (64, 1024): above the parallel threshold, contiguous rows. (3, 50, 100) on dim 1:
  // inner = 100 spans a full tile of 64 columns and a partial one. Dim 0 of (40, 2000):
  // many partial-width tiles in parallel.
  struct Case {
    Shape shape;
    int64_t dim;
  };
  for (const Case& c : {Case{{64, 1024}, 1}, Case{{3, 50, 100}, 1}, Case{{40, 2000}, 0}}) {
    CAPTURE(c.dim);
    const Tensor x64 = randn(c.shape, {.dtype = f64}) * 3.0;
    const Tensor expected = reference_softmax(x64, c.dim);
    check_all_close(softmax(x64, c.dim), expected, 1e-14, 1e-12);
    check_all_close(softmax(x64.to(f32), c.dim), expected, 1e-7, 2e-6);
    check_all_close(log_softmax(x64.to(f32), c.dim), log(expected), 2e-6, 2e-6);

    // Backward kernels against the composite (create_graph) path.
    const Tensor x = x64.detach().requires_grad_();
    for (const UnaryFn& f : {UnaryFn([&](const Tensor& t) { return softmax(t, c.dim); }),
                             UnaryFn([&](const Tensor& t) { return log_softmax(t, c.dim); })}) {
      const Tensor y = f(x);
      const Tensor w = weights_like(y);
      const Tensor fused = grad({sum(y * w)}, {x}, {.retain_graph = true})[0];
      const Tensor composite = grad({sum(y * w)}, {x}, {.create_graph = true})[0];
      check_all_close(fused, composite.detach(), 1e-12, 1e-10);
    }
  }
}

TEST_CASE("softmax is stable for +-1e4 logits and masked (-inf) entries") {
  for (DType dtype : {f32, f64}) {
    CAPTURE(dtype_name(dtype));
    Tensor x = from_vector<double>({1e4, -1e4, 0.0, 1e4 - 1.0}, {.dtype = dtype});
    const double e = std::exp(-1.0);
    check_values(softmax(x, 0), {1 / (1 + e), 0, 0, e / (1 + e)}, 1e-6);
    const double log_norm = std::log1p(e);
    check_values(log_softmax(x, 0), {-log_norm, -2e4 - log_norm, -1e4 - log_norm, -1 - log_norm}, 1e-6, 1e-6);
    // -inf entries (an attention mask) get exactly zero probability.
    Tensor masked = from_vector<double>({1.0, -kInf, 2.0, -kInf}, {.dtype = dtype});
    const std::vector<double> p = softmax(masked, 0).to_vector<double>();
    CHECK(p[1] == 0.0);
    CHECK(p[3] == 0.0);
    CHECK(p[0] + p[2] == doctest::Approx(1.0));
  }
}

TEST_CASE("softmax rows holding NaN or an infinite max are NaN, as in PyTorch") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // Rows: a NaN; +inf; all -inf; a valid row with one -inf.
  const std::vector<double> rows = {1, nan, 2, kInf, 1, 2, -kInf, -kInf, -kInf, -kInf, 0, 1};
  const double e = std::exp(1.0);
  const std::vector<double> expected_softmax = {nan, nan, nan, nan, nan, nan,
                                                nan, nan, nan, 0,   1 / (1 + e), e / (1 + e)};
  const std::vector<double> expected_log_softmax = {
      nan, nan, nan, nan, nan, nan, nan, nan, nan, -kInf, -std::log1p(e), -std::log1p(1 / e)};
  for (DType dtype : {f32, f64}) {
    CAPTURE(dtype_name(dtype));
    const Tensor x = from_vector(rows, {4, 3}, {.dtype = dtype});
    check_values(softmax(x, 1), expected_softmax, 1e-6);
    check_values(log_softmax(x, 1), expected_log_softmax, 1e-6);
    // The same rows as columns: the tiled kernel.
    const Tensor columns = x.t().contiguous();
    check_values(softmax(columns, 0).t(), expected_softmax, 1e-6);
    check_values(log_softmax(columns, 0).t(), expected_log_softmax, 1e-6);
  }
}

TEST_CASE("softmax of a 0-d tensor and of an empty tensor") {
  check_values(softmax(scalar_tensor(3.0), 0), {1.0});
  check_values(log_softmax(scalar_tensor(3.0), -1), {0.0});
  CHECK(softmax(zeros({0, 4}), 1).shape() == Shape{0, 4});
}

TEST_CASE("softmax and log_softmax reject bad input with a clear error") {
  CHECK_THROWS_KILN(softmax(from_vector<int64_t>({1, 2}), 0), "softmax: expected a floating tensor");
  CHECK_THROWS_KILN(log_softmax(zeros({2, 3}), 2), "log_softmax");
  CHECK_THROWS_KILN(softmax(zeros({2, 3}), -3), "softmax");
}

// ---- layer_norm ---------------------------------------------------------------------------

TEST_CASE("layer_norm matches PyTorch with and without affine, values and gradients") {
  for (DType dtype : {f64, f32}) {
    CAPTURE(dtype_name(dtype));
    check_golden_with_grads(
        [](const std::vector<Tensor>& in) { return layer_norm(in[0], {6}, in[1], in[2]); },
        {{G::ln_x, {4, 6}}, {G::ln_w, {6}}, {G::ln_b, {6}}}, G::ln_affine,
        {G::ln_affine_grad0, G::ln_affine_grad1, G::ln_affine_grad2}, dtype);
    check_golden_with_grads([](const std::vector<Tensor>& in) { return layer_norm(in[0], {3, 4}); },
                            {{G::x3, {2, 3, 4}}}, G::ln_plain_2d, {G::ln_plain_2d_grad0}, dtype);
  }
}

TEST_CASE("layer_norm passes gradcheck for x, weight and bias") {
  Tensor x = leaf64({3, 2, 4}), w = leaf64({2, 4}), b = leaf64({2, 4});
  check_gradients([](const std::vector<Tensor>& in) { return layer_norm(in[0], {2, 4}, in[1], in[2]); }, {x, w, b});
  Tensor w1 = leaf64({4}), b1 = leaf64({4});
  check_gradients([](const std::vector<Tensor>& in) { return layer_norm(in[0], {4}, in[1], in[2]); }, {x, w1, b1});
  // weight only, bias only, neither.
  check_gradients([](const std::vector<Tensor>& in) { return layer_norm(in[0], {4}, in[1]); }, {x, w1});
  check_gradients([](const std::vector<Tensor>& in) { return layer_norm(in[0], {4}, {}, in[1]); }, {x, b1});
  check_gradients([](const std::vector<Tensor>& in) { return layer_norm(in[0], {4}); }, {x});
  // A non-contiguous input, and gradients for weight/bias only.
  Tensor xt = leaf64({4, 3});
  check_gradients([](const std::vector<Tensor>& in) { return layer_norm(in[0].t(), {4}, in[1], in[2]); },
                  {xt, w1, b1});
  Tensor x_const = randn({5, 4}, {.dtype = f64});
  check_gradients([&](const std::vector<Tensor>& in) { return layer_norm(x_const, {4}, in[0], in[1]); }, {w1, b1});
}

TEST_CASE("layer_norm supports double backward (create_graph)") {
  Tensor x = leaf64({3, 5});
  const Tensor w = randn({5}, {.dtype = f64}), b = randn({5}, {.dtype = f64});
  check_second_derivatives([&](const Tensor& t) { return layer_norm(t, {5}, w, b); }, x);
  // Mixed second derivatives: d/dweight of (d loss / dx).
  Tensor wl = leaf64({5});
  const Tensor x_values = randn({3, 5}, {.dtype = f64});
  check_gradients(
      [&](const std::vector<Tensor>& in) {
        GradModeGuard grad_mode(true);
        const Tensor xl = x_values.detach().requires_grad_();
        const Tensor y = layer_norm(xl, {5}, in[0], b);
        return grad({sum(y * weights_like(y))}, {xl}, {.create_graph = in[0].requires_grad()})[0];
      },
      {wl});
}

TEST_CASE("layer_norm kernels match the composite formula on the parallel path") {
  // (256, 512) is above the parallel threshold: rows split across threads and the
  // per-thread dweight/dbias partial sums are combined.
  const Tensor x64 = randn({256, 512}, {.dtype = f64}) * 2.0 + 0.5;
  const Tensor w64 = randn({512}, {.dtype = f64}), b64 = randn({512}, {.dtype = f64});
  const Tensor expected = reference_layer_norm(x64, 1, w64, b64);
  check_all_close(layer_norm(x64, {512}, w64, b64), expected, 1e-12, 1e-10);
  check_all_close(layer_norm(x64.to(f32), {512}, w64.to(f32), b64.to(f32)), expected, 2e-5, 2e-5);

  const Tensor x = x64.detach().requires_grad_(), w = w64.detach().requires_grad_(), b = b64.detach().requires_grad_();
  const Tensor y = layer_norm(x, {512}, w, b);
  const Tensor loss = sum(y * weights_like(y));
  const std::vector<Tensor> fused = grad({loss}, {x, w, b}, {.retain_graph = true});
  const std::vector<Tensor> composite = grad({loss}, {x, w, b}, {.create_graph = true});
  for (size_t i = 0; i < 3; ++i) check_all_close(fused[i], composite[i].detach(), 1e-10, 1e-9);
}

TEST_CASE("layer_norm's fused and create_graph backward agree without affine and with weight only") {
  const Tensor x = leaf64({4, 3, 5}), w = leaf64({3, 5});
  for (const UnaryFn& f : {UnaryFn([](const Tensor& t) { return layer_norm(t, {3, 5}); }),
                           UnaryFn([&](const Tensor& t) { return layer_norm(t, {3, 5}, w); })}) {
    const Tensor y = f(x);
    const Tensor loss = sum(y * weights_like(y));
    const Tensor fused = grad({loss}, {x}, {.retain_graph = true})[0];
    const Tensor composite = grad({loss}, {x}, {.create_graph = true})[0];
    check_all_close(fused, composite.detach(), 1e-12, 1e-10);
  }
}

TEST_CASE("layer_norm statistics stay accurate with a large mean (no cancellation)") {
  // f32 values around 1000 with unit spread: E[x^2] - E[x]^2 in f32 would lose every
  // digit; the kernel's two-sweep f64 statistics must match an f64 reference.
  const Tensor x32 = (randn({8, 256}) + 1000.0f);
  const Tensor expected = layer_norm(x32.to(f64), {256});
  check_all_close(layer_norm(x32, {256}), expected, 1e-4, 1e-4);
}

TEST_CASE("layer_norm rejects bad shapes and dtypes with a clear error") {
  const Tensor x = zeros({2, 3, 4});
  CHECK_THROWS_KILN(layer_norm(x, {3}), "layer_norm: normalized_shape [3] must be non-empty and match the trailing");
  CHECK_THROWS_KILN(layer_norm(x, {}), "normalized_shape [] must be non-empty");
  CHECK_THROWS_KILN(layer_norm(x, {4}, zeros({3})), "layer_norm: weight f32[3] must have the normalized_shape [4]");
  CHECK_THROWS_KILN(layer_norm(x, {4}, zeros({4}), zeros({2, 2})), "bias f32[2, 2]");
  CHECK_THROWS_KILN(layer_norm(x, {4}, zeros({4}, {.dtype = f64})), "dtypes differ");
  CHECK_THROWS_KILN(layer_norm(zeros({2, 4}, {.dtype = i64}), {4}), "layer_norm: expected a floating tensor");
}
