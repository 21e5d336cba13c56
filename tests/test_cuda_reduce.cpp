// Reductions on CUDA tensors against the CPU (values and gradients): sum, mean, max,
// min, argmax, argmin, var, std, logsumexp, norm and sum_to, over every dim subset of a
// non-contiguous 4-D tensor, on long rows and columns that take the two-pass (chunked)
// path, on empty tensors, and with NaN and infinities. GPU cases skip with a printed
// reason when no GPU is visible.
#include "cuda_parity.h"

#include <cmath>
#include <limits>

using namespace kiln;
using kiln::testing::check_cuda_matches_cpu;
using kiln::testing::ParityTolerance;
using kiln::testing::skip_without_gpu;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// The fns below read their input through this permutation, so the GPU kernels see a
// non-contiguous view: (5, 3, 7, 4) -> (7, 5, 4, 3).
Tensor strided(const Tensor& t) { return t.permute({2, 0, 3, 1}); }

// Every non-empty subset of {0, 1, 2, 3}.
std::vector<Dims> dim_subsets() {
  std::vector<Dims> subsets;
  for (int mask = 1; mask < 16; ++mask) {
    Dims dims;
    for (int d = 0; d < 4; ++d)
      if (mask & (1 << d)) dims.push_back(d);
    subsets.push_back(dims);
  }
  return subsets;
}

// Sums are accumulated in float on the GPU and in double on the CPU.
constexpr ParityTolerance kSumTolerance{.atol = 1e-4, .rtol = 1e-4};

}  // namespace

TEST_CASE("[cuda] sum and mean over every dim subset of a non-contiguous 4-D tensor, keepdim both ways") {
  if (skip_without_gpu()) return;
  for (DType dtype : {f32, f64}) {
    const Tensor x = randn({5, 3, 7, 4}, {.dtype = dtype});
    for (const Dims& dims : dim_subsets())
      for (bool keepdim : {false, true}) {
        CAPTURE(shape_str(dims));
        CAPTURE(keepdim);
        check_cuda_matches_cpu("sum", [&](const auto& in) { return sum(strided(in[0]), dims, keepdim); }, {x},
                               kSumTolerance);
        check_cuda_matches_cpu("mean", [&](const auto& in) { return mean(strided(in[0]), dims, keepdim); }, {x},
                               kSumTolerance);
      }
    check_cuda_matches_cpu("sum all", [](const auto& in) { return sum(strided(in[0])); }, {x}, kSumTolerance);
    check_cuda_matches_cpu("mean all", [](const auto& in) { return mean(in[0]); }, {x}, kSumTolerance);
  }
}

TEST_CASE("[cuda] var, std, logsumexp and norms over dim subsets of a non-contiguous tensor") {
  if (skip_without_gpu()) return;
  for (DType dtype : {f32, f64}) {
    const Tensor x = randn({5, 3, 7, 4}, {.dtype = dtype});
    for (const Dims& dims : dim_subsets())
      for (bool keepdim : {false, true}) {
        CAPTURE(shape_str(dims));
        CAPTURE(keepdim);
        for (int64_t correction : {0, 1}) {
          check_cuda_matches_cpu("var", [&](const auto& in) { return var(strided(in[0]), dims, correction, keepdim); },
                                 {x}, kSumTolerance);
          check_cuda_matches_cpu(
              "std", [&](const auto& in) { return kiln::std(strided(in[0]), dims, correction, keepdim); }, {x},
              kSumTolerance);
        }
        check_cuda_matches_cpu("logsumexp", [&](const auto& in) { return logsumexp(strided(in[0]), dims, keepdim); },
                               {x}, kSumTolerance);
        for (double p : {1.0, 2.0, kInf, 3.0, 0.5}) {
          CAPTURE(p);
          check_cuda_matches_cpu("norm", [&](const auto& in) { return norm(strided(in[0]), p, dims, keepdim); },
                                 {x}, {.atol = 1e-4, .rtol = 1e-3});
        }
      }
  }
}

