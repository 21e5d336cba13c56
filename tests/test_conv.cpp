// Convolutions: conv1d / conv2d values and gradients against PyTorch
// (golden/conv_pool_golden.h) over stride, padding, dilation and groups; gradcheck in
// f64 for input, weight and bias (and of the gradients themselves: double backward);
// the batch-parallel kernels against one image at a time; argument errors; and the
// Conv1d, Conv2d and PatchEmbed layers.
#include <cmath>

#include <kiln/nn/conv.h>
#include <kiln/nn/patch_embed.h>
#include <kiln/ops/conv.h>

#include "golden/conv_pool_golden.h"
#include "helpers.h"

using namespace kiln;
using namespace kiln::testing;
using golden::conv_pool::ConvCase;

namespace {

Tensor from_golden(const std::vector<double>& values, const std::vector<int64_t>& shape, DType dtype) {
  return from_vector(values, Shape(shape.begin(), shape.end()), {.dtype = dtype});
}

// The golden values have 9 significant digits; f32 results also carry f32 rounding.
double tolerance(DType dt) { return dt == f64 ? 1e-6 : 1e-4; }

// Runs one golden case in `dt`: the output, then the gradients of sum(out * upstream).
void check_golden_conv(const ConvCase& c, DType dt, int spatial) {
  CAPTURE(c.name);
  CAPTURE(dtype_name(dt));
  Tensor x = from_golden(c.x, c.x_shape, dt).requires_grad_();
  Tensor w = from_golden(c.w, c.w_shape, dt).requires_grad_();
  Tensor b = c.has_bias ? from_golden(c.b, {c.w_shape[0]}, dt).requires_grad_() : Tensor();
  Tensor y = spatial == 2 ? conv2d(x, w, b,
                                   {.stride = {c.stride[0], c.stride[1]},
                                    .padding = {c.padding[0], c.padding[1]},
                                    .dilation = {c.dilation[0], c.dilation[1]},
                                    .groups = c.groups})
                          : conv1d(x, w, b,
                                   {.stride = c.stride[0],
                                    .padding = c.padding[0],
                                    .dilation = c.dilation[0],
                                    .groups = c.groups});
  CHECK(y.dtype() == dt);
  CHECK(y.shape() == Shape(c.out_shape.begin(), c.out_shape.end()));
  const double tol = tolerance(dt);
  check_values(y, c.out, tol, tol);
  sum(y * from_golden(c.upstream, c.out_shape, dt)).backward();
  check_values(x.grad(), c.dx, tol, tol);
  check_values(w.grad(), c.dw, tol, tol);
  if (c.has_bias) check_values(b.grad(), c.db, tol, tol);
}

// d/d inputs[wrt] of sum(f(inputs)^2), itself differentiable: gradcheck on it checks the
// backward of the op's backward. gradcheck's finite-difference passes call it under
// NoGradGuard with plain tensors, so it turns grad mode back on and makes them leaves.
Tensor square_sum_gradient(std::vector<Tensor> inputs, size_t wrt, const GradcheckFn& f) {
  GradModeGuard grad_on(true);
  for (Tensor& t : inputs)
    if (!t.requires_grad()) t = t.detach().requires_grad_();
  Tensor y = f(inputs);
  return grad({sum(y * y)}, {inputs[wrt]}, {.create_graph = true})[0];
}

}  // namespace

// ---- values ------------------------------------------------------------------------------

TEST_CASE("conv2d by hand: a 2x2 kernel of ones sums each window, plus the bias") {
  Tensor x = arange(9, {.dtype = f64}).reshape({1, 1, 3, 3});  // 0..8
  Tensor y = conv2d(x, ones({1, 1, 2, 2}, {.dtype = f64}), full({1}, 0.5, {.dtype = f64}));
  CHECK(y.shape() == Shape{1, 1, 2, 2});
  check_values(y, {0 + 1 + 3 + 4 + 0.5, 1 + 2 + 4 + 5 + 0.5, 3 + 4 + 6 + 7 + 0.5, 4 + 5 + 7 + 8 + 0.5});
  // padding 1 with stride 2: windows start at -1 and 1 along each dim
  Tensor z = conv2d(x, ones({1, 1, 2, 2}, {.dtype = f64}), {}, {.stride = 2, .padding = 1});
  check_values(z, {0, 1 + 2, 3 + 6, 4 + 5 + 7 + 8});
}

