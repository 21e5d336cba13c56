// Reductions: values against PyTorch (tests/golden/gen_reduce.py) over all, one,
// negative and scattered dims, keepdim, permuted views; 0-d, empty and i64 inputs; NaN
// and infinities; large inputs through the parallel kernels against a naive reference;
// the gradient conventions at ties and singular points; gradcheck (first and second
// order); sum_to; error messages.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "golden/reduce_golden.h"
#include "helpers.h"

using namespace kiln;
using namespace kiln::testing;
namespace gold = golden::reduce;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The golden input: f64 (2, 3, 4), and the same data permuted to (4, 2, 3).
Tensor golden_x() { return from_vector(gold::x, {2, 3, 4}); }
Tensor golden_xp() { return golden_x().permute({2, 0, 1}); }

void check_golden(const Tensor& t, const Shape& shape, const std::vector<double>& expected) {
  CHECK(t.shape() == shape);
  check_values(t, expected, 1e-12, 1e-12);
}

// ---- a naive reference: gather each output's slice, then reduce it with plain code ----

std::vector<std::vector<double>> slices_of(const Tensor& x, const Dims& dims) {
  const std::vector<double> v = x.to_vector<double>();
  const int64_t n = x.dim();
  std::vector<bool> reduced(n, dims.empty());  // empty dims: all of them
  for (int64_t d : dims) reduced[(d + n) % n] = true;
  int64_t outputs = 1;
  for (int64_t d = 0; d < n; ++d)
    if (!reduced[d]) outputs *= x.shape()[d];
  std::vector<std::vector<double>> slices(outputs);
  std::vector<int64_t> index(n, 0);
  for (size_t k = 0; k < v.size(); ++k) {
    int64_t out = 0;
    for (int64_t d = 0; d < n; ++d)
      if (!reduced[d]) out = out * x.shape()[d] + index[d];
    slices[out].push_back(v[k]);
    for (int64_t d = n - 1; d >= 0 && ++index[d] == x.shape()[d]; --d) index[d] = 0;  // next row-major index
  }
  return slices;
}

std::vector<double> reference(const Tensor& x, const Dims& dims,
                              const std::function<double(const std::vector<double>&)>& f) {
  std::vector<double> out;
  for (const auto& s : slices_of(x, dims)) out.push_back(f(s));
  return out;
}

double ref_sum(const std::vector<double>& s) {
  double a = 0;
  for (double v : s) a += v;
  return a;
}
double ref_max(const std::vector<double>& s) { return *std::max_element(s.begin(), s.end()); }
double ref_argmin(const std::vector<double>& s) {
  return static_cast<double>(std::min_element(s.begin(), s.end()) - s.begin());
}
double ref_var(const std::vector<double>& s) {
  const double m = ref_sum(s) / static_cast<double>(s.size());
  double a = 0;
  for (double v : s) a += (v - m) * (v - m);
  return a / static_cast<double>(s.size() - 1);
}
double ref_logsumexp(const std::vector<double>& s) {
  double a = 0;
  for (double v : s) a += std::exp(v);
  return std::log(a);
}
double ref_norm3(const std::vector<double>& s) {
  double a = 0;
  for (double v : s) a += std::pow(std::fabs(v), 3.0);
  return std::cbrt(a);
}

// The gradient of sum(f(x) * w) for a fixed w, with create_graph so it can be
// differentiated again: gradcheck of this checks the second derivative. gradcheck also
// evaluates it under NoGradGuard on plain copies of x; there the inner gradient still
// needs grad mode and a leaf to differentiate against.
Tensor gradient_of(const std::function<Tensor(const Tensor&)>& f, const Tensor& x) {
  GradModeGuard grad_mode(true);
  const bool outer = x.requires_grad();
  const Tensor leaf = outer ? x : x.detach().requires_grad_();
  const Tensor y = f(leaf);
  const Tensor w = cos(arange(0, static_cast<double>(y.numel()), 1, {.dtype = f64}).reshape(y.shape()));
  return grad({sum(y * w)}, {leaf}, {.create_graph = outer})[0];
}

}  // namespace

// ---- forward values against PyTorch --------------------------------------------------------

