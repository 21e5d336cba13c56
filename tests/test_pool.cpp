// Pooling: max, average and adaptive average pools, 1-D and 2-D. Values and input
// gradients against PyTorch (golden/conv_pool_golden.h: padding, dilation, ceil_mode,
// count_include_pad, non-divisible adaptive sizes), hand-checked routing of max-pool
// gradients (ties, overlaps, NaN), gradcheck in f64 including double backward, argument
// errors, and the pooling layers.
#include <cmath>
#include <limits>

#include <kiln/nn/pooling.h>
#include <kiln/ops/pool.h>

#include "golden/conv_pool_golden.h"
#include "helpers.h"

using namespace kiln;
using namespace kiln::testing;
using golden::conv_pool::PoolCase;

namespace {

Tensor from_golden(const std::vector<double>& values, const std::vector<int64_t>& shape, DType dtype) {
  return from_vector(values, Shape(shape.begin(), shape.end()), {.dtype = dtype});
}

enum class PoolKind { max, avg, adaptive };

// Runs a golden case's pool on x. 2-D options hold (h, w); 1-D ones a single value.
Tensor run_golden_pool(PoolKind kind, const PoolCase& c, const Tensor& x) {
  const bool two_d = c.kernel.size() == 2;
  auto size2 = [](const std::vector<int64_t>& v) { return Size2(v[0], v[1]); };
  switch (kind) {
    case PoolKind::max:
      if (two_d)
        return max_pool2d(x, size2(c.kernel),
                          {.stride = size2(c.stride),
                           .padding = size2(c.padding),
                           .dilation = size2(c.dilation),
                           .ceil_mode = c.ceil_mode});
      return max_pool1d(x, c.kernel[0],
                        {.stride = c.stride[0],
                         .padding = c.padding[0],
                         .dilation = c.dilation[0],
                         .ceil_mode = c.ceil_mode});
    case PoolKind::avg:
      if (two_d)
        return avg_pool2d(x, size2(c.kernel),
                          {.stride = size2(c.stride),
                           .padding = size2(c.padding),
                           .ceil_mode = c.ceil_mode,
                           .count_include_pad = c.count_include_pad});
      return avg_pool1d(x, c.kernel[0],
                        {.stride = c.stride[0],
                         .padding = c.padding[0],
                         .ceil_mode = c.ceil_mode,
                         .count_include_pad = c.count_include_pad});
    case PoolKind::adaptive:
      return two_d ? adaptive_avg_pool2d(x, size2(c.kernel)) : adaptive_avg_pool1d(x, c.kernel[0]);
  }
  return {};
}

// The output, then the input gradient of sum(out * upstream), in f32 and f64.
void check_golden_pools(PoolKind kind, const std::vector<PoolCase>& cases) {
  for (const PoolCase& c : cases) {
    for (DType dt : {f32, f64}) {
      CAPTURE(c.name);
      CAPTURE(dtype_name(dt));
      Tensor x = from_golden(c.x, c.x_shape, dt).requires_grad_();
      Tensor y = run_golden_pool(kind, c, x);
      CHECK(y.dtype() == dt);
      CHECK(y.shape() == Shape(c.out_shape.begin(), c.out_shape.end()));
      const double tol = dt == f64 ? 1e-6 : 1e-5;  // golden values have 9 digits
      check_values(y, c.out, tol, tol);
      sum(y * from_golden(c.upstream, c.out_shape, dt)).backward();
      check_values(x.grad(), c.dx, tol, tol);
    }
  }
}

// d/d inputs[0] of sum(f(inputs)^2), itself differentiable (see test_conv.cpp).
Tensor square_sum_gradient(std::vector<Tensor> inputs, const GradcheckFn& f) {
  GradModeGuard grad_on(true);
  for (Tensor& t : inputs)
    if (!t.requires_grad()) t = t.detach().requires_grad_();
  Tensor y = f(inputs);
  return grad({sum(y * y)}, {inputs[0]}, {.create_graph = true})[0];
}

}  // namespace

// ---- values ------------------------------------------------------------------------------

