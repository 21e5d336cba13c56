// ContextPool, the op (ops/context_pool.h), 1-D and 2-D: the fused kernels against a
// brute-force reference that builds the dense Gaussian matrix with plain loops in f64;
// gradcheck in f64 w.r.t. x, m and s (causal, bidirectional, strided, 2-D, non-contiguous
// inputs, double backward); causality; the uniform case equals average pooling; eps;
// empty sizes; argument errors.
#include <cmath>
#include <limits>
#include <vector>

#include <kiln/ops/context_pool.h>
#include <kiln/ops/pool.h>

#include "helpers.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// ---- the brute-force reference ------------------------------------------------------------
// The definition read literally: for each batch, the dense (outputs x inputs) matrix
// W[o][q] = g_o(q) m_q (0 outside the window), then y = W x / (rowsum(W) + eps).

struct Grid {
  int64_t batch, height, width, channels;
};

std::vector<double> reference_context_pool(const Grid& grid, const std::vector<double>& x,
                                           const std::vector<double>& m, const std::vector<double>& s,
                                           const ContextPoolOptions& options, int64_t window) {
  const int64_t h = grid.height, w = grid.width, d = grid.channels, stride = options.stride;
  const int64_t out_h = (h + stride - 1) / stride, out_w = (w + stride - 1) / stride;
  const int64_t inputs = h * w, outputs = out_h * out_w;
  std::vector<double> y(grid.batch * outputs * d, 0.0);
  for (int64_t b = 0; b < grid.batch; ++b) {
    std::vector<double> dense(outputs * inputs, 0.0);
    for (int64_t o = 0; o < outputs; ++o) {
      const int64_t ci = (o / out_w) * stride, cj = (o % out_w) * stride;
      const double s_o = s[b * outputs + o];
      for (int64_t q = 0; q < inputs; ++q) {
        const int64_t di = q / w - ci, dj = q % w - cj;
        const bool in_window = std::abs(di) <= window && std::abs(dj) <= window && !(options.causal && dj > 0);
        if (in_window)
          dense[o * inputs + q] = std::exp(-double(di * di + dj * dj) / (2 * s_o * s_o)) * m[b * inputs + q];
      }
    }
    for (int64_t o = 0; o < outputs; ++o) {
      double z = options.eps;
      for (int64_t q = 0; q < inputs; ++q) z += dense[o * inputs + q];
      for (int64_t k = 0; k < d; ++k) {
        double sum = 0;
        for (int64_t q = 0; q < inputs; ++q) sum += dense[o * inputs + q] * x[(b * inputs + q) * d + k];
        y[(b * outputs + o) * d + k] = sum / z;
      }
    }
  }
  return y;
}

// Random inputs for a grid: x ~ N(0, 1), m in (0.05, 1), s in (s_lo, s_hi) per output.
struct Inputs {
  Tensor x, m, s;
};

Inputs random_inputs(const Grid& grid, bool two_d, int64_t stride, double s_lo, double s_hi, DType dtype = f64) {
  const int64_t out_h = (grid.height + stride - 1) / stride, out_w = (grid.width + stride - 1) / stride;
  const Shape x_shape = two_d ? Shape{grid.batch, grid.height, grid.width, grid.channels}
                              : Shape{grid.batch, grid.width, grid.channels};
  const Shape m_shape = two_d ? Shape{grid.batch, grid.height, grid.width} : Shape{grid.batch, grid.width};
  const Shape s_shape = two_d ? Shape{grid.batch, out_h, out_w} : Shape{grid.batch, out_w};
  return {randn(x_shape, {.dtype = dtype}), uniform(0.05, 1.0, m_shape, {.dtype = dtype}),
          uniform(s_lo, s_hi, s_shape, {.dtype = dtype})};
}

Tensor pool(bool two_d, const Tensor& x, const Tensor& m, const Tensor& s, const ContextPoolOptions& options) {
  return two_d ? context_pool2d(x, m, s, options) : context_pool(x, m, s, options);
}

// The fused op (f64 and f32) agrees with the dense reference on random inputs.
void check_against_reference(const Grid& grid, bool two_d, const ContextPoolOptions& options, double s_lo,
                             double s_hi) {
  const Inputs in = random_inputs(grid, two_d, options.stride, s_lo, s_hi);
  const double max_s = in.s.numel() == 0 ? 0.0 : max(in.s).item<double>();
  const int64_t window = options.window > 0 ? options.window : static_cast<int64_t>(std::ceil(3 * max_s));
  const std::vector<double> expected = reference_context_pool(
      grid, in.x.to_vector<double>(), in.m.to_vector<double>(), in.s.to_vector<double>(), options, window);
  check_values(pool(two_d, in.x, in.m, in.s, options), expected, 1e-12, 1e-10);
  const Tensor y32 = pool(two_d, in.x.to(f32), in.m.to(f32), in.s.to(f32), options);
  CHECK(y32.dtype() == f32);
  check_values(y32, expected, 2e-5, 2e-5);
}

}  // namespace

