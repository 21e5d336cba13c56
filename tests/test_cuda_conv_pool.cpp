// Convolutions and pooling on CUDA against the CPU (cuda_parity.h): outputs and the
// gradients of every input, on odd sizes, strides, padding, dilation, groups, ceil_mode,
// overlapping windows, non-contiguous inputs, empty batches and double backward. Every
// case skips with a printed reason when no GPU is visible.
#include "cuda_parity.h"

using namespace kiln;
using kiln::testing::check_cuda_matches_cpu;
using kiln::testing::ParityTolerance;
using kiln::testing::skip_without_gpu;

namespace {

// f32 sums of a few hundred products: cuBLAS and Eigen add in different orders.
constexpr ParityTolerance kFloatTol{.atol = 1e-4, .rtol = 1e-4};
constexpr ParityTolerance kDoubleTol{.atol = 1e-10, .rtol = 1e-10};

ParityTolerance tolerance_for(DType dtype) { return dtype == f64 ? kDoubleTol : kFloatTol; }

// d(sum(y^2))/dx with create_graph, so its own backward (the double backward) runs too.
Tensor gradient_of_square(const Tensor& x, const Tensor& y) {
  return grad({sum(y * y)}, {x}, {.create_graph = true})[0];
}

}  // namespace

// ---- convolution ------------------------------------------------------------------------

TEST_CASE("[cuda] conv2d matches the CPU: padding, stride, dilation, groups, bias, f32 and f64") {
  if (skip_without_gpu()) return;
  for (DType dtype : {f32, f64}) {
    CAPTURE(dtype_name(dtype));
    const TensorOptions o{.dtype = dtype};
    const ParityTolerance tol = tolerance_for(dtype);
    check_cuda_matches_cpu("3x3, padding 1, bias",
                           [](const auto& in) { return conv2d(in[0], in[1], in[2], {.padding = 1}); },
                           {randn({2, 4, 9, 11}, o), randn({6, 4, 3, 3}, o), randn({6}, o)}, tol);
    check_cuda_matches_cpu(
        "stride 2, uneven padding and dilation, groups 2, no bias",
        [](const auto& in) {
          return conv2d(in[0], in[1], {}, {.stride = 2, .padding = {1, 2}, .dilation = {2, 1}, .groups = 2});
        },
        {randn({3, 4, 13, 10}, o), randn({6, 2, 3, 2}, o)}, tol);
    check_cuda_matches_cpu("stride (3, 1), even kernel, groups 3",
                           [](const auto& in) { return conv2d(in[0], in[1], in[2], {.stride = {3, 1}, .groups = 3}); },
                           {randn({1, 6, 11, 7}, o), randn({9, 2, 4, 2}, o), randn({9}, o)}, tol);
    check_cuda_matches_cpu("pointwise 1x1 (no im2col)",
                           [](const auto& in) { return conv2d(in[0], in[1], in[2]); },
                           {randn({2, 5, 7, 9}, o), randn({3, 5, 1, 1}, o), randn({3}, o)}, tol);
    check_cuda_matches_cpu("depthwise (groups = channels)",
                           [](const auto& in) { return conv2d(in[0], in[1], {}, {.padding = 1, .groups = 5}); },
                           {randn({2, 5, 8, 6}, o), randn({5, 1, 3, 3}, o)}, tol);
    check_cuda_matches_cpu("unbatched (C, H, W)",
                           [](const auto& in) { return conv2d(in[0], in[1], in[2], {.stride = 2, .padding = 1}); },
                           {randn({3, 10, 9}, o), randn({4, 3, 3, 3}, o), randn({4}, o)}, tol);
    check_cuda_matches_cpu("kernel as large as the padded input",
                           [](const auto& in) { return conv2d(in[0], in[1], {}, {.padding = 1}); },
                           {randn({2, 2, 3, 4}, o), randn({3, 2, 5, 6}, o)}, tol);
  }
}

TEST_CASE("[cuda] conv2d on non-contiguous inputs and weights") {
  if (skip_without_gpu()) return;
  check_cuda_matches_cpu(
      "permuted input, transposed weight",
      [](const auto& in) {
        return conv2d(in[0].permute({0, 2, 1, 3}), in[1].transpose(0, 1), in[2], {.stride = 2, .padding = 1});
      },
      {randn({2, 9, 4, 11}), randn({4, 6, 3, 3}), randn({6})}, kFloatTol);
  check_cuda_matches_cpu(
      "sliced input", [](const auto& in) { return conv2d(in[0].slice(3, 1, 12, 2), in[1], {}, {.padding = 2}); },
      {randn({2, 3, 7, 13}), randn({5, 3, 3, 3})}, kFloatTol);
}

