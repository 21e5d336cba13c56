// Matrix products: matmul in every NumPy shape case, bmm, linear. Values are checked
// by hand on small cases, against PyTorch (golden/linalg_golden.h) on batched and
// broadcast ones, and against a plain reference on cases large enough to run Eigen's
// blocked GEMM with every operand layout; gradients by gradcheck in f64.
#include "golden/linalg_golden.h"
#include "helpers.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

// The product of two 2-D tensors by the definition, in double: the reference that
// kiln's GEMM paths are compared with.
std::vector<double> reference_matmul(const Tensor& a, const Tensor& b) {
  const int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  const std::vector<double> va = a.to_vector<double>(), vb = b.to_vector<double>();
  std::vector<double> out(static_cast<size_t>(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t p = 0; p < k; ++p) out[i * n + j] += va[i * k + p] * vb[p * n + j];
  return out;
}

// d/d inputs[wrt] of sum(f(inputs)^2), itself differentiable: gradcheck on it checks the
// backward of an op's backward. gradcheck's finite-difference passes call it under
// NoGradGuard with plain tensors, so it turns grad mode back on and makes them leaves.
Tensor square_sum_gradient(std::vector<Tensor> inputs, size_t wrt, const GradcheckFn& f) {
  GradModeGuard grad_on(true);
  for (Tensor& t : inputs)
    if (!t.requires_grad()) t = t.detach().requires_grad_();
  Tensor y = f(inputs);
  return grad({sum(y * y)}, {inputs[wrt]}, {.create_graph = true})[0];
}

Tensor from_golden(const std::vector<double>& values, const std::vector<int64_t>& shape, DType dtype) {
  return from_vector(values, Shape(shape.begin(), shape.end()), {.dtype = dtype});
}

}  // namespace

// ---- values: the shape cases -------------------------------------------------------------

TEST_CASE("matmul of two matrices") {
  for (DType dt : {f32, f64}) {
    Tensor a = from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3}, {.dtype = dt});
    Tensor b = from_vector<double>({7, 8, 9, 10, 11, 12}, {3, 2}, {.dtype = dt});
    Tensor c = matmul(a, b);
    CHECK(c.dtype() == dt);
    CHECK(c.shape() == Shape{2, 2});
    check_values(c, {58, 64, 139, 154});
  }
}

TEST_CASE("matmul of two vectors is their dot product, a 0-d tensor") {
  Tensor c = matmul(from_vector<float>({1, 2, 3}), from_vector<float>({4, 5, -6}));
  CHECK(c.dim() == 0);
  check_values(c, {-4});
}

TEST_CASE("matmul promotes a 1-D operand to a row (left) or a column (right)") {
  Tensor m = from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor left = matmul(from_vector<double>({1, -1}), m);  // (2) @ (2, 3) -> (3)
  CHECK(left.shape() == Shape{3});
  check_values(left, {-3, -3, -3});
  Tensor right = matmul(m, from_vector<double>({1, 0, -1}));  // (2, 3) @ (3) -> (2)
  CHECK(right.shape() == Shape{2});
  check_values(right, {-2, -2});
}

TEST_CASE("matmul with batch dims: hand-computed broadcast of one matrix over a batch") {
  // (2, 2, 2) @ (2, 2): each batch entry times the same matrix [[0, 1], [1, 0]] swaps columns.
  Tensor a = from_vector<float>({1, 2, 3, 4, 5, 6, 7, 8}, {2, 2, 2});
  Tensor swap = from_vector<float>({0, 1, 1, 0}, {2, 2});
  Tensor c = matmul(a, swap);
  CHECK(c.shape() == Shape{2, 2, 2});
  check_values(c, {2, 1, 4, 3, 6, 5, 8, 7});
  // (2, 2) @ (2, 2, 2): the same matrix on the left swaps rows of each entry.
  Tensor d = matmul(swap, a);
  check_values(d, {3, 4, 1, 2, 7, 8, 5, 6});
}