TEST_CASE("max_pool2d by hand: 2x2 windows, the gradient goes to each maximum") {
  Tensor x = arange(16, {.dtype = f64}).reshape({1, 1, 4, 4}).requires_grad_();
  Tensor y = max_pool2d(x, 2);
  CHECK(y.shape() == Shape{1, 1, 2, 2});
  check_values(y, {5, 7, 13, 15});
  sum(y).backward();
  check_values(x.grad(), {0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1});
}

TEST_CASE("max pooling gradients: ties go to the first maximum, overlapping windows add up") {
  Tensor flat = zeros({1, 1, 2, 2}, {.dtype = f64}).requires_grad_();
  sum(max_pool2d(flat, 2)).backward();
  check_values(flat.grad(), {1, 0, 0, 0});

  Tensor x = from_vector<double>({0, 5, 0, 1}, {1, 1, 4}).requires_grad_();
  Tensor y = max_pool1d(x, 2, {.stride = 1});  // windows [0, 5], [5, 0], [0, 1]
  check_values(y, {5, 5, 1});
  sum(y).backward();
  check_values(x.grad(), {0, 2, 0, 1});
}

TEST_CASE("max_pool2d propagates NaN") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Tensor x = from_vector<double>({1, nan, 3, 4, 5, 6, 7, 8}, {1, 1, 2, 4});
  Tensor y = max_pool2d(x, 2);
  CHECK(std::isnan(y.to_vector<double>()[0]));
  CHECK(y.to_vector<double>()[1] == 8);
}

TEST_CASE("avg_pool by hand: with and without the padding in the divisor") {
  Tensor x = arange(16, {.dtype = f64}).reshape({1, 1, 4, 4});
  check_values(avg_pool2d(x, 2), {2.5, 4.5, 10.5, 12.5});
  Tensor v = from_vector<double>({1, 2, 3}, {1, 1, 3});
  check_values(avg_pool1d(v, 3, {.stride = 1, .padding = 1}), {1, 2, 5.0 / 3});
  check_values(avg_pool1d(v, 3, {.stride = 1, .padding = 1, .count_include_pad = false}), {1.5, 2, 2.5});
}

TEST_CASE("adaptive_avg_pool by hand: overlapping windows for a non-divisible size") {
  // 5 -> 3: windows [0, 2), [1, 4), [3, 5)
  Tensor x = from_vector<double>({1, 2, 3, 4, 5}, {1, 1, 5}).requires_grad_();
  Tensor y = adaptive_avg_pool1d(x, 3);
  check_values(y, {1.5, 3, 4.5});
  sum(y).backward();
  check_values(x.grad(), {0.5, 0.5 + 1.0 / 3, 1.0 / 3, 1.0 / 3 + 0.5, 0.5});
}

TEST_CASE("max_pool matches PyTorch (2-D and 1-D: padding, dilation, ceil_mode)") {
  check_golden_pools(PoolKind::max, golden::conv_pool::max_pool2d_cases);
  check_golden_pools(PoolKind::max, golden::conv_pool::max_pool1d_cases);
}

TEST_CASE("avg_pool matches PyTorch (2-D and 1-D: count_include_pad, ceil_mode)") {
  check_golden_pools(PoolKind::avg, golden::conv_pool::avg_pool2d_cases);
  check_golden_pools(PoolKind::avg, golden::conv_pool::avg_pool1d_cases);
}

TEST_CASE("adaptive_avg_pool matches PyTorch (non-divisible, identity, global, larger than the input)") {
  check_golden_pools(PoolKind::adaptive, golden::conv_pool::adaptive_avg_pool2d_cases);
  check_golden_pools(PoolKind::adaptive, golden::conv_pool::adaptive_avg_pool1d_cases);
}