TEST_CASE("[cuda] conv1d matches the CPU") {
  if (skip_without_gpu()) return;
  for (DType dtype : {f32, f64}) {
    CAPTURE(dtype_name(dtype));
    const TensorOptions o{.dtype = dtype};
    const ParityTolerance tol = tolerance_for(dtype);
    check_cuda_matches_cpu(
        "stride 2, padding 3, dilation 2, bias",
        [](const auto& in) { return conv1d(in[0], in[1], in[2], {.stride = 2, .padding = 3, .dilation = 2}); },
        {randn({3, 5, 37}, o), randn({7, 5, 4}, o), randn({7}, o)}, tol);
    check_cuda_matches_cpu("groups 3",
                           [](const auto& in) { return conv1d(in[0], in[1], {}, {.padding = 1, .groups = 3}); },
                           {randn({2, 6, 19}, o), randn({9, 2, 3}, o)}, tol);
    check_cuda_matches_cpu("unbatched (C, L), padding 2",
                           [](const auto& in) { return conv1d(in[0], in[1], in[2], {.padding = 2}); },
                           {randn({4, 23}, o), randn({2, 4, 3}, o), randn({2}, o)}, tol);
    check_cuda_matches_cpu("transposed (N, L, C) input",
                           [](const auto& in) { return conv1d(in[0].transpose(1, 2), in[1], in[2]); },
                           {randn({2, 17, 3}, o), randn({4, 3, 5}, o), randn({4}, o)}, tol);
  }
}

TEST_CASE("[cuda] conv2d over several column passes (a batch larger than one im2col pass)") {
  if (skip_without_gpu()) return;
  // One image's columns: 8 channels x 9 taps x 64 x 64 outputs = 294,912 elements, so a
  // pass holds 2^25 / 294,912 = 113 images and a batch of 115 takes two passes (the weight
  // gradient accumulates across them). f64, since dW sums 115 * 4096 products.
  const TensorOptions o{.dtype = f64};
  check_cuda_matches_cpu("two passes", [](const auto& in) { return conv2d(in[0], in[1], in[2], {.padding = 1}); },
                         {randn({115, 8, 64, 64}, o), randn({4, 8, 3, 3}, o), randn({4}, o)}, {1e-9, 1e-9});
}

TEST_CASE("[cuda] conv edge cases: empty batch, double backward") {
  if (skip_without_gpu()) return;
  check_cuda_matches_cpu("empty batch", [](const auto& in) { return conv2d(in[0], in[1], in[2], {.padding = 1}); },
                         {randn({0, 3, 5, 5}), randn({4, 3, 3, 3}), randn({4})});
  check_cuda_matches_cpu("no input channels, a bias",
                         [](const auto& in) { return conv2d(in[0], in[1], in[2], {.padding = 1}); },
                         {randn({2, 0, 5, 5}), randn({4, 0, 3, 3}), randn({4})});
  // No input channels: y is all zeros (no bias), which no GEMM writes. No output channels:
  // dx is all zeros, which no GEMM writes either. (Fresh GPU memory is not zero.)
  check_cuda_matches_cpu("no input channels, no bias",
                         [](const auto& in) { return conv2d(in[0], in[1], {}, {.padding = 1}); },
                         {randn({2, 0, 5, 5}), randn({4, 0, 3, 3})});
  check_cuda_matches_cpu("no output channels", [](const auto& in) { return conv2d(in[0], in[1]); },
                         {randn({2, 3, 5, 5}), randn({0, 3, 3, 3})});
  check_cuda_matches_cpu(
      "double backward",
      [](const auto& in) {
        const Tensor y = conv2d(in[0], in[1], in[2], {.stride = 2, .padding = 1, .groups = 2});
        const std::vector<Tensor> g = grad({sum(y * y)}, {in[0], in[1]}, {.create_graph = true});
        return g[0] + sum(g[1]);  // input_grad's and weight_grad's own backward both run
      },
      {randn({2, 4, 7, 6}, {.dtype = f64}), randn({6, 2, 3, 3}, {.dtype = f64}), randn({6}, {.dtype = f64})},
      kDoubleTol);
}

// ---- pooling ------------------------------------------------------------------------------