TEST_CASE("sum and mean match PyTorch over all, scattered, negative and kept dims") {
  const Tensor x = golden_x();
  check_golden(sum(x), {}, gold::sum_all);
  check_golden(sum(x, {0, 2}), {3}, gold::sum_d02);
  check_golden(sum(x, {1}, true), {2, 1, 4}, gold::sum_d1_keep);
  check_golden(sum(x, {-1}), {2, 3}, gold::sum_dneg1);
  check_golden(sum(x, {2, 0}), {3}, gold::sum_d02);  // dims in any order
  check_golden(sum(x, {}, true), {1, 1, 1}, gold::sum_all);
  check_golden(mean(x), {}, gold::mean_all);
  check_golden(mean(x, {0, 2}), {3}, gold::mean_d02);
  check_golden(mean(x, {1}, true), {2, 1, 4}, gold::mean_d1_keep);
}

TEST_CASE("max, min, argmax and argmin match PyTorch") {
  const Tensor x = golden_x();
  check_golden(max(x), {}, gold::max_all);
  check_golden(min(x), {}, gold::min_all);
  check_golden(max(x, 1), {2, 4}, gold::max_d1);
  check_golden(argmax(x, 1), {2, 4}, gold::max_d1_index);
  check_golden(min(x, 0, true), {1, 3, 4}, gold::min_d0_keep);
  check_golden(argmin(x, 0, true), {1, 3, 4}, gold::min_d0_keep_index);
  check_golden(max(x, -1), {2, 3}, gold::max_dneg1);
  check_golden(argmax(x, 2), {2, 3}, gold::argmax_d2);
  check_golden(argmin(x, 0), {3, 4}, gold::argmin_d0);
  check_golden(argmax(x, 1, true), {2, 1, 4}, gold::argmax_d1_keep);
  CHECK(argmax(x, 2).dtype() == i64);
}

TEST_CASE("var and std match PyTorch for several corrections") {
  const Tensor x = golden_x();
  check_golden(var(x, {0, 2}), {3}, gold::var_d02);
  check_golden(var(x, {1}, 0, true), {2, 1, 4}, gold::var_d1_c0_keep);
  check_golden(var(x, {}), {}, gold::var_all);
  check_golden(var(x, {2}, 2), {2, 3}, gold::var_d2_c2);
  check_golden(kiln::std(x, {2}), {2, 3}, gold::std_d2);
  check_golden(kiln::std(x, {0, 2}, 0, true), {1, 3, 1}, gold::std_d02_c0_keep);
  check_golden(kiln::std(x, {}), {}, gold::std_all);
}

TEST_CASE("logsumexp matches PyTorch") {
  const Tensor x = golden_x();
  check_golden(logsumexp(x, {1}), {2, 4}, gold::logsumexp_d1);
  check_golden(logsumexp(x, {0, 2}), {3}, gold::logsumexp_d02);
  check_golden(logsumexp(x, {}), {}, gold::logsumexp_all);
  check_golden(logsumexp(x, {-1}, true), {2, 3, 1}, gold::logsumexp_dneg1_keep);
}

TEST_CASE("norm matches PyTorch for p = 1, 2, inf, 3 and 0.5") {
  const Tensor x = golden_x();
  check_golden(norm(x, 1), {}, gold::norm1_all);
  check_golden(norm(x), {}, gold::norm2_all);
  check_golden(norm(x, kInf), {}, gold::norminf_all);
  check_golden(norm(x, 3), {}, gold::norm3_all);
  check_golden(norm(x, 0.5), {}, gold::norm_half_all);
  check_golden(norm(x, 1, {0, 2}), {3}, gold::norm1_d02);
  check_golden(norm(x, 2, {0, 2}), {3}, gold::norm2_d02);
  check_golden(norm(x, kInf, {0, 2}), {3}, gold::norminf_d02);
  check_golden(norm(x, 3, {1}, true), {2, 1, 4}, gold::norm3_d1_keep);
  check_golden(norm(x, 0.5, {2}), {2, 3}, gold::norm_half_d2);
}

TEST_CASE("reductions of a permuted, non-contiguous view match PyTorch") {
  const Tensor xp = golden_xp();
  REQUIRE_FALSE(xp.is_contiguous());
  check_golden(sum(xp, {0, 2}), {2}, gold::perm_sum_d02);
  check_golden(sum(xp, {1}), {4, 3}, gold::perm_sum_d1);
  check_golden(mean(xp, {0}), {2, 3}, gold::perm_mean_d0);
  check_golden(max(xp, 0), {2, 3}, gold::perm_max_d0);
  check_golden(argmax(xp, 0), {2, 3}, gold::perm_max_d0_index);
  check_golden(min(xp, 2, true), {4, 2, 1}, gold::perm_min_d2_keep);
  check_golden(argmax(xp, 2), {4, 2}, gold::perm_argmax_d2);
  check_golden(var(xp, {1}), {4, 3}, gold::perm_var_d1);
  check_golden(kiln::std(xp, {0, 2}), {2}, gold::perm_std_d02);
  check_golden(logsumexp(xp, {0, 2}), {2}, gold::perm_logsumexp_d02);
  check_golden(norm(xp, 2, {1, 2}), {4}, gold::perm_norm2_d12);
  check_golden(norm(xp, 3, {0}), {2, 3}, gold::perm_norm3_d0);
  check_values(golden_x(), gold::x, 0, 0);  // the input is untouched
}