TEST_CASE("pools take unbatched inputs, strided views, and 1-D pools are 2-D pools of height 1") {
  Tensor x = randn({2, 3, 6, 7});
  check_close(max_pool2d(x.select(0, 1), 3, {.stride = 2, .padding = 1}),
              max_pool2d(x, 3, {.stride = 2, .padding = 1}).select(0, 1));
  check_close(avg_pool2d(x.select(0, 1), 2), avg_pool2d(x, 2).select(0, 1));
  Tensor x_t = x.transpose(2, 3).contiguous().transpose(2, 3);
  CHECK_FALSE(x_t.is_contiguous());
  check_close(avg_pool2d(x_t, 3, {.stride = 1}), avg_pool2d(x, 3, {.stride = 1}));

  Tensor s = randn({2, 3, 11});
  check_close(max_pool1d(s, 3, {.stride = 2, .padding = 1, .dilation = 2}),
              max_pool2d(s.unsqueeze(2), {1, 3}, {.stride = {1, 2}, .padding = {0, 1}, .dilation = {1, 2}}).squeeze(2));
  check_close(avg_pool1d(s, 4, {.stride = 3, .ceil_mode = true}),
              avg_pool2d(s.unsqueeze(2), {1, 4}, {.stride = {1, 3}, .ceil_mode = true}).squeeze(2));
  check_close(adaptive_avg_pool1d(s, 4), adaptive_avg_pool2d(s.unsqueeze(2), {1, 4}).squeeze(2));
}

TEST_CASE("pools on many planes (threaded) agree with reductions") {
  Tensor x = randn({8, 64, 16, 16});
  // Global average pooling is a mean over the spatial dims.
  check_close(adaptive_avg_pool2d(x, 1), mean(x, {2, 3}, /*keepdim=*/true), 1e-5, 1e-4);
  // 2x2 max pooling is a max over the two in-window dims of a (.., 8, 2, 8, 2) view.
  Tensor windows = x.reshape({8, 64, 8, 2, 8, 2});
  check_close(max_pool2d(x, 2), max(max(windows, 5), 3));
  check_close(avg_pool2d(x, 2), mean(windows, {3, 5}), 1e-6, 1e-5);
}

// ---- gradients ---------------------------------------------------------------------------

TEST_CASE("pool gradients (gradcheck, f64)") {
  const std::vector<std::pair<const char*, GradcheckFn>> pools = {
      {"max_pool2d", [](const std::vector<Tensor>& in) {
         return max_pool2d(in[0], {3, 2}, {.stride = {2, 1}, .padding = 1, .dilation = {1, 2}, .ceil_mode = true});
       }},
      {"max_pool1d", [](const std::vector<Tensor>& in) { return max_pool1d(in[0].flatten(2), 3, {.stride = 2}); }},
      {"avg_pool2d", [](const std::vector<Tensor>& in) {
         return avg_pool2d(in[0], 3, {.stride = 2, .padding = 1, .ceil_mode = true});
       }},
      {"avg_pool2d without padding in the divisor", [](const std::vector<Tensor>& in) {
         return avg_pool2d(in[0], 3, {.stride = 2, .padding = 1, .count_include_pad = false});
       }},
      {"avg_pool1d", [](const std::vector<Tensor>& in) { return avg_pool1d(in[0].flatten(2), 4, {.stride = 3}); }},
      {"adaptive_avg_pool2d", [](const std::vector<Tensor>& in) { return adaptive_avg_pool2d(in[0], {3, 4}); }},
      {"adaptive_avg_pool1d", [](const std::vector<Tensor>& in) { return adaptive_avg_pool1d(in[0].flatten(2), 7); }},
      {"max_pool2d of a strided view",
       [](const std::vector<Tensor>& in) { return max_pool2d(in[0].transpose(2, 3), 2); }},
  };
  for (const auto& [name, fn] : pools) {
    CAPTURE(name);
    check_gradients(fn, {leaf64({2, 2, 5, 6})});
  }
}

TEST_CASE("pool double backward: gradients of their gradients (gradcheck, f64)") {
  const std::vector<std::pair<const char*, GradcheckFn>> pools = {
      {"max_pool2d", [](const std::vector<Tensor>& in) { return max_pool2d(in[0], 2, {.stride = 1}); }},
      {"avg_pool2d", [](const std::vector<Tensor>& in) { return avg_pool2d(in[0], 3, {.stride = 2, .padding = 1}); }},
      {"adaptive_avg_pool2d", [](const std::vector<Tensor>& in) { return adaptive_avg_pool2d(in[0], {2, 4}); }},
  };
  for (const auto& [name, fn] : pools) {
    CAPTURE(name);
    const GradcheckFn f = fn;
    check_gradients([f](const std::vector<Tensor>& in) { return square_sum_gradient(in, f); }, {leaf64({1, 2, 4, 5})});
  }
}

