// The elementwise family on CUDA (ops/map.h -> cuda/map.cuh): every unary, binary and
// selection op, the in-place updates and dtype conversions, against the CPU, values and
// gradients, on the layouts that take different kernels (contiguous and vectorised,
// misaligned, one strided dim, N-d broadcast, 0-d, empty, longer than one grid).
#include "cuda_parity.h"

#include <kiln/ops/map.h>

using namespace kiln;
using kiln::testing::check_close;
using kiln::testing::check_cuda_matches_cpu;
using kiln::testing::skip_without_gpu;

namespace {

using Inputs = std::vector<Tensor>;

// Positive inputs for log/sqrt/pow (away from 0, where the derivatives blow up).
Tensor positive(const Shape& shape, DType dtype = f32) { return rand(shape, {.dtype = dtype}) + 0.5; }

}  // namespace

TEST_CASE("[cuda] unary ops match the CPU, values and gradients, f32 and f64") {
  if (skip_without_gpu()) return;
  manual_seed(1);
  struct Case {
    const char* name;
    std::function<Tensor(const Tensor&)> op;
    bool positive_only;
  };
  const std::vector<Case> cases = {
      {"neg", [](const Tensor& x) { return neg(x); }, false},
      {"abs", [](const Tensor& x) { return kiln::abs(x); }, false},
      {"exp", [](const Tensor& x) { return kiln::exp(x); }, false},
      {"log", [](const Tensor& x) { return kiln::log(x); }, true},
      {"log1p", [](const Tensor& x) { return log1p(x); }, true},
      {"sqrt", [](const Tensor& x) { return kiln::sqrt(x); }, true},
      {"rsqrt", [](const Tensor& x) { return rsqrt(x); }, true},
      {"sin", [](const Tensor& x) { return kiln::sin(x); }, false},
      {"cos", [](const Tensor& x) { return kiln::cos(x); }, false},
      {"pow 2.5", [](const Tensor& x) { return kiln::pow(x, 2.5); }, true},
      {"clamp", [](const Tensor& x) { return clamp(x, -0.3, 0.4); }, false},
      {"relu", [](const Tensor& x) { return relu(x); }, false},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, false},
      {"tanh", [](const Tensor& x) { return kiln::tanh(x); }, false},
      {"silu", [](const Tensor& x) { return silu(x); }, false},
      {"softplus", [](const Tensor& x) { return softplus(x, 2.0, 3.0); }, false},
      {"gelu", [](const Tensor& x) { return gelu(x); }, false},
      {"gelu tanh", [](const Tensor& x) { return gelu(x, "tanh"); }, false},
  };
  for (DType dtype : {f32, f64}) {
    for (const Case& c : cases) {
      // 1031 elements: not a multiple of the 4-wide vector loads, so the tail loop runs too.
      const Tensor x = c.positive_only ? positive({1031}, dtype) : randn({1031}, {.dtype = dtype});
      check_cuda_matches_cpu(c.name, [&](const Inputs& in) { return c.op(in[0]); }, {x});
      // A transposed input takes the N-d kernel.
      const Tensor y = c.positive_only ? positive({7, 13}, dtype) : randn({7, 13}, {.dtype = dtype});
      check_cuda_matches_cpu(c.name, [&](const Inputs& in) { return c.op(in[0].t()); }, {y});
    }
  }
}