// ---- forward values ------------------------------------------------------------------------

TEST_CASE("context_pool: a hand-computed 1-D case") {
  // n = 3, d = 1, m = 1, s = 1, window 1: y_0 = (x0 + e x1) / (1 + e), e = exp(-1/2).
  const Tensor x = from_vector<double>({1, 2, 4}, {1, 3, 1}, {.dtype = f64});
  const Tensor m = ones({1, 3}, {.dtype = f64}), s = ones({1, 3}, {.dtype = f64});
  const double e = std::exp(-0.5);
  const ContextPoolOptions options{.window = 1, .eps = 0};
  check_values(context_pool(x, m, s, options),
               {(1 + 2 * e) / (1 + e), (e * 1 + 2 + e * 4) / (1 + 2 * e), (e * 2 + 4) / (1 + e)}, 1e-14, 1e-14);
  ContextPoolOptions causal = options;
  causal.causal = true;
  check_values(context_pool(x, m, s, causal), {1, (e * 1 + 2) / (1 + e), (e * 2 + 4) / (1 + e)}, 1e-14, 1e-14);
}

TEST_CASE("context_pool: matches the dense Gaussian reference (1-D)") {
  for (const int64_t window : {0, 1, 3, 7, 40}) {
    for (const bool causal : {false, true}) {
      for (const int64_t stride : {1, 2, 3}) {
        CAPTURE(window);
        CAPTURE(causal);
        CAPTURE(stride);
        check_against_reference({3, 1, 23, 5}, false, {.causal = causal, .window = window, .stride = stride}, 0.3,
                                2.5);
      }
    }
  }
}

TEST_CASE("context_pool: matches the dense reference on inputs big enough to run threaded") {
  check_against_reference({2, 1, 301, 17}, false, {.causal = true, .window = 8}, 0.5, 3.0);
  check_against_reference({2, 20, 21, 16}, true, {.window = 3, .stride = 2}, 0.5, 1.0);
}

TEST_CASE("context_pool2d: matches the dense Gaussian reference") {
  for (const int64_t window : {0, 1, 2, 5}) {
    for (const int64_t stride : {1, 2, 3}) {
      CAPTURE(window);
      CAPTURE(stride);
      check_against_reference({2, 7, 9, 3}, true, {.window = window, .stride = stride}, 0.3, 1.5);
    }
  }
}

// ---- gradients ---------------------------------------------------------------------------------

namespace {

// gradcheck w.r.t. x, m and s together (f64, small).
void check_context_pool_gradients(const Grid& grid, bool two_d, const ContextPoolOptions& options) {
  Inputs in = random_inputs(grid, two_d, options.stride, 0.4, 2.0);
  in.x.requires_grad_();
  in.m.requires_grad_();
  in.s.requires_grad_();
  check_gradients([&](const std::vector<Tensor>& t) { return pool(two_d, t[0], t[1], t[2], options); },
                  {in.x, in.m, in.s});
}

}  // namespace

TEST_CASE("context_pool: gradcheck w.r.t. x, m and s") {
  SUBCASE("1-D bidirectional") { check_context_pool_gradients({2, 1, 9, 3}, false, {.window = 3}); }
  SUBCASE("1-D causal") { check_context_pool_gradients({2, 1, 9, 3}, false, {.causal = true, .window = 3}); }
  SUBCASE("1-D strided") { check_context_pool_gradients({2, 1, 10, 3}, false, {.window = 3, .stride = 3}); }
  SUBCASE("1-D causal strided") {
    check_context_pool_gradients({1, 1, 11, 2}, false, {.causal = true, .window = 4, .stride = 2});
  }
  SUBCASE("2-D") { check_context_pool_gradients({2, 4, 5, 2}, true, {.window = 2}); }
  SUBCASE("2-D strided") { check_context_pool_gradients({1, 5, 7, 2}, true, {.window = 2, .stride = 2}); }
}