TEST_CASE("matmul matches PyTorch on batched, broadcast and promoted shapes") {
  for (const golden::linalg::MatmulCase& g : golden::linalg::matmul_cases) {
    for (DType dt : {f32, f64}) {
      CAPTURE(g.name);
      CAPTURE(dtype_name(dt));
      Tensor c = matmul(from_golden(g.a, g.a_shape, dt), from_golden(g.b, g.b_shape, dt));
      CHECK(c.shape() == Shape(g.out_shape.begin(), g.out_shape.end()));
      check_values(c, g.out, dt == f64 ? 1e-12 : 1e-5, dt == f64 ? 1e-12 : 1e-5);
    }
  }
}

TEST_CASE("matmul with empty dims") {
  Tensor no_rows = matmul(zeros({0, 3}), ones({3, 4}));
  CHECK(no_rows.shape() == Shape{0, 4});
  // k = 0: a sum over nothing is 0, also when the output buffer held garbage.
  Tensor no_depth = matmul(ones({2, 0}), ones({0, 3}));
  CHECK(no_depth.shape() == Shape{2, 3});
  check_values(no_depth, std::vector<double>(6, 0.0));
  Tensor no_batch = matmul(ones({0, 2, 3}), ones({3, 4}));
  CHECK(no_batch.shape() == Shape{0, 2, 4});
}

// ---- values: operand layouts -----------------------------------------------------------------
// These shapes are large enough for Eigen's blocked GEMM (small ones take a
// coefficient-wise path), so each layout below really reaches the GEMM kernel.

TEST_CASE("matmul reads transposed operands in every combination") {
  const int64_t m = 67, k = 45, n = 38;
  Tensor a = randn({m, k}), b = randn({k, n});
  const std::vector<double> expected = reference_matmul(a, b);
  Tensor a_t = a.t().contiguous().t();  // same values, stored column-major (strides (1, m))
  Tensor b_t = b.t().contiguous().t();
  CHECK(a_t.strides() == Shape{1, m});
  check_values(matmul(a, b), expected, 1e-4, 1e-4);
  check_values(matmul(a_t, b), expected, 1e-4, 1e-4);
  check_values(matmul(a, b_t), expected, 1e-4, 1e-4);
  check_values(matmul(a_t, b_t), expected, 1e-4, 1e-4);
}

TEST_CASE("matmul of non-contiguous operands: padded rows, strided columns, broadcast rows") {
  const int64_t m = 40, k = 33, n = 29;
  Tensor a_big = randn({m, k + 7}, {.dtype = f64}), b_big = randn({k, 2 * n}, {.dtype = f64});
  Tensor a = a_big.narrow(1, 3, k);           // rows padded: strides (k + 7, 1), read in place
  Tensor b = b_big.slice(1, 0, 2 * n, 2);     // every other column: strides (2n, 2), copied
  Tensor row = randn({1, k}, {.dtype = f64});
  Tensor a_rows = row.expand({m, k});         // one row repeated: strides (0, 1), copied
  check_values(matmul(a, b), reference_matmul(a.contiguous(), b.contiguous()), 1e-10, 1e-10);
  check_values(matmul(a_rows, b), reference_matmul(a_rows.contiguous(), b.contiguous()), 1e-10, 1e-10);
}

TEST_CASE("batched matmul with transposed, sliced and expanded batch operands") {
  const int64_t B = 6, m = 24, k = 20, n = 22;
  Tensor a = randn({B, k, m}, {.dtype = f64}).transpose(1, 2);  // each matrix column-major
  Tensor b_shared = randn({1, k, n}, {.dtype = f64});
  Tensor b = b_shared.expand({B, k, n});                         // batch stride 0, not materialised
  Tensor a_every_other = randn({2 * B, m, k}, {.dtype = f64}).slice(0, 0, 2 * B, 2);
  for (const Tensor& lhs : {a, a_every_other}) {
    Tensor c = matmul(lhs, b);
    REQUIRE(c.shape() == Shape{B, m, n});
    for (int64_t i = 0; i < B; ++i)
      check_values(c.select(0, i), reference_matmul(lhs.select(0, i).contiguous(), b_shared.select(0, 0)), 1e-10,
                   1e-10);
  }
}