TEST_CASE("[cuda] max, min, argmax, argmin along every dim, with ties, and over everything") {
  if (skip_without_gpu()) return;
  for (DType dtype : {f32, f64}) {
    // Small integers: many ties, so "first occurrence" and the even split are exercised.
    const Tensor x = randint(-3, 4, {5, 3, 7, 4}).to(dtype);
    for (int64_t dim = -4; dim < 4; ++dim)
      for (bool keepdim : {false, true}) {
        CAPTURE(dim);
        CAPTURE(keepdim);
        check_cuda_matches_cpu("max", [&](const auto& in) { return max(strided(in[0]), dim, keepdim); }, {x});
        check_cuda_matches_cpu("min", [&](const auto& in) { return min(strided(in[0]), dim, keepdim); }, {x});
        check_cuda_matches_cpu("argmax", [&](const auto& in) { return argmax(strided(in[0]), dim, keepdim); }, {x});
        check_cuda_matches_cpu("argmin", [&](const auto& in) { return argmin(strided(in[0]), dim, keepdim); }, {x});
      }
    check_cuda_matches_cpu("max all", [](const auto& in) { return max(strided(in[0])); }, {x});
    check_cuda_matches_cpu("min all", [](const auto& in) { return min(strided(in[0])); }, {x});
    check_cuda_matches_cpu("inf-norm ties", [](const auto& in) { return norm(strided(in[0]), kInf, {0, 2}); }, {x});
  }
  // i64 values (no gradients).
  const Tensor ints = randint(-50, 50, {6, 9});
  check_cuda_matches_cpu("i64 max", [](const auto& in) { return max(in[0], 1); }, {ints});
  check_cuda_matches_cpu("i64 argmin", [](const auto& in) { return argmin(in[0], 0); }, {ints});
  check_cuda_matches_cpu("i64 sum", [](const auto& in) { return sum(in[0], {0}); }, {ints});
  check_cuda_matches_cpu("bool sum", [](const auto& in) { return sum(gt(in[0], 0.0), {1}); }, {ints.to(f32)});
}

TEST_CASE("[cuda] long rows, long columns and full reductions (the two-pass path), odd sizes") {
  if (skip_without_gpu()) return;
  for (DType dtype : {f32, f64}) {
    CAPTURE(dtype_name(dtype));
    for (const Shape& shape : {Shape{3, 4099}, Shape{7, 1000}, Shape{1, 1}, Shape{1, 300001}, Shape{20011, 3},
                               Shape{4099, 33}, Shape{2, 70001, 3}}) {
      CAPTURE(shape_str(shape));
      const Tensor x = randn(shape, {.dtype = dtype});
      const int64_t last = static_cast<int64_t>(shape.size()) - 1;
      for (const Dims& dims : {Dims{last}, Dims{0}, Dims{}}) {
        CAPTURE(shape_str(dims));
        const ParityTolerance loose{.atol = 1e-3, .rtol = 1e-4};
        check_cuda_matches_cpu("sum", [&](const auto& in) { return sum(in[0], dims); }, {x}, loose);
        check_cuda_matches_cpu("var", [&](const auto& in) { return var(in[0], dims, 0); }, {x}, loose);
        check_cuda_matches_cpu("logsumexp", [&](const auto& in) { return logsumexp(in[0], dims); }, {x}, loose);
        check_cuda_matches_cpu("norm", [&](const auto& in) { return norm(in[0], 2.0, dims); }, {x}, loose);
      }
      check_cuda_matches_cpu("max all", [](const auto& in) { return max(in[0]); }, {x});
      check_cuda_matches_cpu("argmax", [&](const auto& in) { return argmax(in[0], 0); }, {x});
      check_cuda_matches_cpu("argmin", [&](const auto& in) { return argmin(in[0], last); }, {x});
    }
  }
}