TEST_CASE("any strided input reduces like its contiguous copy, into a contiguous result") {
  manual_seed(10);
  const Tensor base = randn({4, 5, 6, 3}, {.dtype = f64});
  const std::vector<Tensor> views = {
      base.permute({2, 0, 3, 1}),                     // dense, read in memory order
      base.transpose(0, 3),                           // dense
      base.slice(1, 0, 5, 2),                         // strided: copied
      base.select(3, 1).unsqueeze(1).expand({4, 2, 5, 6}),  // a stride-0 dim: copied
  };
  for (const Tensor& v : views) {
    CAPTURE(shape_str(v.shape()));
    CAPTURE(shape_str(v.strides()));
    const Tensor c = v.contiguous();
    for (const Dims& dims : {Dims{0}, Dims{1}, Dims{3}, Dims{0, 2}, Dims{1, 3}, Dims{0, 1, 3}, Dims{}}) {
      CAPTURE(shape_str(dims));
      for (bool keepdim : {false, true}) {
        const Tensor r = sum(v, dims, keepdim);
        CHECK(r.is_contiguous());
        check_close(r, sum(c, dims, keepdim), 1e-12, 1e-12);
        check_close(var(v, dims, 1, keepdim), var(c, dims, 1, keepdim), 1e-12, 1e-12);
        check_close(logsumexp(v, dims, keepdim), logsumexp(c, dims, keepdim), 1e-12, 1e-12);
        check_close(norm(v, 3, dims, keepdim), norm(c, 3, dims, keepdim), 1e-12, 1e-12);
      }
    }
    for (int64_t dim = 0; dim < 4; ++dim) {
      check_close(max(v, dim), max(c, dim), 0, 0);
      check_close(argmin(v, dim, true), argmin(c, dim, true), 0, 0);
    }
  }
}

TEST_CASE("f32 reductions agree with f64") {
  const Tensor x64 = golden_x(), x32 = x64.to(f32);
  const double tol = 1e-5;
  CHECK(sum(x32, {1}).dtype() == f32);
  check_close(sum(x32, {0, 2}), sum(x64, {0, 2}).to(f32), tol, tol);
  check_close(mean(x32, {1}), mean(x64, {1}).to(f32), tol, tol);
  check_close(max(x32, 2), max(x64, 2).to(f32), tol, tol);
  check_close(argmin(x32, 1), argmin(x64, 1), 0, 0);
  check_close(var(x32, {0, 2}), var(x64, {0, 2}).to(f32), tol, tol);
  check_close(kiln::std(x32, {2}), kiln::std(x64, {2}).to(f32), tol, tol);
  check_close(logsumexp(x32, {1}), logsumexp(x64, {1}).to(f32), tol, tol);
  check_close(norm(x32, 3, {0, 1}), norm(x64, 3, {0, 1}).to(f32), tol, tol);
}

// ---- large inputs: the chunked and OpenMP-parallel kernel paths ----------------------------

TEST_CASE("large reductions over rows, columns and scattered dims match a naive reference") {
  // (3, 50, 300): 45000 elements (above the parallel threshold); reducing dim 1 walks
  // columns in two blocks, dim 2 walks rows, {0, 2} needs a permuted copy.
  manual_seed(7);
  const Tensor x = randn({3, 50, 300}, {.dtype = f64});
  for (const Dims& dims : {Dims{1}, Dims{2}, Dims{0, 2}, Dims{}}) {
    CAPTURE(shape_str(dims));
    check_values(sum(x, dims), reference(x, dims, ref_sum), 1e-9, 1e-9);
    check_values(var(x, dims), reference(x, dims, ref_var), 1e-9, 1e-9);
    check_values(logsumexp(x, dims), reference(x, dims, ref_logsumexp), 1e-9, 1e-9);
    check_values(norm(x, 3, dims), reference(x, dims, ref_norm3), 1e-9, 1e-9);
    check_values(sum(x.to(f32), dims), reference(x, dims, ref_sum), 1e-3, 1e-4);
  }
  for (int64_t dim : {0, 1, 2}) {
    CAPTURE(dim);
    check_values(max(x, dim), reference(x, {dim}, ref_max), 0, 0);
    check_values(argmin(x, dim), reference(x, {dim}, ref_argmin), 0, 0);
  }
  check_values(max(x), {reference(x, {0, 1, 2}, ref_max)[0]}, 0, 0);
}