TEST_CASE("batched matmul: a batch of small GEMMs runs across threads, large ones in turn") {
  // One thread (tiny), one GEMM per thread (small), each GEMM on all threads (large):
  // cpu::gemm_batched picks by size, and the results must not depend on the path.
  for (int64_t size : {16, 48, 160}) {
    CAPTURE(size);
    const int64_t B = 5;
    Tensor a = randn({B, size, size}), b = randn({B, size, size});
    Tensor c = bmm(a, b);
    for (int64_t i = 0; i < B; ++i)
      check_values(c.select(0, i), reference_matmul(a.select(0, i), b.select(0, i)), 1e-3, 1e-4);
  }
}

TEST_CASE("matmul folds a batch over a shared matrix into one GEMM when the rows allow it") {
  // Contiguous, and rows padded inside a wider buffer (uniform row stride k + 5), both
  // fold into one (3 * 40) x k GEMM; a view of the first 40 of 48 rows per batch entry
  // breaks the row stride between entries and runs as a batch of GEMMs instead.
  const int64_t k = 30, n = 26;
  Tensor w = randn({k, n}, {.dtype = f64});
  Tensor contiguous = randn({3, 40, k}, {.dtype = f64});
  Tensor padded_rows = randn({3, 40, k + 5}, {.dtype = f64}).narrow(2, 0, k);
  Tensor first_rows = randn({3, 48, k}, {.dtype = f64}).narrow(1, 0, 40);
  for (const Tensor& lhs : {contiguous, padded_rows, first_rows}) {
    Tensor c = matmul(lhs, w);
    REQUIRE(c.shape() == Shape{3, 40, n});
    for (int64_t i = 0; i < 3; ++i)
      check_values(c.select(0, i), reference_matmul(lhs.select(0, i).contiguous(), w), 1e-10, 1e-10);
  }
}

// ---- bmm and linear values -----------------------------------------------------------------------

TEST_CASE("bmm multiplies matching batch entries") {
  Tensor a = from_vector<double>({1, 2, 3, 4, 1, 0, 0, 1}, {2, 2, 2});
  Tensor b = from_vector<double>({1, 1, 0, 1, 5, 6, 7, 8}, {2, 2, 2});
  Tensor c = bmm(a, b);
  CHECK(c.shape() == Shape{2, 2, 2});
  check_values(c, {1, 3, 3, 7, 5, 6, 7, 8});
}

TEST_CASE("linear with and without bias") {
  Tensor x = from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor w = from_vector<double>({1, 0, -1, 2, 1, 0}, {2, 3});  // out = 2, in = 3
  Tensor b = from_vector<double>({10, 20});
  check_values(linear(x, w), {-2, 4, -2, 13});
  check_values(linear(x, w, b), {8, 24, 8, 33});
  Tensor v = linear(from_vector<double>({1, 1, 1}), w, b);  // a 1-D input gives a 1-D output
  CHECK(v.shape() == Shape{2});
  check_values(v, {10, 23});
}

TEST_CASE("linear matches PyTorch on a 3-D input") {
  namespace g = golden::linalg;
  for (DType dt : {f32, f64}) {
    Tensor y = linear(from_golden(g::linear_x, {2, 3, 4}, dt), from_golden(g::linear_weight, {5, 4}, dt),
                      from_golden(g::linear_bias, {5}, dt));
    CHECK(y.shape() == Shape{2, 3, 5});
    check_values(y, g::linear_out, dt == f64 ? 1e-12 : 1e-5, dt == f64 ? 1e-12 : 1e-5);
  }
}