TEST_CASE("conv1d by hand: a difference kernel, dilated") {
  Tensor x = from_vector<float>({1, 2, 4, 8, 16}, {1, 1, 5});
  Tensor diff = from_vector<float>({-1, 1}, {1, 1, 2});
  check_values(conv1d(x, diff), {1, 2, 4, 8});
  check_values(conv1d(x, diff, {}, {.dilation = 2}), {3, 6, 12});
}

TEST_CASE("conv2d matches PyTorch, forward and backward, over stride, padding, dilation and groups") {
  for (const ConvCase& c : golden::conv_pool::conv2d_cases)
    for (DType dt : {f32, f64}) check_golden_conv(c, dt, 2);
}

TEST_CASE("conv1d matches PyTorch, forward and backward") {
  for (const ConvCase& c : golden::conv_pool::conv1d_cases)
    for (DType dt : {f32, f64}) check_golden_conv(c, dt, 1);
}

TEST_CASE("conv2d takes unbatched (C, H, W) inputs, and conv1d is conv2d with height 1") {
  Tensor x = randn({1, 3, 6, 7}), w = randn({4, 3, 3, 3}), b = randn({4});
  Tensor batched = conv2d(x, w, b, {.padding = 1});
  Tensor unbatched = conv2d(x.squeeze(0), w, b, {.padding = 1});
  CHECK(unbatched.shape() == Shape{4, 6, 7});
  check_close(unbatched, batched.squeeze(0));

  Tensor signal = randn({2, 3, 9}), w1 = randn({4, 3, 3});
  Tensor y1 = conv1d(signal, w1, b, {.stride = 2, .padding = 1});
  Tensor y2 = conv2d(signal.unsqueeze(2), w1.unsqueeze(2), b, {.stride = {1, 2}, .padding = {0, 1}});
  check_close(y1, y2.squeeze(2));
  CHECK(conv1d(signal.select(0, 1), w1).shape() == Shape{4, 7});
}

TEST_CASE("conv2d reads non-contiguous inputs and weights") {
  Tensor x = randn({2, 3, 7, 6}), w = randn({4, 3, 3, 3});
  Tensor x_t = x.transpose(2, 3).contiguous().transpose(2, 3);  // same values, strided
  Tensor w_t = w.permute({1, 0, 2, 3}).contiguous().permute({1, 0, 2, 3});
  CHECK_FALSE(x_t.is_contiguous());
  check_close(conv2d(x_t, w_t, {}, {.padding = 1}), conv2d(x, w, {}, {.padding = 1}));
}

TEST_CASE("conv2d spread over threads by image equals one image at a time") {
  // Large enough for the batch-parallel path; batch-1 calls take the serial one, where
  // Eigen parallelises each GEMM instead. The weight gradient sums per-thread partials.
  Tensor x = randn({4, 8, 12, 12}, {.dtype = f64}).requires_grad_();
  Tensor w = randn({16, 8, 3, 3}, {.dtype = f64}).requires_grad_();
  Tensor upstream = randn({4, 16, 12, 12}, {.dtype = f64});
  Tensor y = conv2d(x, w, {}, {.padding = 1});
  sum(y * upstream).backward();

  Tensor w_grad_sum = zeros({16, 8, 3, 3}, {.dtype = f64});
  for (int64_t n = 0; n < 4; ++n) {
    Tensor xn = x.detach().narrow(0, n, 1).requires_grad_();
    Tensor wn = w.detach().requires_grad_();
    Tensor yn = conv2d(xn, wn, {}, {.padding = 1});
    check_close(yn, y.detach().narrow(0, n, 1), 1e-10, 1e-10);
    sum(yn * upstream.narrow(0, n, 1)).backward();
    check_close(xn.grad(), x.grad().narrow(0, n, 1), 1e-10, 1e-10);
    w_grad_sum = w_grad_sum + wn.grad();
  }
  check_close(w.grad(), w_grad_sum, 1e-9, 1e-10);
}