TEST_CASE("scattered dims and size-1 dims match a naive reference, in place or through a permute") {
  manual_seed(8);
  // Two reduced blocks run in place ((outer, Ra, mid, Rb, inner)); three need a permute.
  const Tensor small = randn({4, 3, 1, 5, 6, 2}, {.dtype = f64});
  // (8, 16, 32, 16): 65536 elements, parallel; {0, 2, 3} is batch norm's pattern.
  const Tensor big = randn({8, 16, 32, 16}, {.dtype = f64});
  for (const auto& [x, dims] : std::vector<std::pair<Tensor, Dims>>{{small, {0, 3}},
                                                                    {small, {1, 4}},
                                                                    {small, {0, 2, 4}},
                                                                    {small, {0, 3, 5}},
                                                                    {small, {1, 2, 3}},
                                                                    {small, {2, 5}},
                                                                    {big, {0, 2, 3}},
                                                                    {big, {0, 2}},
                                                                    {big, {1, 3}}}) {
    CAPTURE(shape_str(x.shape()));
    CAPTURE(shape_str(dims));
    check_values(sum(x, dims), reference(x, dims, ref_sum), 1e-9, 1e-9);
    check_values(var(x, dims), reference(x, dims, ref_var), 1e-9, 1e-9);
    check_values(logsumexp(x, dims), reference(x, dims, ref_logsumexp), 1e-9, 1e-9);
    check_values(norm(x, kInf, dims), reference(x, dims, [](const std::vector<double>& s) {
                   double m = 0;
                   for (double v : s) m = std::max(m, std::fabs(v));
                   return m;
                 }), 0, 0);
  }
  check_close(sum(small, {2}), small.reshape({4, 3, 5, 6, 2}), 0, 0);  // only a size-1 dim
  check_close(argmax(small, 2, true), zeros({4, 3, 1, 5, 6, 2}, {.dtype = i64}), 0, 0);
}

TEST_CASE("argmax and argmin return the first of tied extrema in long rows and columns") {
  // 100 elements: 6 vector steps of 16 lanes, then a tail of 4 (96..99).
  auto row = [](std::vector<std::pair<int, double>> set) {
    std::vector<double> v(100, 0.0);
    for (auto [i, value] : set) v[i] = value;
    return v;
  };
  const std::vector<std::vector<double>> cases = {
      row({{37, 1}, {5, 1}, {90, 1}}),        // ties in different lanes
      row({{21, 1}, {37, 1}}),                // ties in the same lane
      row({{99, 1}, {97, 1}}),                // ties in the tail
      row({{50, kNaN}, {70, kNaN}, {3, 5}}),  // the first NaN wins
      row({{98, kNaN}, {3, 5}}),              // a NaN in the tail
  };
  const std::vector<double> expected = {5, 21, 97, 50, 98};
  for (size_t c = 0; c < cases.size(); ++c) {
    CAPTURE(c);
    const Tensor x = from_vector(cases[c]);
    check_values(argmax(x, 0), {expected[c]}, 0, 0);
    check_values(argmax(x.reshape({100, 1}).expand({100, 3}).contiguous(), 0), std::vector<double>(3, expected[c]),
                 0, 0);  // columns
    check_values(argmin(-x, 0), {expected[c]}, 0, 0);
  }
  check_values(argmin(zeros({100}), 0), {0}, 0, 0);  // all tied
}

TEST_CASE("f32 logsumexp of a long row stays accurate") {
  manual_seed(9);
  const Tensor x = randn({3, 100000}, {.dtype = f64}) * 3.0;
  check_close(logsumexp(x.to(f32), {1}), logsumexp(x, {1}).to(f32), 0, 2e-6);
}