TEST_CASE("context_pool: gradcheck with non-contiguous inputs") {
  // x as a transposed (B, d, n) tensor, m as every other column, s transposed: the op
  // copies them; the gradients must land on the original layouts.
  const Tensor x_t = leaf64({2, 3, 8}), m_wide = uniform(0.1, 1.0, {2, 16}, {.dtype = f64}).requires_grad_();
  const Tensor s_t = uniform(0.5, 2.0, {4, 2}, {.dtype = f64}).requires_grad_();
  check_gradients(
      [](const std::vector<Tensor>& t) {
        return context_pool(t[0].transpose(1, 2), t[1].slice(1, 0, 16, 2), t[2].t(), {.window = 3, .stride = 2});
      },
      {x_t, m_wide, s_t});
  const Tensor x2d = leaf64({1, 2, 4, 5});  // (B, d, H, W) seen as (B, H, W, d)
  const Tensor m2d = uniform(0.1, 1.0, {1, 5, 4}, {.dtype = f64}).requires_grad_();
  const Tensor s2d = uniform(0.5, 2.0, {1, 5, 4}, {.dtype = f64}).requires_grad_();
  check_gradients(
      [](const std::vector<Tensor>& t) {
        return context_pool2d(t[0].permute({0, 2, 3, 1}), t[1].transpose(1, 2), t[2].transpose(1, 2), {.window = 2});
      },
      {x2d, m2d, s2d});
}

namespace {

// The gradients of sum(pool(x, m, s) * weights) w.r.t. x, m and s, flattened into one
// vector; with create_graph they are differentiable themselves.
Tensor pooled_gradients(bool two_d, const std::vector<Tensor>& in, const ContextPoolOptions& options,
                        bool create_graph) {
  const Tensor y = pool(two_d, in[0], in[1], in[2], options);
  const Tensor weights = cos(arange(static_cast<double>(y.numel()), {.dtype = y.dtype()}) * 0.7).reshape(y.shape());
  const std::vector<Tensor> g = grad({sum(y * weights)}, in, {.create_graph = create_graph});
  return cat({g[0].flatten(), g[1].flatten(), g[2].flatten()});
}

}  // namespace

TEST_CASE("context_pool: double backward (create_graph) through the composite backward") {
  // gradcheck of (x, m, s) -> gradients: its analytic side runs the composite backward
  // (grad mode on), its finite differences the fused kernel, so both paths must agree.
  for (const bool two_d : {false, true}) {
    CAPTURE(two_d);
    const ContextPoolOptions options =
        two_d ? ContextPoolOptions{.window = 1, .stride = 2} : ContextPoolOptions{.causal = true, .window = 2};
    Inputs in = two_d ? random_inputs({1, 3, 4, 2}, true, 2, 0.5, 1.5)
                      : random_inputs({2, 1, 6, 2}, false, 1, 0.5, 1.5);
    check_gradients(
        [&](const std::vector<Tensor>& t) {
          GradModeGuard grad_mode(true);
          const bool outer = t[0].requires_grad();
          std::vector<Tensor> leaves;
          for (const Tensor& v : t) leaves.push_back(outer ? v : v.detach().requires_grad_());
          return pooled_gradients(two_d, leaves, options, outer);
        },
        {in.x.requires_grad_(), in.m.requires_grad_(), in.s.requires_grad_()});
  }
}

TEST_CASE("context_pool: the fused and the composite backward agree on larger inputs (threaded)") {
  // Big enough that both kernel passes run OpenMP-parallel.
  for (const bool two_d : {false, true}) {
    CAPTURE(two_d);
    const Grid grid = two_d ? Grid{2, 13, 14, 24} : Grid{2, 1, 150, 40};
    const ContextPoolOptions options{.causal = !two_d, .window = 0, .stride = two_d ? 2 : 1};
    Inputs in = random_inputs(grid, two_d, options.stride, 0.5, 3.0);
    const std::vector<Tensor> leaves{in.x.requires_grad_(), in.m.requires_grad_(), in.s.requires_grad_()};
    const Tensor fused = pooled_gradients(two_d, leaves, options, /*create_graph=*/false);
    const Tensor composite = pooled_gradients(two_d, leaves, options, /*create_graph=*/true);
    check_values(fused, composite.to_vector<double>(), 1e-10, 1e-9);
  }
}

// ---- properties ------------------------------------------------------------------------------