// ---- gradients ---------------------------------------------------------------------------

TEST_CASE("conv2d gradients for input, weight and bias (gradcheck, f64)") {
  struct Config {
    const char* name;
    Shape x, w;
    Conv2dOptions options;
  };
  const std::vector<Config> configs = {
      {"plain", {1, 2, 4, 5}, {3, 2, 2, 3}, {}},
      {"stride and padding", {2, 2, 5, 4}, {2, 2, 3, 3}, {.stride = {2, 1}, .padding = {1, 2}}},
      {"dilation and groups", {1, 4, 6, 5}, {4, 2, 2, 2}, {.padding = 1, .dilation = 2, .groups = 2}},
      {"pointwise", {2, 3, 3, 2}, {2, 3, 1, 1}, {}},
  };
  for (const Config& c : configs) {
    CAPTURE(c.name);
    const Conv2dOptions options = c.options;
    check_gradients([options](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], in[2], options); },
                    {leaf64(c.x), leaf64(c.w), leaf64({c.w[0]})});
  }
}

TEST_CASE("conv2d gradients of a strided input view and without bias") {
  // The input arrives transposed (a non-contiguous view); no bias input at all.
  check_gradients([](const std::vector<Tensor>& in) { return conv2d(in[0].transpose(2, 3), in[1], {}, {.stride = 2}); },
                  {leaf64({1, 2, 5, 6}), leaf64({3, 2, 2, 2})});
}

TEST_CASE("conv1d gradients (gradcheck, f64)") {
  check_gradients(
      [](const std::vector<Tensor>& in) {
        return conv1d(in[0], in[1], in[2], {.stride = 2, .padding = 1, .dilation = 2, .groups = 2});
      },
      {leaf64({2, 4, 9}), leaf64({2, 2, 3}), leaf64({2})});
}

TEST_CASE("conv2d double backward: gradients of its gradients (gradcheck, f64)") {
  const GradcheckFn f = [](const std::vector<Tensor>& in) {
    return conv2d(in[0], in[1], in[2], {.stride = 2, .padding = 1, .groups = 2});
  };
  const std::vector<Tensor> inputs = {leaf64({1, 4, 5, 4}), leaf64({2, 2, 3, 2}), leaf64({2})};
  for (size_t wrt : {0, 1}) {
    CAPTURE(wrt);
    check_gradients([&](const std::vector<Tensor>& in) { return square_sum_gradient(in, wrt, f); }, inputs);
  }
}

// ---- argument errors ----------------------------------------------------------------------