TEST_CASE("f32 sums accumulate in double") {
  // 1e8, a thousand ones, -1e8: in a float accumulator each 1 vanishes next to 1e8
  // (float spacing there is 8), and the sum would come out 0 instead of 1000.
  std::vector<float> v(1002, 1.0f);
  v.front() = 1e8f;
  v.back() = -1e8f;
  check_values(sum(from_vector(v)), {1000}, 0, 0);  // one row
  const Tensor columns = from_vector(v, {1002, 1}).expand({1002, 3}).contiguous();
  check_values(sum(columns, {0}), {1000, 1000, 1000}, 0, 0);
}

TEST_CASE("var is accurate when the mean is large against the spread") {
  check_values(var(from_vector<double>({1e9 + 1, 1e9 + 2, 1e9 + 3, 1e9 + 4}), {}), {5.0 / 3.0}, 1e-9, 1e-9);
  check_values(var(from_vector<float>({1e4f + 1, 1e4f + 2, 1e4f + 3, 1e4f + 4}), {}), {5.0 / 3.0}, 1e-4, 1e-4);
}

// ---- special inputs ----------------------------------------------------------------------

TEST_CASE("0-d inputs reduce to themselves") {
  const Tensor s = scalar_tensor(-2.5, {.dtype = f64});
  for (const Dims& dims : {Dims{}, Dims{0}, Dims{-1}}) {
    CAPTURE(shape_str(dims));
    check_golden(sum(s, dims), {}, {-2.5});
    check_golden(sum(s, dims, true), {}, {-2.5});
    check_golden(mean(s, dims), {}, {-2.5});
    check_golden(logsumexp(s, dims), {}, {-2.5});
    check_golden(norm(s, 2, dims), {}, {2.5});
    check_golden(var(s, dims, 0), {}, {0});
  }
  check_golden(max(s), {}, {-2.5});
  check_golden(max(s, 0), {}, {-2.5});
  check_golden(min(s, -1, true), {}, {-2.5});
  check_golden(argmax(s, 0), {}, {0});
  CHECK_THROWS_KILN(var(s, {}), "correction 1 leaves no degrees of freedom");
  CHECK_THROWS_KILN(sum(s, {1}), "sum: dim 1 is out of range");
}

TEST_CASE("empty inputs: sums are 0, logsumexp -inf, max throws") {
  const Tensor e = zeros({2, 0});
  check_golden(sum(e, {1}), {2}, {0, 0});
  check_golden(sum(e), {}, {0});
  check_golden(sum(e, {0}), {0}, {});
  check_golden(logsumexp(e, {1}), {2}, {-kInf, -kInf});
  check_golden(norm(e, 2, {1}), {2}, {0, 0});
  check_golden(max(e, 0), {0}, {});  // reducing a non-empty dim of an empty tensor is fine
  Tensor e64 = zeros({2, 0}, {.dtype = f64}).requires_grad_();
  sum(norm(e64, kInf, {1}) + norm(e64, 3, {1}) + exp(logsumexp(e64, {1})) + sum(e64, {1})).backward();
  CHECK(e64.grad().shape() == Shape{2, 0});
  CHECK_THROWS_KILN(max(e), "max: cannot reduce f32[2, 0]: it has no elements");
  CHECK_THROWS_KILN(min(e, 1), "min: cannot reduce dim 1 of f32[2, 0]: it has size 0");
  CHECK_THROWS_KILN(argmax(e, -1), "argmax: cannot reduce dim -1 of f32[2, 0]: it has size 0");
}

TEST_CASE("i64: sum, max, min, argmax and argmin work; floating-only reductions say so") {
  const Tensor k = from_vector<int64_t>({5, -3, 9, 9, 0, -7}, {2, 3});
  CHECK(sum(k).dtype() == i64);
  check_golden(sum(k), {}, {13});
  check_golden(sum(k, {0}), {3}, {14, -3, 2});
  check_golden(max(k), {}, {9});
  check_golden(min(k, 1), {2}, {-3, -7});
  check_golden(max(k, 0), {3}, {9, 0, 9});
  check_golden(argmax(k, 1), {2}, {2, 0});  // first of the tied 9s
  check_golden(argmin(k, 0), {3}, {0, 0, 1});
  CHECK_THROWS_KILN(mean(k), "mean: expected a floating tensor (f32 or f64), got i64[2, 3]");
  CHECK_THROWS_KILN(var(k, {0}), "var: expected a floating tensor");
  CHECK_THROWS_KILN(kiln::std(k, {0}), "std: expected a floating tensor");
  CHECK_THROWS_KILN(logsumexp(k, {0}), "logsumexp: expected a floating tensor");
  CHECK_THROWS_KILN(norm(k), "norm: expected a floating tensor");
}