TEST_CASE("[cuda] binary ops broadcast like the CPU, values and gradients") {
  if (skip_without_gpu()) return;
  manual_seed(2);
  struct Case {
    const char* name;
    std::function<Tensor(const Tensor&, const Tensor&)> op;
  };
  const std::vector<Case> cases = {
      {"add", [](const Tensor& a, const Tensor& b) { return a + b; }},
      {"sub", [](const Tensor& a, const Tensor& b) { return a - b; }},
      {"mul", [](const Tensor& a, const Tensor& b) { return a * b; }},
      {"div", [](const Tensor& a, const Tensor& b) { return a / (kiln::abs(b) + 0.5); }},
      {"pow", [](const Tensor& a, const Tensor& b) { return kiln::pow(kiln::abs(a) + 0.5, b); }},
      {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); }},
      {"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); }},
  };
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{4099}, {4099}},          // contiguous, vectorised with a tail
      {{5, 1, 7}, {3, 1}},       // both sides broadcast: the N-d kernel
      {{6, 9}, {9}},             // a bias row
      {{6, 9}, {}},              // a 0-d scalar (stride 0 everywhere)
      {{2, 3, 4, 5}, {3, 1, 5}}, // 4-D
  };
  for (DType dtype : {f32, f64}) {
    for (const Case& c : cases) {
      for (const auto& [sa, sb] : shapes) {
        CAPTURE(shape_str(sa));
        CAPTURE(shape_str(sb));
        check_cuda_matches_cpu(c.name, [&](const Inputs& in) { return c.op(in[0], in[1]); },
                               {randn(sa, {.dtype = dtype}), randn(sb, {.dtype = dtype})});
      }
    }
  }
  // Ties split the gradient in half on both devices.
  const Tensor tied = full({5}, 2.0);
  check_cuda_matches_cpu("maximum ties", [](const Inputs& in) { return maximum(in[0], in[1]); }, {tied, tied});
}

TEST_CASE("[cuda] i64 arithmetic, comparisons and selection match the CPU") {
  if (skip_without_gpu()) return;
  manual_seed(3);
  const Tensor a = randint(-50, 50, {37, 3}), b = randint(1, 9, {3});
  for (auto op : std::vector<std::function<Tensor(const Tensor&, const Tensor&)>>{
           [](const Tensor& x, const Tensor& y) { return x + y; }, [](const Tensor& x, const Tensor& y) { return x * y; },
           [](const Tensor& x, const Tensor& y) { return x - y; }, [](const Tensor& x, const Tensor& y) { return x / y; },
           [](const Tensor& x, const Tensor& y) { return maximum(x, y); },
           [](const Tensor& x, const Tensor&) { return kiln::abs(x); }, [](const Tensor& x, const Tensor&) { return neg(x); }})
    check_cuda_matches_cpu("i64", [&](const Inputs& in) { return op(in[0], in[1]); }, {a, b}, {0, 0});

  const Tensor x = randn({9, 11}), y = randn({11});
  for (auto cmp : std::vector<Tensor (*)(const Tensor&, const Tensor&)>{eq, ne, lt, le, gt, ge}) {
    check_cuda_matches_cpu("comparison", [&](const Inputs& in) { return cmp(in[0], in[1]); }, {x, y}, {0, 0});
    check_cuda_matches_cpu("comparison with itself", [&](const Inputs& in) { return cmp(in[0], in[0]); }, {x}, {0, 0});
  }
  check_cuda_matches_cpu("where", [](const Inputs& in) { return where(gt(in[0], 0.0), in[0], in[1]); },
                         {randn({4, 1, 6}), randn({5, 6})});
  check_cuda_matches_cpu("masked_fill", [](const Inputs& in) { return masked_fill(in[0], lt(in[1], 0.0), -7.0); },
                         {randn({3, 8}), randn({8})});
  check_cuda_matches_cpu("where on i64", [](const Inputs& in) { return where(gt(in[0], 0), in[0], in[1]); },
                         {randint(-5, 5, {10}), randint(-5, 5, {10})}, {0, 0});
}