TEST_CASE("linear on a transposed input and a transposed weight view") {
  Tensor x = randn({33, 20}, {.dtype = f64}).t();    // (20, 33), column-major
  Tensor w = randn({33, 25}, {.dtype = f64}).t();    // (25, 33): W^T is then row-major
  Tensor b = randn({25}, {.dtype = f64});
  std::vector<double> expected = reference_matmul(x.contiguous(), w.t().contiguous());
  const std::vector<double> bias = b.to_vector<double>();
  for (size_t i = 0; i < expected.size(); ++i) expected[i] += bias[i % bias.size()];
  check_values(linear(x, w, b), expected, 1e-10, 1e-10);
}

// ---- gradients -------------------------------------------------------------------------------

TEST_CASE("matmul gradients in every shape case") {
  auto mm = [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); };
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{3, 4}, {4, 2}},           // matrix · matrix
      {{4}, {4}},                 // dot
      {{3}, {3, 2}},              // vector · matrix
      {{2, 3}, {3}},              // matrix · vector
      {{2, 1, 2, 3}, {3, 3, 2}},  // broadcast batch dims on both sides
      {{2, 3, 4}, {4, 2}},        // batch · shared matrix (the folded GEMM and its folded dW)
      {{3, 4}, {2, 4, 2}},        // shared matrix · batch (dA summed over the batch)
      {{2, 3, 4}, {4}},           // batch · vector
      {{3}, {2, 3, 2}},           // vector · batch
      {{2, 2, 3}, {2, 3, 2}},     // plain batched
  };
  for (const auto& [sa, sb] : cases) {
    CAPTURE(shape_str(sa));
    CAPTURE(shape_str(sb));
    check_gradients(mm, {leaf64(sa), leaf64(sb)});
  }
}

TEST_CASE("matmul gradients through transposed, sliced and expanded operands") {
  auto layouts = [](const std::vector<Tensor>& in) {
    Tensor a = in[0].transpose(-1, -2);                                // (2, 4, 3), column-major
    Tensor b = in[1].slice(0, 0, 6, 2).unsqueeze(0).expand({2, 3, 2});  // strided rows, batch stride 0
    return matmul(a, b);
  };
  check_gradients(layouts, {leaf64({2, 3, 4}), leaf64({6, 2})});
}

TEST_CASE("matmul double backward") {
  // d/da sum((a·b)^2) = 2 (a·b) b^T is built from matmuls; gradcheck differentiates it
  // with respect to both a and b.
  auto mm = [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); };
  const std::vector<std::pair<Shape, Shape>> cases = {{{2, 3, 4}, {4, 2}}, {{3}, {2, 3, 2}}, {{3, 2}, {2}}};
  for (const auto& [sa, sb] : cases) {
    CAPTURE(shape_str(sa));
    for (size_t wrt : {0, 1})
      check_gradients([&](const std::vector<Tensor>& in) { return square_sum_gradient(in, wrt, mm); },
                      {leaf64(sa), leaf64(sb)});
  }
}

TEST_CASE("bmm gradients") {
  check_gradients([](const std::vector<Tensor>& in) { return bmm(in[0], in[1]); },
                  {leaf64({2, 3, 4}), leaf64({2, 4, 2})});
}