TEST_CASE("sum counts a bool mask into i64") {
  const Tensor mask = from_vector<bool>({true, false, true, true, false, true}, {2, 3});
  const Tensor count = sum(mask, {1});
  CHECK(count.dtype() == i64);
  check_golden(count, {2}, {2, 2});
  check_golden(sum(mask), {}, {4});
  CHECK_THROWS_KILN(mean(mask), "mean: expected a floating tensor (f32 or f64), got bool[2, 3]");
}

TEST_CASE("NaN propagates through max, min and argmax, as in PyTorch") {
  const Tensor x = from_vector<double>({1, kNaN, 3, -1, 0, 2}, {2, 3});
  check_values(max(x), {kNaN});
  check_values(min(x), {kNaN});
  check_values(max(x, 1), {kNaN, 2});
  check_values(argmax(x, 1), {1, 2});
  check_values(argmin(x, 1), {1, 0});
  check_values(norm(x, kInf, {1}), {kNaN, 2});
}

TEST_CASE("logsumexp is stable for large values and handles infinite slices") {
  const Tensor big = from_vector<float>({1000, 1000, -1000});
  check_values(logsumexp(big, {}), {1000 + std::log(2.0)}, 1e-3, 1e-6);
  const Tensor x = from_vector<double>({-kInf, -kInf, 1, 2, kInf, 0}, {3, 2});
  check_values(logsumexp(x, {1}), {-kInf, 2 + std::log1p(std::exp(-1.0)), kInf});
}

// ---- gradient conventions (where the derivative is not unique) ----------------------------

TEST_CASE("max/min along a dim send the gradient to the first extremal element") {
  Tensor x = from_vector<double>({1, 3, 3, 2, 2, 0}, {2, 3}).requires_grad_();
  sum(max(x, 1) * from_vector<double>({10, 20})).backward();
  check_values(x.grad(), {0, 10, 0, 20, 0, 0});
  x.zero_grad();
  sum(min(x, 0, true)).backward();
  check_values(x.grad(), {1, 0, 0, 0, 1, 1});
}

TEST_CASE("max()/min() over everything split the gradient evenly among ties, as PyTorch") {
  Tensor x = from_vector<double>({1, 3, 3, 2, 2, 0}, {2, 3}).requires_grad_();
  max(x).backward();
  check_values(x.grad(), {0, 0.5, 0.5, 0, 0, 0});
  x.zero_grad();
  (min(x) * 4.0).backward();
  check_values(x.grad(), {0, 0, 0, 0, 0, 4});
}

TEST_CASE("norm gradients are 0, not NaN, at zero; the inf-norm splits ties with sign(x)") {
  // PyTorch 1.13 gives the same values for every case below.
  Tensor x = from_vector<double>({3, -3, 1, 0, 0, 0}, {2, 3}).requires_grad_();
  sum(norm(x, kInf, {1})).backward();
  check_values(x.grad(), {0.5, -0.5, 0, 0, 0, 0});
  x.zero_grad();
  sum(norm(x, 2, {1})).backward();
  const double n = std::sqrt(19.0);
  check_values(x.grad(), {3 / n, -3 / n, 1 / n, 0, 0, 0});
  x.zero_grad();
  sum(norm(x, 0.5, {1})).backward();
  check_values(x.grad(), {2.5773502691896257, -2.5773502691896257, 4.4641016151377553, 0, 0, 0}, 1e-12, 1e-12);
  x.zero_grad();
  sum(norm(x, 1, {1})).backward();
  check_values(x.grad(), {1, -1, 1, 0, 0, 0});
}

TEST_CASE("std of a constant slice has gradient 0, not NaN") {
  Tensor x = from_vector<double>({3, -4, 1, 2, 2, 2}, {2, 3}).requires_grad_();
  sum(kiln::std(x, {1})).backward();
  check_values(x.grad(), {0.41602514716892186, -0.5547001962252291, 0.1386750490563073, 0, 0, 0}, 1e-12, 1e-12);
}

TEST_CASE("logsumexp of an all -inf slice has gradient 0 (PyTorch gives NaN)") {
  Tensor x = from_vector<double>({-kInf, -kInf, -kInf, 1, 2, 3}, {2, 3}).requires_grad_();
  sum(logsumexp(x, {1})).backward();
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  check_values(x.grad(), {0, 0, 0, std::exp(1.0) / z, std::exp(2.0) / z, std::exp(3.0) / z});
}

// ---- gradcheck ----------------------------------------------------------------------------------