TEST_CASE("[cuda] in-place updates and dtype conversions on the GPU") {
  if (skip_without_gpu()) return;
  manual_seed(4);
  const Device gpu = Device::cuda();
  NoGradGuard no_grad;

  Tensor filled = empty({3, 5}, {.device = gpu});
  filled.fill_(2.5);
  check_close(filled.to(Device::cpu()), full({3, 5}, 2.5), 0, 0);
  // fill_ through a strided view touches only the view.
  Tensor rows = zeros({4, 6}, {.device = gpu});
  rows.slice(1, 1, 6, 2).fill_(1.0);
  Tensor expected = zeros({4, 6});
  expected.slice(1, 1, 6, 2).fill_(1.0);
  check_close(rows.to(Device::cpu()), expected, 0, 0);

  // add_ with broadcasting, mul_, copy_ (same device, across devices, converting).
  const Tensor base = randn({6, 7}), row = randn({7});
  Tensor on_gpu = base.to(gpu);
  on_gpu.add_(row.to(gpu), -0.5).mul_(3.0);
  Tensor on_cpu = base.clone();
  on_cpu.add_(row, -0.5).mul_(3.0);
  check_close(on_gpu.to(Device::cpu()), on_cpu, 1e-6, 1e-6);
  Tensor target = zeros({6, 7}, {.device = gpu});
  target.copy_(base);  // from the CPU
  check_close(target.to(Device::cpu()), base, 0, 0);
  Tensor as_f64 = zeros({7, 6}, {.dtype = f64, .device = gpu});
  as_f64.copy_(on_gpu.t());  // transposed and converted on the GPU
  check_close(as_f64.to(Device::cpu()), on_cpu.t().to(f64), 0, 0);

  // Conversions between every pair of dtypes give the CPU's values (bf16/f16 rounding,
  // bool as "non-zero", i64 truncation).
  const Tensor values = randn({257}) * 100.0;
  for (DType from : {f32, f64, i64, bf16, f16, b8}) {
    const Tensor source = values.to(from);
    for (DType to : {f32, f64, i64, bf16, f16, b8}) {
      CAPTURE(dtype_name(from));
      CAPTURE(dtype_name(to));
      const Tensor got = source.to(gpu).to(to).to(Device::cpu());
      CHECK(got.dtype() == to);
      CHECK(got.to(f64).to_vector<double>() == source.to(to).to(f64).to_vector<double>());
    }
  }
}

TEST_CASE("[cuda] elementwise edge cases: empty, 0-d, longer than one grid, misaligned views") {
  if (skip_without_gpu()) return;
  manual_seed(5);
  check_cuda_matches_cpu("empty", [](const Inputs& in) { return kiln::exp(in[0]) + in[0]; }, {randn({0, 5})});
  check_cuda_matches_cpu("0-d", [](const Inputs& in) { return in[0] * in[0]; }, {scalar_tensor(1.5)});
  // A transposed 5000 x 4000 takes the N-d kernel; its 20M elements outnumber the grid's
  // 65535 blocks x 256 threads, so each thread's grid-stride loop goes round twice.
  check_cuda_matches_cpu("longer than one grid", [](const Inputs& in) { return in[0].t() * 2.0; },
                         {randn({5000, 4000})}, {1e-6, 1e-6});
  // A view starting one float in: not 16-byte aligned, so not vectorised.
  check_cuda_matches_cpu("misaligned", [](const Inputs& in) { return sigmoid(in[0].slice(0, 1, 1001)); },
                         {randn({1001})});
}

TEST_CASE("[cuda] a map without a GPU kernel, or too many dims, is a clear error") {
  if (skip_without_gpu()) return;
  const Tensor x = randn({4}).to(Device::cuda());
  // A lambda is CPU-only: the map says so instead of failing to link.
  CHECK_THROWS_KILN(ops::map_unary("my_op", x, [](auto v) { return v * 2; }), "my_op: f32[4]@cuda:0 is on a GPU, but this map has no GPU kernel");
  // Nine dims that cannot merge (every other element of each).
  const Tensor wide = randn(Shape(9, 3)).to(Device::cuda());
  Tensor strided = wide;
  for (int64_t d = 0; d < 9; ++d) strided = strided.slice(d, 0, 3, 2);
  CHECK_THROWS_KILN(kiln::exp(strided), "at most 8 are supported");
}