// ---- argument errors ----------------------------------------------------------------------

TEST_CASE("pools reject bad arguments with messages naming the sizes") {
  Tensor x = zeros({1, 1, 5, 5});
  CHECK_THROWS_KILN(max_pool2d(x, 2, {.padding = 2}),
                    "max_pool2d: padding must be between 0 and half the kernel size [2, 2], got [2, 2]");
  CHECK_THROWS_KILN(max_pool2d(zeros({1, 1, 2, 2}), 3),
                    "max_pool2d: input f32[1, 1, 2, 2] is too small for kernel [3, 3] with dilation [1, 1] and "
                    "padding [0, 0]: the output would be [0, 0]");
  CHECK_THROWS_KILN(max_pool1d(zeros({1, 3}), 2, {.dilation = 3}), "max_pool1d: input f32[1, 3] is too small");
  CHECK_THROWS_KILN(avg_pool2d(zeros({4, 4}), 2),
                    "avg_pool2d: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got f32[4, 4]");
  CHECK_THROWS_KILN(max_pool1d(x, 2), "max_pool1d: expected a 2-D (C, L) or 3-D (N, C, L) input, got f32[1, 1, 5, 5]");
  CHECK_THROWS_KILN(avg_pool2d(x, {2, 0}), "avg_pool2d: kernel_size must be positive, got [2, 0]");
  CHECK_THROWS_KILN(avg_pool1d(zeros({1, 4}), 2, {.stride = -1}), "avg_pool1d: stride must be positive");
  CHECK_THROWS_KILN(max_pool2d(x, 2, {.dilation = 0}), "max_pool2d: dilation must be positive, got [0, 0]");
  CHECK_THROWS_KILN(adaptive_avg_pool2d(x, {0, 2}), "adaptive_avg_pool2d: output_size must be positive, got [0, 2]");
  CHECK_THROWS_KILN(adaptive_avg_pool2d(zeros({1, 1, 0, 4}), 2),
                    "adaptive_avg_pool2d: cannot pool an empty spatial dim, got f32[1, 1, 0, 4]");
  CHECK_THROWS_KILN(max_pool2d(zeros({1, 1, 4, 4}, {.dtype = i64}), 2), "max_pool2d: expected a floating tensor");
}

// ---- layers -------------------------------------------------------------------------------

TEST_CASE("pooling layers: shapes, no parameters, repr") {
  Tensor x = randn({2, 3, 8, 9});
  nn::MaxPool2d max2(2);
  CHECK(max2.forward(x).shape() == Shape{2, 3, 4, 4});
  CHECK(max2.num_parameters() == 0);
  CHECK(max2.extra_repr() == "kernel_size=(2, 2), stride=(2, 2), padding=(0, 0), dilation=(1, 1), ceil_mode=false");

  nn::AvgPool2d avg2(3, {.stride = 2, .padding = 1, .count_include_pad = false});
  CHECK(avg2.forward(x).shape() == Shape{2, 3, 4, 5});
  check_close(avg2.forward(x), avg_pool2d(x, 3, {.stride = 2, .padding = 1, .count_include_pad = false}));
  CHECK(avg2.extra_repr() ==
        "kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), ceil_mode=false, count_include_pad=false");

  nn::AdaptiveAvgPool2d gap(1);
  CHECK(gap.forward(x).shape() == Shape{2, 3, 1, 1});
  CHECK(gap.extra_repr() == "output_size=(1, 1)");

  Tensor s = randn({2, 3, 10});
  nn::MaxPool1d max1(3, {.stride = 2, .ceil_mode = true});
  CHECK(max1.forward(s).shape() == Shape{2, 3, 5});
  CHECK(max1.extra_repr() == "kernel_size=3, stride=2, padding=0, dilation=1, ceil_mode=true");
  nn::AvgPool1d avg1(2);
  CHECK(avg1.forward(s).shape() == Shape{2, 3, 5});
  CHECK(avg1.extra_repr() == "kernel_size=2, stride=2, padding=0, ceil_mode=false, count_include_pad=true");
}