TEST_CASE("gradcheck: sum, mean, var, std, logsumexp and norm over several dims settings") {
  manual_seed(3);
  const Tensor x = leaf64({2, 3, 4});
  struct Setting {
    Dims dims;
    bool keepdim;
  };
  const std::vector<Setting> settings = {{{}, false}, {{1}, false}, {{0, 2}, false}, {{-1}, true}, {{2, 0}, true}};
  for (const Setting& s : settings) {
    CAPTURE(shape_str(s.dims));
    CAPTURE(s.keepdim);
    const Dims d = s.dims;
    const bool k = s.keepdim;
    check_gradients([&](const std::vector<Tensor>& in) { return sum(in[0], d, k); }, {x});
    check_gradients([&](const std::vector<Tensor>& in) { return mean(in[0], d, k); }, {x});
    check_gradients([&](const std::vector<Tensor>& in) { return var(in[0], d, 1, k); }, {x});
    check_gradients([&](const std::vector<Tensor>& in) { return var(in[0], d, 0, k); }, {x});
    check_gradients([&](const std::vector<Tensor>& in) { return kiln::std(in[0], d, 1, k); }, {x});
    check_gradients([&](const std::vector<Tensor>& in) { return logsumexp(in[0], d, k); }, {x});
    for (double p : {1.0, 2.0, 3.0, 0.5, kInf}) {
      CAPTURE(p);
      check_gradients([&](const std::vector<Tensor>& in) { return norm(in[0], p, d, k); }, {x});
    }
  }
}

TEST_CASE("gradcheck: max and min, along each dim and over everything") {
  manual_seed(4);
  const Tensor x = leaf64({2, 3, 4});  // random: no ties
  for (int64_t dim : {0, 1, -1}) {
    for (bool keepdim : {false, true}) {
      CAPTURE(dim);
      CAPTURE(keepdim);
      check_gradients([&](const std::vector<Tensor>& in) { return max(in[0], dim, keepdim); }, {x});
      check_gradients([&](const std::vector<Tensor>& in) { return min(in[0], dim, keepdim); }, {x});
    }
  }
  check_gradients([](const std::vector<Tensor>& in) { return max(in[0]); }, {x});
  check_gradients([](const std::vector<Tensor>& in) { return min(in[0]); }, {x});
}

TEST_CASE("gradcheck through a permuted view and scattered dims") {
  manual_seed(5);
  const Tensor x = leaf64({2, 3, 4});
  auto p = [](const Tensor& t) { return t.permute({2, 0, 1}); };  // (4, 2, 3), non-contiguous
  check_gradients([&](const std::vector<Tensor>& in) { return sum(p(in[0]), {0, 2}); }, {x});
  check_gradients([&](const std::vector<Tensor>& in) { return var(p(in[0]), {0, 2}, 1, true); }, {x});
  check_gradients([&](const std::vector<Tensor>& in) { return kiln::std(p(in[0]), {1}); }, {x});
  check_gradients([&](const std::vector<Tensor>& in) { return logsumexp(p(in[0]), {0, 2}); }, {x});
  check_gradients([&](const std::vector<Tensor>& in) { return norm(p(in[0]), 3, {0, 2}); }, {x});
  check_gradients([&](const std::vector<Tensor>& in) { return norm(p(in[0]), kInf, {0, 2}); }, {x});
  check_gradients([&](const std::vector<Tensor>& in) { return max(p(in[0]), 0); }, {x});
  check_gradients([&](const std::vector<Tensor>& in) { return min(p(in[0]), 2, true); }, {x});
  check_gradients([&](const std::vector<Tensor>& in) { return max(p(in[0])); }, {x});
  check_gradients([&](const std::vector<Tensor>& in) { return norm(in[0].transpose(0, 2), kInf, {1}); }, {x});
  // 5-D: two reduced blocks run in place, three go through a permuted copy.
  const Tensor y = leaf64({2, 3, 2, 2, 3});
  for (const Dims& dims : {Dims{0, 2}, Dims{1, 3}, Dims{0, 2, 4}, Dims{0, 1, 3}}) {
    CAPTURE(shape_str(dims));
    check_gradients([&](const std::vector<Tensor>& in) { return var(in[0], dims); }, {y});
    check_gradients([&](const std::vector<Tensor>& in) { return logsumexp(in[0], dims, true); }, {y});
    check_gradients([&](const std::vector<Tensor>& in) { return norm(in[0], kInf, dims); }, {y});
    check_gradients([&](const std::vector<Tensor>& in) { return norm(in[0], 3, dims); }, {y});
  }
}