TEST_CASE("conv2d and conv1d reject bad arguments with messages naming the shapes") {
  Tensor x = zeros({1, 4, 5, 5});
  CHECK_THROWS_KILN(conv2d(x, zeros({2, 3, 3, 3})),
                    "conv2d: input f32[1, 4, 5, 5] has 4 channels, but weight f32[2, 3, 3, 3] with groups=1 expects 3");
  CHECK_THROWS_KILN(conv2d(x, zeros({3, 2, 3, 3}), {}, {.groups = 2}), "conv2d: groups=2 must divide out_channels=3");
  CHECK_THROWS_KILN(conv2d(zeros({1, 5, 5, 5}), zeros({4, 2, 3, 3}), {}, {.groups = 2}),
                    "conv2d: groups=2 must divide the input's 5 channels");
  CHECK_THROWS_KILN(conv2d(zeros({1, 1, 4, 4}), zeros({1, 1, 5, 5})),
                    "conv2d: the kernel [5, 5] (after dilation) is larger than the padded input [4, 4]");
  CHECK_THROWS_KILN(conv2d(zeros({1, 1, 4, 4}), zeros({1, 1, 3, 3}), {}, {.padding = 1, .dilation = 3}),
                    "the kernel [7, 7] (after dilation) is larger than the padded input [6, 6]");
  CHECK(conv2d(zeros({1, 1, 4, 4}), zeros({1, 1, 5, 5}), {}, {.padding = 1}).shape() == Shape{1, 1, 2, 2});
  CHECK_THROWS_KILN(conv2d(zeros({4, 5}), zeros({1, 1, 3, 3})),
                    "conv2d: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got f32[4, 5]");
  CHECK_THROWS_KILN(conv2d(x, zeros({1, 4, 3})), "conv2d: expected a 4-D weight");
  CHECK_THROWS_KILN(conv1d(x, zeros({1, 4, 3})), "conv1d: expected a 2-D (C, L) or 3-D (N, C, L) input");
  CHECK_THROWS_KILN(conv2d(x, zeros({2, 4, 3, 3}), zeros({3})),
                    "conv2d: bias must have shape [2] (out_channels), got f32[3]");
  CHECK_THROWS_KILN(conv2d(x, zeros({2, 4, 3, 3}, {.dtype = f64})), "conv2d: dtypes differ");
  CHECK_THROWS_KILN(conv2d(zeros({1, 4, 5, 5}, {.dtype = i64}), zeros({2, 4, 3, 3}, {.dtype = i64})),
                    "conv2d: expected a floating tensor");
  CHECK_THROWS_KILN(conv2d(x, zeros({2, 4, 3, 3}), {}, {.stride = {0, 1}}),
                    "conv2d: stride must be positive, got [0, 1]");
  CHECK_THROWS_KILN(conv2d(x, zeros({2, 4, 3, 3}), {}, {.padding = -1}), "conv2d: padding must be non-negative");
  CHECK_THROWS_KILN(conv1d(zeros({1, 2, 8}), zeros({1, 2, 3}), {}, {.dilation = 0}),
                    "conv1d: dilation must be positive, got [0]");
  CHECK_THROWS_KILN(conv1d(zeros({1, 2, 2}), zeros({1, 2, 3})),
                    "conv1d: the kernel [3] (after dilation) is larger than the padded input [2]");
}

// ---- layers -------------------------------------------------------------------------------

TEST_CASE("nn::Conv2d: shapes, parameters, PyTorch's init bounds and repr") {
  manual_seed(0);
  nn::Conv2d conv(3, 8, 3, {.padding = 1});
  CHECK(conv.weight.shape() == Shape{8, 3, 3, 3});
  CHECK(conv.bias.shape() == Shape{8});
  CHECK(conv.num_parameters() == 8 * 3 * 9 + 8);
  CHECK(conv.forward(randn({2, 3, 10, 12})).shape() == Shape{2, 8, 10, 12});
  CHECK(conv.extra_repr() == "3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1)");
  Tensor x = randn({2, 3, 5, 5});
  check_close(conv.forward(x), conv2d(x, conv.weight, conv.bias, {.padding = 1}));

  // kaiming_uniform_(a = sqrt(5)) is U(-1/sqrt(fan_in), 1/sqrt(fan_in)); so is the bias.
  nn::Conv2d big(64, 32, 3);
  const double bound = 1.0 / std::sqrt(64.0 * 9.0);
  const double w_max = max(abs(big.weight)).item();
  CHECK(w_max <= bound);
  CHECK(w_max > 0.99 * bound);  // 18432 draws fill the range
  CHECK(max(abs(big.bias)).item() <= bound);
  CHECK(std::abs(mean(big.weight).item()) < 0.03 * bound);  // 7 standard errors of the mean
}