TEST_CASE("[cuda] max_pool2d / max_pool1d match the CPU, overlapping windows included") {
  if (skip_without_gpu()) return;
  for (DType dtype : {f32, f64}) {
    CAPTURE(dtype_name(dtype));
    const TensorOptions o{.dtype = dtype};
    check_cuda_matches_cpu("3x3, stride 2, padding 1 (overlapping)",
                           [](const auto& in) { return max_pool2d(in[0], 3, {.stride = 2, .padding = 1}); },
                           {randn({2, 3, 11, 13}, o)});
    check_cuda_matches_cpu(
        "(3, 2) kernel, stride 1, dilation 2, ceil_mode",
        [](const auto& in) { return max_pool2d(in[0], {3, 2}, {.stride = 1, .dilation = 2, .ceil_mode = true}); },
        {randn({1, 4, 9, 10}, o)});
    check_cuda_matches_cpu("ceil_mode keeps a partial last window",
                           [](const auto& in) { return max_pool2d(in[0], 2, {.ceil_mode = true}); },
                           {randn({3, 7, 9}, o)});
    check_cuda_matches_cpu(
        "1-D: kernel 4, stride 3, padding 2, ceil_mode",
        [](const auto& in) { return max_pool1d(in[0], 4, {.stride = 3, .padding = 2, .ceil_mode = true}); },
        {randn({3, 4, 37}, o)});
    check_cuda_matches_cpu("1-D: dilation 3, stride 1",
                           [](const auto& in) { return max_pool1d(in[0], 3, {.stride = 1, .dilation = 3}); },
                           {randn({2, 5, 29}, o)});
  }
}

TEST_CASE("[cuda] max_pool picks the CPU's element on ties and sums shared maxima") {
  if (skip_without_gpu()) return;
  // Values from {-2, ..., 2}: most windows hold ties, and overlapping windows often share
  // their maximum, whose gradient is then the sum over those windows.
  const Tensor x = randint(-2, 3, {2, 3, 12, 11}).to(f32);
  check_cuda_matches_cpu("ties, stride 1", [](const auto& in) { return max_pool2d(in[0], 3, {.stride = 1}); }, {x});
  check_cuda_matches_cpu("ties, padding", [](const auto& in) { return max_pool2d(in[0], 4, {.stride = 2, .padding = 2}); },
                         {x});
}

TEST_CASE("[cuda] avg_pool2d / avg_pool1d match the CPU, with and without counting the padding") {
  if (skip_without_gpu()) return;
  for (DType dtype : {f32, f64}) {
    CAPTURE(dtype_name(dtype));
    const TensorOptions o{.dtype = dtype};
    for (bool count_include_pad : {true, false}) {
      CAPTURE(count_include_pad);
      check_cuda_matches_cpu("3x3, stride 2, padding 1",
                             [=](const auto& in) {
                               return avg_pool2d(in[0], 3,
                                                 {.stride = 2, .padding = 1, .count_include_pad = count_include_pad});
                             },
                             {randn({2, 3, 11, 13}, o)});
      check_cuda_matches_cpu("(4, 3) kernel, stride 1, ceil_mode",
                             [=](const auto& in) {
                               return avg_pool2d(in[0], {4, 3},
                                                 {.stride = {1, 2},
                                                  .padding = {2, 1},
                                                  .ceil_mode = true,
                                                  .count_include_pad = count_include_pad});
                             },
                             {randn({1, 2, 9, 10}, o)});
      check_cuda_matches_cpu("1-D: kernel 5, stride 3, padding 2, ceil_mode",
                             [=](const auto& in) {
                               return avg_pool1d(in[0], 5,
                                                 {.stride = 3,
                                                  .padding = 2,
                                                  .ceil_mode = true,
                                                  .count_include_pad = count_include_pad});
                             },
                             {randn({3, 4, 37}, o)});
    }
  }
}

TEST_CASE("[cuda] adaptive_avg_pool2d / adaptive_avg_pool1d match the CPU") {
  if (skip_without_gpu()) return;
  for (DType dtype : {f32, f64}) {
    CAPTURE(dtype_name(dtype));
    const TensorOptions o{.dtype = dtype};
    check_cuda_matches_cpu("overlapping windows (10 -> 4, 7 -> 5)",
                           [](const auto& in) { return adaptive_avg_pool2d(in[0], {4, 5}); },
                           {randn({2, 3, 10, 7}, o)});
    check_cuda_matches_cpu("more outputs than inputs (7 -> 9), to 1 (global average)",
                           [](const auto& in) { return adaptive_avg_pool2d(in[0], {1, 9}); }, {randn({3, 5, 7}, o)});
    check_cuda_matches_cpu("1-D: 37 -> 5", [](const auto& in) { return adaptive_avg_pool1d(in[0], 5); },
                           {randn({3, 4, 37}, o)});
    check_cuda_matches_cpu("1-D: 6 -> 11", [](const auto& in) { return adaptive_avg_pool1d(in[0], 11); },
                           {randn({2, 6}, o)});
  }
}