TEST_CASE("gradcheck of the gradient: double backward of var, std, logsumexp and norm") {
  manual_seed(6);
  const Tensor x = leaf64({3, 4});
  using Fn = std::function<Tensor(const Tensor&)>;
  const std::vector<std::pair<std::string, Fn>> ops = {
      {"var", [](const Tensor& t) { return var(t, {1}); }},
      {"std", [](const Tensor& t) { return kiln::std(t, {0}, 0, true); }},
      {"logsumexp", [](const Tensor& t) { return logsumexp(t, {1}); }},
      {"norm 2", [](const Tensor& t) { return norm(t, 2, {0}); }},
      {"norm 3", [](const Tensor& t) { return norm(t, 3, {}); }},
      {"norm 0.5", [](const Tensor& t) { return norm(t, 0.5, {1}); }},
      {"max * x", [](const Tensor& t) { return max(t, 1) * sum(t, {1}); }},
  };
  for (const auto& [name, f] : ops) {
    CAPTURE(name);
    check_gradients([&](const std::vector<Tensor>& in) { return gradient_of(f, in[0]); }, {x});
  }
}

// ---- sum_to ----------------------------------------------------------------------------------

TEST_CASE("sum_to sums broadcast dims back down") {
  const Tensor x = golden_x();  // (2, 3, 4)
  check_close(sum_to(x, {3, 4}), sum(x, {0}));
  check_close(sum_to(x, {1, 4}), sum(x, {0, 1}, true).reshape({1, 4}));
  check_close(sum_to(x, {2, 1, 4}), sum(x, {1}, true));
  check_close(sum_to(x, {3, 1}), sum(x, {0, 2}).reshape({3, 1}));
  check_golden(sum_to(x, {}), {}, gold::sum_all);
  CHECK(sum_to(x, {2, 3, 4}).is_same(x));  // nothing to sum: the same tensor
  check_gradients([](const std::vector<Tensor>& in) { return sum_to(in[0], {3, 1}); }, {leaf64({2, 3, 4})});
  CHECK_THROWS_KILN(sum_to(x, {4, 3}), "sum_to: cannot sum [2, 3, 4] down to [4, 3]");
  CHECK_THROWS_KILN(sum_to(x, {1, 2, 3, 4}), "sum_to: cannot sum [2, 3, 4] down to [1, 2, 3, 4]");
}

// ---- errors ------------------------------------------------------------------------------------

TEST_CASE("bad dims, corrections, p and dtypes are kiln::Errors naming the op") {
  const Tensor x = golden_x();
  CHECK_THROWS_KILN(sum(x, {3}), "sum: dim 3 is out of range for a tensor with 3 dims (expected -3..2)");
  CHECK_THROWS_KILN(mean(x, {-4}), "mean: dim -4 is out of range");
  CHECK_THROWS_KILN(max(x, 5), "max: dim 5 is out of range");
  CHECK_THROWS_KILN(argmin(x, -4), "argmin: dim -4 is out of range");
  CHECK_THROWS_KILN(sum(x, {0, -3}), "sum: dim -3 appears more than once in dims [0, -3] for f64[2, 3, 4]");
  CHECK_THROWS_KILN(logsumexp(x, {1, 1}), "logsumexp: dim 1 appears more than once");
  CHECK_THROWS_KILN(norm(x, 2, {2, 2}), "norm: dim 2 appears more than once");
  CHECK_THROWS_KILN(var(x, {1}, 3),
                    "var: correction 3 leaves no degrees of freedom: each output reduces 3 element(s) of f64[2, 3, 4]");
  CHECK_THROWS_KILN(kiln::std(x, {0}, 2), "std: correction 2 leaves no degrees of freedom");
  CHECK_THROWS_KILN(norm(x, 0), "norm: p must be > 0 (or inf), got 0");
  CHECK_THROWS_KILN(norm(x, -kInf), "norm: p must be > 0 (or inf), got -inf");
  CHECK_THROWS_KILN(norm(x, kNaN), "norm: p must be > 0 (or inf), got nan");
  CHECK_THROWS_KILN(sum(x.to(bf16)), "sum: dtype bf16 is a storage type (kiln computes in it only");
  CHECK_THROWS_KILN(max(zeros({2}, {.dtype = b8})), "max: unsupported dtype bool (expected f32, f64 or i64)");
  CHECK_THROWS_KILN(sum(Tensor()), "sum: got an undefined tensor");
}
