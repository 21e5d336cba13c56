// ContextPool on CUDA against the CPU kernels (cuda_parity.h): y and the gradients to
// x, m and s, for the 1-D op (causal and not, strided), every ablation's inputs, the 2-D
// op, windows wider than one block's tile, odd sizes, empty sizes and double backward.
// Every case skips with a printed reason when no GPU is visible.
#include <limits>

#include "cuda_parity.h"

using namespace kiln;
using kiln::testing::check_cuda_matches_cpu;
using kiln::testing::ParityTolerance;
using kiln::testing::skip_without_gpu;

namespace {

constexpr ParityTolerance kFloatTol{.atol = 2e-4, .rtol = 2e-4};
constexpr ParityTolerance kDoubleTol{.atol = 1e-10, .rtol = 1e-10};
constexpr double kInf = std::numeric_limits<double>::infinity();

ParityTolerance tolerance_for(DType dtype) { return dtype == f64 ? kDoubleTol : kFloatTol; }

// x ~ N(0, 1), m in (0.05, 0.95) (a sigmoid's range), s in (0.3, 3): the op's inputs for
// tokens of shape `tokens` ((B, n) or (B, H, W)) with d channels and outputs `outputs`.
std::vector<Tensor> random_inputs(const Shape& tokens, int64_t d, const Shape& outputs, DType dtype) {
  Shape x_shape = tokens;
  x_shape.push_back(d);
  const TensorOptions o{.dtype = dtype};
  return {randn(x_shape, o), uniform(0.05, 0.95, tokens, o), uniform(0.3, 3.0, outputs, o)};
}

void check_1d(const std::string& name, const std::vector<Tensor>& inputs, const ContextPoolOptions& options,
              ParityTolerance tol) {
  check_cuda_matches_cpu(name, [options](const auto& in) { return context_pool(in[0], in[1], in[2], options); },
                         inputs, tol);
}

void check_2d(const std::string& name, const std::vector<Tensor>& inputs, const ContextPoolOptions& options,
              ParityTolerance tol) {
  check_cuda_matches_cpu(name, [options](const auto& in) { return context_pool2d(in[0], in[1], in[2], options); },
                         inputs, tol);
}

}  // namespace

TEST_CASE("[cuda] context_pool (1-D) matches the CPU: causal and not, explicit and derived windows") {
  if (skip_without_gpu()) return;
  for (DType dtype : {f32, f64}) {
    for (bool causal : {false, true}) {
      for (int64_t window : {0, 4}) {
        CAPTURE(dtype_name(dtype));
        CAPTURE(causal);
        CAPTURE(window);
        check_1d("n = 37, d = 19, B = 2", random_inputs({2, 37}, 19, {2, 37}, dtype),
                 {.causal = causal, .window = window}, tolerance_for(dtype));
        check_1d("stride 2 (s per output token)", random_inputs({3, 37}, 19, {3, 19}, dtype),
                 {.causal = causal, .window = window, .stride = 2}, tolerance_for(dtype));
      }
    }
  }
}

TEST_CASE("[cuda] context_pool: eps, windows wider than the sequence, one token, long rows") {
  if (skip_without_gpu()) return;
  check_1d("eps = 0.5", random_inputs({2, 13}, 5, {2, 13}, f32), {.window = 3, .eps = 0.5}, kFloatTol);
  check_1d("window 100 on 13 tokens", random_inputs({2, 13}, 7, {2, 13}, f32), {.causal = true, .window = 100},
           kFloatTol);
  check_1d("one token", random_inputs({3, 1}, 4, {3, 1}, f32), {.window = 2}, kFloatTol);
  check_1d("d = 1", random_inputs({2, 9}, 1, {2, 9}, f32), {.window = 2}, kFloatTol);
  // d beyond one block's threads, and 81-cell windows over 700 tokens.
  check_1d("n = 700, d = 300, window 40", random_inputs({2, 700}, 300, {2, 700}, f32), {.window = 40}, kFloatTol);
  check_1d("causal, n = 700, d = 300, window 40", random_inputs({1, 700}, 300, {1, 700}, f32),
           {.causal = true, .window = 40}, kFloatTol);
}

TEST_CASE("[cuda] context_pool: every ablation's inputs (uniform, fixed size, weights only, size only)") {
  if (skip_without_gpu()) return;
  for (DType dtype : {f32, f64}) {
    CAPTURE(dtype_name(dtype));
    const TensorOptions o{.dtype = dtype};
    const ParityTolerance tol = tolerance_for(dtype);
    const Tensor x = randn({2, 23, 11}, o), m = uniform(0.05, 0.95, {2, 23}, o);
    // uniform: m = 1 and s = +inf, a flat window (ds is 0 in the limit).
    check_1d("uniform", {x, ones({2, 23}, o), full({2, 23}, kInf, o)}, {.window = 3}, tol);
    check_1d("uniform, causal", {x, ones({2, 23}, o), full({2, 23}, kInf, o)}, {.causal = true, .window = 3}, tol);
    // fixed_size / weights_only: learned m, constant s.
    check_1d("constant s", {x, m, full({2, 23}, 1.5, o)}, {.window = 5}, tol);
    // size_only: m = 1, learned s.
    check_1d("m = 1", {x, ones({2, 23}, o), uniform(0.3, 3.0, {2, 23}, o)}, {.causal = true, .window = 6}, tol);
  }
}