TEST_CASE("context_pool: causal outputs never depend on later tokens") {
  const int64_t n = 17;
  for (const int64_t stride : {1, 3}) {
    CAPTURE(stride);
    const Inputs in = random_inputs({2, 1, n, 4}, false, stride, 0.5, 4.0);
    const ContextPoolOptions options{.causal = true, .stride = stride};
    const Tensor y = context_pool(in.x, in.m, in.s, options);
    for (const int64_t i : {0, 5, 11, 15}) {
      // Replace every token after i (features and pooling weights) with fresh values.
      const Tensor keep = le(arange(static_cast<double>(n), {.dtype = f64}), static_cast<double>(i));
      const Tensor x2 = where(keep.reshape({1, n, 1}), in.x, randn(in.x.shape(), {.dtype = f64}) * 10.0);
      const Tensor m2 = where(keep.reshape({1, n}), in.m, uniform(0.05, 1.0, in.m.shape(), {.dtype = f64}));
      const Tensor y2 = context_pool(x2, m2, in.s, options);
      const int64_t unchanged = i / stride + 1;  // outputs centred at or before i
      check_values(y2.narrow(1, 0, unchanged), y.narrow(1, 0, unchanged).to_vector<double>(), 0, 0);
      if (unchanged < y.size(1)) CHECK(max(abs(y2 - y)).item<double>() > 1e-3);  // later ones do change
    }
  }
}

TEST_CASE("context_pool: uniform (m = 1, s = +inf) equals average pooling over the window") {
  // A flat window of half-width k clipped at the borders is avg_pool with kernel 2k + 1,
  // padding k and count_include_pad = false (eps = 0 so the divisor is exactly the count).
  for (const int64_t k : {1, 2, 4}) {
    for (const int64_t stride : {1, 2, 3}) {
      CAPTURE(k);
      CAPTURE(stride);
      const ContextPoolOptions options{.window = k, .stride = stride, .eps = 0};
      const Tensor x = randn({2, 13, 3}, {.dtype = f64});
      const int64_t n_out = (13 + stride - 1) / stride;
      const Tensor y = context_pool(x, ones({2, 13}, {.dtype = f64}), full({2, n_out}, kInf, {.dtype = f64}), options);
      const Tensor avg = avg_pool1d(x.transpose(1, 2), 2 * k + 1,
                                    {.stride = stride, .padding = k, .count_include_pad = false});
      check_close(y, avg.transpose(1, 2), 1e-13, 1e-13);

      const Tensor img = randn({2, 7, 9, 3}, {.dtype = f64});
      const int64_t h_out = (7 + stride - 1) / stride, w_out = (9 + stride - 1) / stride;
      const Tensor y2 = context_pool2d(img, ones({2, 7, 9}, {.dtype = f64}),
                                       full({2, h_out, w_out}, kInf, {.dtype = f64}), options);
      const Tensor avg2 = avg_pool2d(img.permute({0, 3, 1, 2}), 2 * k + 1,
                                     {.stride = stride, .padding = k, .count_include_pad = false});
      check_close(y2, avg2.permute({0, 2, 3, 1}), 1e-13, 1e-13);
    }
  }
}

TEST_CASE("context_pool: s = +inf has zero gradient in s and finite gradients elsewhere") {
  const Tensor x = leaf64({1, 6, 2});
  const Tensor m = uniform(0.1, 1.0, {1, 6}, {.dtype = f64}).requires_grad_();
  const Tensor s = from_vector<double>({kInf, 1.0, kInf, 2.0, 0.5, kInf}, {1, 6}, {.dtype = f64}).requires_grad_();
  sum(context_pool(x, m, s, {.window = 2}) * x.detach()).backward();
  const std::vector<double> ds = s.grad().to_vector<double>();
  for (const size_t i : {0, 2, 5}) CHECK(ds[i] == 0.0);
  for (const size_t i : {1, 3, 4}) CHECK(std::fabs(ds[i]) > 1e-8);
  for (const Tensor& g : {x.grad(), m.grad(), s.grad()})
    CHECK(std::isfinite(sum(g).item<double>()));
}

TEST_CASE("context_pool: eps keeps y finite where every weight is ~0") {
  for (const double tiny : {0.0, 1e-300}) {
    CAPTURE(tiny);
    const Tensor x = leaf64({1, 5, 3});
    const Tensor m = full({1, 5}, tiny, {.dtype = f64}).requires_grad_();
    const Tensor s = ones({1, 5}, {.dtype = f64}).requires_grad_();
    const Tensor y = context_pool(x, m, s, {.window = 2});
    CHECK(max(abs(y)).item<double>() < 1e-250);  // y -> 0, not 0/0
    sum(y).backward();
    for (const Tensor& g : {x.grad(), m.grad(), s.grad()})
      CHECK(std::isfinite(sum(g).item<double>()));
  }
  // With eps = 0 the same input is 0/0: eps is what keeps it finite.
  const Tensor y0 = context_pool(randn({1, 4, 2}, {.dtype = f64}), zeros({1, 4}, {.dtype = f64}),
                                 ones({1, 4}, {.dtype = f64}), {.window = 1, .eps = 0});
  CHECK(std::isnan(y0.to_vector<double>()[0]));
}