TEST_CASE("linear gradients with and without bias") {
  auto with_bias = [](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); };
  auto without_bias = [](const std::vector<Tensor>& in) { return linear(in[0], in[1]); };
  check_gradients(with_bias, {leaf64({2, 3, 4}), leaf64({5, 4}), leaf64({5})});
  check_gradients(with_bias, {leaf64({4}), leaf64({3, 4}), leaf64({3})});
  check_gradients(without_bias, {leaf64({3, 4}), leaf64({2, 4})});
  // Only some inputs need a gradient: the others get none.
  Tensor x = randn({3, 4}, {.dtype = f64}), w = leaf64({2, 4}), b = randn({2}, {.dtype = f64});
  sum(linear(x, w, b)).backward();
  CHECK(w.grad().defined());
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("linear and batched matmul backward with zero input features (empty rows)") {
  // Found by running the [cuda] cases against the CPU: reshape({-1, 0}) of an empty
  // tensor is ambiguous, so the backward must name the row count.
  const Tensor x = leaf64({4, 0}), w = leaf64({3, 0}), b = leaf64({3});
  const Tensor y = linear(x, w, b);
  CHECK(y.shape() == Shape{4, 3});
  y.backward(ones({4, 3}, {.dtype = f64}));
  CHECK(w.grad().shape() == Shape{3, 0});
  CHECK(x.grad().shape() == Shape{4, 0});
  check_values(b.grad(), {4, 4, 4});
  const Tensor a = leaf64({2, 3, 0}), m = leaf64({0, 5});
  sum(matmul(a, m)).backward();
  CHECK(m.grad().shape() == Shape{0, 5});
  CHECK(a.grad().shape() == Shape{2, 3, 0});
}

TEST_CASE("linear double backward") {
  auto lin = [](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); };
  for (size_t wrt : {0, 1, 2})
    check_gradients([&](const std::vector<Tensor>& in) { return square_sum_gradient(in, wrt, lin); },
                    {leaf64({2, 2, 3}), leaf64({2, 3}), leaf64({2})});
}

// ---- errors ----------------------------------------------------------------------------------

TEST_CASE("matmul rejects bad arguments with the op and shapes in the message") {
  CHECK_THROWS_KILN(matmul(ones({2, 3}), ones({4, 5})), "matmul: shapes [2, 3] and [4, 5] are not aligned (3 != 4)");
  CHECK_THROWS_KILN(matmul(ones({3}), ones({4})), "matmul: shapes [3] and [4] are not aligned (3 != 4)");
  CHECK_THROWS_KILN(matmul(ones({2, 3}), ones({2})), "not aligned (3 != 2)");
  CHECK_THROWS_KILN(matmul(scalar_tensor(2.0), ones({2})), "matmul: both arguments need at least 1 dim");
  CHECK_THROWS_KILN(matmul(ones({2, 2}, {.dtype = i64}), ones({2, 2}, {.dtype = i64})),
                    "matmul: expected floating tensors");
  CHECK_THROWS_KILN(matmul(ones({2, 2}), ones({2, 2}, {.dtype = f64})), "matmul: dtypes differ");
  CHECK_THROWS_KILN(matmul(ones({2, 3, 4}), ones({5, 4, 6})),
                    "matmul: batch dims of [2, 3, 4] and [5, 4, 6] cannot be broadcast (2 vs 5)");
  CHECK_THROWS_KILN(matmul(Tensor(), ones({2})), "matmul: got an undefined tensor");
}

TEST_CASE("bmm and linear reject bad arguments") {
  CHECK_THROWS_KILN(bmm(ones({2, 3}), ones({2, 3, 4})), "bmm: expected 3-D tensors");
  CHECK_THROWS_KILN(bmm(ones({2, 3, 4}), ones({3, 4, 5})), "bmm: batch sizes differ");
  CHECK_THROWS_KILN(bmm(ones({2, 3, 4}), ones({2, 5, 5})), "bmm: shapes [2, 3, 4] and [2, 5, 5] are not aligned");
  CHECK_THROWS_KILN(linear(ones({2, 3}), ones({4, 5})),
                    "linear: input [2, 3] and weight [4, 5] are not aligned (3 != 5)");
  CHECK_THROWS_KILN(linear(ones({2, 3}), ones({3})), "linear: weight must be 2-D");
  CHECK_THROWS_KILN(linear(ones({2, 3}), ones({4, 3}), ones({3})), "linear: bias must have shape [4]");
  CHECK_THROWS_KILN(linear(ones({2, 3}), ones({4, 3}), ones({4}, {.dtype = f64})), "linear: dtypes differ");
  CHECK_THROWS_KILN(linear(ones({3}, {.dtype = i64}), ones({4, 3}, {.dtype = i64})), "linear: expected floating");
}