TEST_CASE("nn::Conv2d with groups, a rectangular kernel and no bias") {
  nn::Conv2d conv(4, 6, {3, 1}, {.stride = 2, .groups = 2}, /*bias=*/false);
  CHECK(conv.weight.shape() == Shape{6, 2, 3, 1});
  CHECK_FALSE(conv.bias.defined());
  CHECK(conv.named_parameters().size() == 1);
  CHECK(conv.forward(randn({1, 4, 7, 5})).shape() == Shape{1, 6, 3, 3});
  CHECK(conv.extra_repr() == "4, 6, kernel_size=(3, 1), stride=(2, 2), groups=2, bias=false");
  CHECK_THROWS_KILN(nn::Conv2d(4, 6, 3, {.groups = 4}),
                    "Conv2d: groups=4 must divide in_channels=4 and out_channels=6");
  CHECK_THROWS_KILN(nn::Conv2d(4, 6, {3, 0}), "Conv2d: kernel_size must be positive, got (3, 0)");
}

TEST_CASE("nn::Conv1d: shapes, repr, gradients reach the parameters") {
  nn::Conv1d conv(3, 5, 4, {.stride = 2, .padding = 1, .dilation = 2});
  CHECK(conv.weight.shape() == Shape{5, 3, 4});
  Tensor y = conv.forward(randn({2, 3, 16}));
  CHECK(y.shape() == Shape{2, 5, 6});  // (16 + 2 - 2*3 - 1) / 2 + 1
  CHECK(conv.extra_repr() == "3, 5, kernel_size=(4,), stride=(2,), padding=(1,), dilation=(2,)");
  sum(y).backward();
  CHECK(conv.weight.grad().shape() == conv.weight.shape());
  check_values(conv.bias.grad(), std::vector<double>(5, 2.0 * 6.0));  // d sum / d bias = N * L_out
}

TEST_CASE("nn::PatchEmbed cuts patches, projects each, and returns (N, num_patches, embed_dim)") {
  nn::PatchEmbed embed({.img_size = {6, 8}, .patch_size = {3, 4}, .in_chans = 2, .embed_dim = 5});
  CHECK(embed.grid_size() == Size2(2, 2));
  CHECK(embed.num_patches() == 4);
  CHECK(embed.proj->weight.shape() == Shape{5, 2, 3, 4});
  CHECK(embed.extra_repr() == "img_size=(6, 8), patch_size=(3, 4), in_chans=2, embed_dim=5, num_patches=4");

  Tensor x = randn({2, 2, 6, 8});
  Tensor out = embed.forward(x);
  CHECK(out.shape() == Shape{2, 4, 5});
  // Patch p = (row i, col j) in row-major order is W.view(5, 24) · (its pixels) + b.
  Tensor w = embed.proj->weight.reshape({5, 24});
  for (int64_t i = 0; i < 2; ++i) {
    for (int64_t j = 0; j < 2; ++j) {
      Tensor pixels = x.narrow(2, 3 * i, 3).narrow(3, 4 * j, 4).reshape({2, 24});
      check_close(out.select(1, 2 * i + j), linear(pixels, w, embed.proj->bias), 1e-5, 1e-5);
    }
  }
  sum(out).backward();
  CHECK(embed.proj->weight.grad().defined());

  CHECK_THROWS_KILN(embed.forward(randn({2, 2, 8, 8})), "PatchEmbed: expected input (N, 2, 6, 8), got f32[2, 2, 8, 8]");
  CHECK_THROWS_KILN(nn::PatchEmbed({.img_size = 32, .patch_size = 5}),
                    "PatchEmbed: patch_size (5, 5) must divide img_size (32, 32)");
}

TEST_CASE("nn::PatchEmbed with timm's ViT defaults") {
  nn::PatchEmbed embed;  // 224x224 RGB, 16x16 patches, 768 dims
  CHECK(embed.num_patches() == 196);
  CHECK(embed.forward(randn({1, 3, 224, 224})).shape() == Shape{1, 196, 768});
}