TEST_CASE("context_pool: empty sizes give empty outputs and gradients") {
  struct Case {
    Shape x, m, s;
    bool two_d;
  };
  for (const Case& c : {Case{{2, 0, 3}, {2, 0}, {2, 0}, false}, Case{{2, 5, 0}, {2, 5}, {2, 5}, false},
                        Case{{0, 5, 3}, {0, 5}, {0, 5}, false}, Case{{1, 0, 4, 2}, {1, 0, 4}, {1, 0, 2}, true},
                        Case{{1, 3, 4, 0}, {1, 3, 4}, {1, 2, 2}, true}}) {
    CAPTURE(shape_str(c.x));
    const ContextPoolOptions options{.stride = c.two_d ? 2 : 1};
    const Tensor x = zeros(c.x, {.dtype = f64}).requires_grad_();
    const Tensor m = ones(c.m, {.dtype = f64}).requires_grad_();
    const Tensor s = ones(c.s, {.dtype = f64}).requires_grad_();
    const Tensor y = pool(c.two_d, x, m, s, options);
    Shape expected = c.s;
    expected.push_back(c.x.back());
    CHECK(y.shape() == expected);
    sum(y).backward();
    CHECK(x.grad().shape() == c.x);
    CHECK(m.grad().shape() == c.m);
    check_values(m.grad(), std::vector<double>(m.numel(), 0.0), 0, 0);  // y = 0 when d = 0 or there is no output
  }
}

// ---- errors ------------------------------------------------------------------------------------

TEST_CASE("context_pool: argument errors name the op, shapes and dtypes") {
  const Tensor x = randn({2, 6, 3}), m = rand({2, 6}), s = ones({2, 6});
  CHECK_THROWS_KILN(context_pool(randn({6, 3}), m, s), "context_pool: x must be a 3-D (B, n, d) tensor, got f32[6, 3]");
  CHECK_THROWS_KILN(context_pool(x, rand({2, 5}), s), "context_pool: m must have shape [2, 6]");
  CHECK_THROWS_KILN(context_pool(x, m, ones({2, 6}), {.stride = 2}), "s must have shape [2, 3]");
  CHECK_THROWS_KILN(context_pool(x, m.to(f64), s), "context_pool: dtypes differ (f32[2, 6, 3] and f64[2, 6])");
  CHECK_THROWS_KILN(context_pool(x.to(i64), m.to(i64), s.to(i64)), "expected a floating tensor (f32 or f64)");
  CHECK_THROWS_KILN(context_pool(x, m, s, {.stride = 0}), "context_pool: stride must be >= 1, got 0");
  CHECK_THROWS_KILN(context_pool(x, m, s, {.window = -1}), "context_pool: window must be >= 0");
  CHECK_THROWS_KILN(context_pool(x, m, s, {.eps = -1}), "eps must be finite and >= 0");
  CHECK_THROWS_KILN(context_pool(x, m, s * 0.0), "context_pool: support sizes s must be > 0 (and not NaN), got 0");
  CHECK_THROWS_KILN(context_pool(x, m, full({2, 6}, std::nan(""))), "s must be > 0 (and not NaN), got nan");
  CHECK_THROWS_KILN(context_pool(x, m, full({2, 6}, kInf)),
                    "s holds +inf (a flat window), which needs an explicit window");
  CHECK_NOTHROW(context_pool(x, m, full({2, 6}, kInf), {.window = 2}));
  CHECK_THROWS_KILN(context_pool2d(randn({1, 4, 4, 2}), rand({1, 4, 4}), ones({1, 4, 4}), {.causal = true}),
                    "context_pool2d: causal pooling is only defined for sequences");
  CHECK_THROWS_KILN(context_pool2d(x, m, s), "context_pool2d: x must be a 4-D (B, H, W, d) tensor");
  CHECK_THROWS_KILN(context_pool2d(randn({1, 4, 5, 2}), rand({1, 4, 5}), ones({1, 2, 2}), {.stride = 2}),
                    "context_pool2d: s must have shape [1, 2, 3]");
}