TEST_CASE("[cuda] context_pool2d matches the CPU") {
  if (skip_without_gpu()) return;
  for (DType dtype : {f32, f64}) {
    CAPTURE(dtype_name(dtype));
    const ParityTolerance tol = tolerance_for(dtype);
    check_2d("7 x 9 grid, d = 19, window 3", random_inputs({2, 7, 9}, 19, {2, 7, 9}, dtype), {.window = 3}, tol);
    check_2d("stride 2 (4 x 5 outputs)", random_inputs({2, 7, 9}, 19, {2, 4, 5}, dtype), {.window = 2, .stride = 2},
             tol);
    check_2d("stride 3, window from s", random_inputs({1, 8, 5}, 6, {1, 3, 2}, dtype), {.stride = 3}, tol);
    check_2d("one row (1 x 11)", random_inputs({2, 1, 11}, 3, {2, 1, 11}, dtype), {.window = 2}, tol);
  }
  // 17 x 17 = 289 window cells: more than one tile of the forward's shared weights.
  check_2d("20 x 20 grid, window 8, d = 300", random_inputs({1, 20, 20}, 300, {1, 20, 20}, f32), {.window = 8},
           kFloatTol);
  check_2d("uniform 2-D", {randn({2, 6, 5, 4}), ones({2, 6, 5}), full({2, 6, 5}, kInf)}, {.window = 1}, kFloatTol);
}

TEST_CASE("[cuda] context_pool on non-contiguous inputs") {
  if (skip_without_gpu()) return;
  check_cuda_matches_cpu(
      "transposed x, strided m, transposed s",
      [](const auto& in) {
        return context_pool(in[0].transpose(1, 2), in[1].slice(1, 0, 30, 2), in[2].t(), {.window = 3, .stride = 2});
      },
      {randn({2, 9, 15}), uniform(0.05, 0.95, {2, 30}), uniform(0.3, 3.0, {8, 2})}, kFloatTol);
  check_cuda_matches_cpu(
      "permuted 2-D x",
      [](const auto& in) { return context_pool2d(in[0].permute({0, 2, 1, 3}), in[1], in[2], {.window = 2}); },
      {randn({2, 5, 6, 7}), uniform(0.05, 0.95, {2, 6, 5}), uniform(0.3, 3.0, {2, 6, 5})}, kFloatTol);
}

TEST_CASE("[cuda] context_pool with empty sizes") {
  if (skip_without_gpu()) return;
  check_1d("B = 0", random_inputs({0, 5}, 3, {0, 5}, f32), {.window = 2}, kFloatTol);
  check_1d("n = 0", random_inputs({2, 0}, 3, {2, 0}, f32), {.window = 2}, kFloatTol);
  check_1d("d = 0", random_inputs({2, 5}, 0, {2, 5}, f32), {.window = 2}, kFloatTol);
  check_2d("d = 0, 2-D", random_inputs({1, 3, 4}, 0, {1, 3, 4}, f32), {.window = 1}, kFloatTol);
}

TEST_CASE("[cuda] context_pool double backward (the composite backward) matches the CPU") {
  if (skip_without_gpu()) return;
  check_cuda_matches_cpu(
      "d(sum(y^2))/d(x, m, s) with create_graph",
      [](const auto& in) {
        const Tensor y = context_pool(in[0], in[1], in[2], {.causal = true, .window = 2});
        const std::vector<Tensor> g = grad({sum(y * y)}, {in[0], in[1], in[2]}, {.create_graph = true});
        return sum(g[0]) + sum(g[1]) + sum(g[2]);
      },
      random_inputs({2, 7}, 3, {2, 7}, f64), kDoubleTol);
}

TEST_CASE("[cuda] a bad support size is a kiln::Error: at once with window 0, at the next sync with a window") {
  if (skip_without_gpu()) return;
  const Device gpu = Device::cuda();
  const Tensor x = randn({2, 9, 4}).to(gpu), m = ones({2, 9}).to(gpu);
  Tensor s = full({2, 9}, 1.5);
  s.narrow(1, 4, 1).fill_(-0.5);  // flat index 4
  // window = 0 reads s on the host to size the window, so it refuses before any kernel.
  CHECK_THROWS_KILN(context_pool(x, m, s.to(gpu)), "context_pool: support sizes s must be > 0");
  // With a window nothing is read on the host: a check kernel reports it at the next sync.
  const Tensor y = context_pool(x, m, s.to(gpu), {.window = 3});
  CHECK_THROWS_KILN(y.to(Device::cpu()),
                    "context_pool: support size s -0.5 at position 4 must be > 0 (and not NaN)");
  s.narrow(1, 4, 1).fill_(std::numeric_limits<double>::quiet_NaN());
  const Tensor s2d = s.view({2, 3, 3}).narrow(0, 0, 1).to(gpu);  // the NaN at (0, 1, 1), flat index 4
  (void)context_pool2d(randn({1, 3, 3, 4}).to(gpu), ones({1, 3, 3}).to(gpu), s2d, {.window = 2});
  CHECK_THROWS_KILN(cuda::synchronize(0), "context_pool2d: support size s nan at position 4");
  // Good sizes pass, and the report was cleared by the throws.
  CHECK_NOTHROW(context_pool(x, m, full({2, 9}, 1.5).to(gpu), {.window = 3}).to(Device::cpu()));
}