TEST_CASE("[cuda] sum_to, the broadcast-gradient reduction") {
  if (skip_without_gpu()) return;
  const Tensor x = randn({4, 5, 6, 3});
  for (const Shape& to : {Shape{5, 1, 3}, Shape{1, 6, 1}, Shape{4, 1, 1, 3}, Shape{3}, Shape{1}, Shape{},
                          Shape{4, 5, 6, 3}, Shape{6, 3}}) {
    CAPTURE(shape_str(to));
    check_cuda_matches_cpu("sum_to", [&](const auto& in) { return sum_to(in[0], to); }, {x}, kSumTolerance);
    check_cuda_matches_cpu("sum_to of a transposed view",
                           [&](const auto& in) { return sum_to(in[0].transpose(0, 3).transpose(0, 3), to); }, {x},
                           kSumTolerance);
  }
  // A bias gradient: (B*T, C) rows summed to (C): many rows, few columns.
  const Tensor rows = randn({8192, 77});
  check_cuda_matches_cpu("bias gradient", [](const auto& in) { return sum_to(in[0], {77}); }, {rows},
                         {.atol = 1e-3, .rtol = 1e-4});
}

TEST_CASE("[cuda] empty reductions and NaN / inf inputs behave as on the CPU") {
  if (skip_without_gpu()) return;
  const Tensor none = randn({0, 5});
  check_cuda_matches_cpu("sum over the empty dim", [](const auto& in) { return sum(in[0], {0}); }, {none});
  check_cuda_matches_cpu("sum over the other dim", [](const auto& in) { return sum(in[0], {1}); }, {none});
  check_cuda_matches_cpu("sum of nothing", [](const auto& in) { return sum(in[0]); }, {none});
  check_cuda_matches_cpu("logsumexp of nothing", [](const auto& in) { return logsumexp(in[0], {0}); }, {none});
  check_cuda_matches_cpu("norm of nothing", [](const auto& in) { return norm(in[0], 2.0, {0}); }, {none});
  check_cuda_matches_cpu("inf-norm of nothing", [](const auto& in) { return norm(in[0], kInf, {0}); }, {none});
  // Empty rows (the row kernel, innermost kept size 1): each output is the fold's identity.
  const Tensor empty_rows = randn({5, 0});
  check_cuda_matches_cpu("logsumexp of empty rows", [](const auto& in) { return logsumexp(in[0], {1}); }, {empty_rows});
  check_cuda_matches_cpu("inf-norm of empty rows", [](const auto& in) { return norm(in[0], kInf, {1}); }, {empty_rows});
  check_cuda_matches_cpu("2-norm of empty rows", [](const auto& in) { return norm(in[0], 2.0, {1}); }, {empty_rows});

  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor special = from_vector<double>({1, nan, 3, -kInf, -kInf, -kInf, kInf, 2, -1, 4, 4, nan}, {4, 3});
  for (DType dtype : {f32, f64}) {
    const Tensor x = special.to(dtype);
    check_cuda_matches_cpu("max", [](const auto& in) { return max(in[0], 1); }, {x});
    check_cuda_matches_cpu("argmax", [](const auto& in) { return argmax(in[0], 1); }, {x});
    check_cuda_matches_cpu("argmin", [](const auto& in) { return argmin(in[0], 0); }, {x});
    check_cuda_matches_cpu("min all", [](const auto& in) { return min(in[0]); }, {x});
    check_cuda_matches_cpu("logsumexp", [](const auto& in) { return logsumexp(in[0], {1}); }, {x});
    check_cuda_matches_cpu("inf-norm", [](const auto& in) { return norm(in[0], kInf, {1}); }, {x});
  }
  // Gradients at the singular points are 0 on both devices: norm at 0, std of a constant.
  const Tensor zeros_row = from_vector<double>({3, -3, 1, 0, 0, 0}, {2, 3});
  for (double p : {1.0, 2.0, kInf, 0.5, 3.0})
    check_cuda_matches_cpu("norm at zero", [&](const auto& in) { return norm(in[0], p, {1}); }, {zeros_row});
  check_cuda_matches_cpu("std of a constant row", [](const auto& in) { return kiln::std(in[0], {1}); },
                         {from_vector<double>({3, -4, 1, 2, 2, 2}, {2, 3})});
}