TEST_CASE("[cuda] pools on non-contiguous, large and empty inputs") {
  if (skip_without_gpu()) return;
  check_cuda_matches_cpu("transposed input, max",
                         [](const auto& in) { return max_pool2d(in[0].transpose(2, 3), 3, {.stride = 2}); },
                         {randn({2, 3, 13, 11})});
  check_cuda_matches_cpu("permuted input, avg",
                         [](const auto& in) { return avg_pool1d(in[0].permute({0, 2, 1}), 3, {.stride = 2}); },
                         {randn({2, 31, 5})});
  // Many planes and elements: grids of many blocks.
  check_cuda_matches_cpu("large max", [](const auto& in) { return max_pool2d(in[0], 3, {.stride = 2, .padding = 1}); },
                         {randn({8, 16, 65, 67})});
  check_cuda_matches_cpu("large adaptive", [](const auto& in) { return adaptive_avg_pool2d(in[0], {7, 7}); },
                         {randn({8, 16, 65, 67})});
  check_cuda_matches_cpu("empty batch, max", [](const auto& in) { return max_pool2d(in[0], 2); },
                         {randn({0, 3, 8, 8})});
  check_cuda_matches_cpu("empty batch, avg", [](const auto& in) { return avg_pool2d(in[0], 2); },
                         {randn({0, 3, 8, 8})});
  check_cuda_matches_cpu("empty batch, adaptive", [](const auto& in) { return adaptive_avg_pool1d(in[0], 3); },
                         {randn({0, 3, 8})});
  // Windows that hold no input element write values no input gives: -inf (index -1) for
  // max, 0 for avg; fresh GPU memory is not that. A dilated window whose taps (-1 and 2)
  // both fall in the padding, then an input of length 0.
  const TensorOptions o{.dtype = f64};
  check_cuda_matches_cpu("a window of padding only, max",
                         [](const auto& in) { return max_pool1d(in[0], 2, {.stride = 1, .padding = 1, .dilation = 3}); },
                         {randn({2, 3, 2})});
  check_cuda_matches_cpu("a window of padding only, max, double backward",
                         [](const auto& in) {
                           return gradient_of_square(in[0],
                                                     max_pool1d(in[0], 2, {.stride = 1, .padding = 1, .dilation = 3}));
                         },
                         {randn({2, 3, 2}, o)}, kDoubleTol);
  check_cuda_matches_cpu("length 0, max", [](const auto& in) { return max_pool1d(in[0], 2, {.padding = 1}); },
                         {randn({2, 3, 0})});
  for (bool count_include_pad : {true, false}) {
    CAPTURE(count_include_pad);
    check_cuda_matches_cpu(
        "length 0, avg",
        [=](const auto& in) { return avg_pool1d(in[0], 2, {.padding = 1, .count_include_pad = count_include_pad}); },
        {randn({2, 3, 0})});
  }
}

TEST_CASE("[cuda] pool double backward (the adjoint's own backward) matches the CPU") {
  if (skip_without_gpu()) return;
  const TensorOptions o{.dtype = f64};
  check_cuda_matches_cpu("max",
                         [](const auto& in) {
                           return gradient_of_square(in[0], max_pool2d(in[0], 3, {.stride = 2, .padding = 1}));
                         },
                         {randn({2, 3, 9, 8}, o)}, kDoubleTol);
  check_cuda_matches_cpu("avg",
                         [](const auto& in) {
                           return gradient_of_square(in[0], avg_pool1d(in[0], 3, {.stride = 2, .padding = 1}));
                         },
                         {randn({2, 3, 17}, o)}, kDoubleTol);
  check_cuda_matches_cpu(
      "adaptive", [](const auto& in) { return gradient_of_square(in[0], adaptive_avg_pool2d(in[0], {3, 4})); },
      {randn({2, 2, 7, 9}, o)}, kDoubleTol);
}
