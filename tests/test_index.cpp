// Indexing ops (index.cpp): embedding, index_select, gather, scatter_add. Values (hand
// computed and PyTorch golden), gradients (gradcheck w.r.t. the float inputs, double
// backward through the adjoint pairs), determinism, and errors for bad indices.
#include "golden/shape_index_golden.h"
#include "helpers.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

Tensor idx(const std::vector<int64_t>& values, const Shape& shape) { return from_vector(values, shape); }
Tensor idx(const std::vector<int64_t>& values) { return from_vector(values); }

// The golden inputs: x (2, 3, 4) and the (2, 2, 3) index used with dim 1.
Tensor golden_x() { return from_vector(golden::x, {2, 3, 4}); }
Tensor golden_index() { return idx({2, 0, 1, 2, 2, 0, 0, 1, 1, 1, 1, 2}, {2, 2, 3}); }

// The gradient of sum(f(inputs)^3) w.r.t. inputs[wrt], itself differentiable: gradcheck on
// it checks an op's backward's own backward. gradcheck's finite-difference passes call it
// under NoGradGuard with plain tensors, so it turns grad mode back on and makes them leaves.
Tensor cubed_sum_gradient(std::vector<Tensor> inputs, size_t wrt, const GradcheckFn& f) {
  GradModeGuard grad_on(true);
  for (Tensor& t : inputs)
    if (!t.requires_grad()) t = t.detach().requires_grad_();
  Tensor y = f(inputs);
  return grad({sum(y * y * y)}, {inputs[wrt]}, {.create_graph = true})[0];
}

}  // namespace

// ==== embedding ============================================================================

TEST_CASE("embedding picks weight rows in the indices' shape") {
  Tensor w = from_vector<float>({0, 1, 10, 11, 20, 21}, {3, 2});
  Tensor out = embedding(idx({2, 0, 2, 1}, {2, 2}), w);
  CHECK(out.shape() == Shape{2, 2, 2});
  CHECK(out.dtype() == f32);
  check_values(out, {20, 21, 0, 1, 20, 21, 10, 11});
  Tensor one = embedding(from_vector<int64_t>({1}, Shape{}), w);  // a 0-d index gives one row
  CHECK(one.shape() == Shape{2});
  check_values(one, {10, 11});
  // The padding row is still read in the forward pass (only its gradient is zero).
  check_values(embedding(idx({1}), w, /*padding_idx=*/1), {10, 11});
  // Strided indices and weight.
  Tensor wt = from_vector<float>({0, 10, 20, 1, 11, 21}, {2, 3}).t();
  check_values(embedding(idx({0, 9, 2, 9}).slice(0, 0, 4, 2), wt), {0, 1, 20, 21});
}

TEST_CASE("embedding matches PyTorch, including the padding_idx gradient") {
  Tensor w = from_vector(golden::weight, {5, 3}).requires_grad_();
  Tensor tokens = idx({0, 2, 4, 2, 4, 1}, {2, 3});
  Tensor out = embedding(tokens, w, /*padding_idx=*/2);
  check_values(out, golden::embedding_out, 0, 0);
  out.backward(from_vector(golden::embedding_grad_out, {2, 3, 3}));
  // Row 4 is used twice (gradients add up), row 2 is padding (zero), row 3 unused (zero).
  check_values(w.grad(), golden::embedding_weight_grad, 1e-12, 0);
}

TEST_CASE("embedding gradcheck w.r.t. the weight, with repeated indices") {
  Tensor w = leaf64({4, 3});
  Tensor tokens = idx({3, 0, 3, 1, 3, 0}, {3, 2});
  check_gradients([&](const std::vector<Tensor>& in) { return embedding(tokens, in[0]); }, {w});
  check_gradients([&](const std::vector<Tensor>& in) { return embedding(tokens, in[0].t().t()) * 2.0; }, {w});
}

TEST_CASE("embedding double backward counts each row's uses, skipping padding") {
  // L = sum(e^2): dL/dW[r] = 2 * uses(r) * W[r], so d/dW sum(dL/dW) = 2 * uses(r).
  Tensor tokens = idx({0, 2, 2, 0, 2});
  for (int64_t padding : {-1, 2}) {
    INFO("padding_idx = " << padding);
    Tensor w = full({3, 2}, 5.0, {.dtype = f64, .requires_grad = true});
    Tensor e = embedding(tokens, w, padding);
    Tensor g = grad({sum(e * e)}, {w}, {.create_graph = true})[0];
    Tensor gg = grad({sum(g)}, {w})[0];
    const double uses2 = padding == 2 ? 0.0 : 3.0;  // row 0 is used twice, row 1 never
    check_values(g, {20, 20, 0, 0, 10 * uses2, 10 * uses2});
    check_values(gg, {4, 4, 0, 0, 2 * uses2, 2 * uses2});
  }
}

TEST_CASE("embedding backward is deterministic and exact on a parallel-sized problem") {
  // 4096 tokens over 7 rows of width 512: the weight gradient runs on every thread.
  const int64_t tokens = 4096, rows = 7, width = 512;
  std::vector<int64_t> ids(tokens);
  for (int64_t k = 0; k < tokens; ++k) ids[k] = (k * k + 3 * k) % rows;
  Tensor indices = from_vector(ids);
  Tensor upstream = randn({tokens, width});
  auto weight_grad = [&] {
    Tensor w = zeros({rows, width}, {.requires_grad = true});
    embedding(indices, w).backward(upstream);
    return w.grad().to_vector<float>();
  };
  const std::vector<float> first = weight_grad();
  CHECK(weight_grad() == first);  // bit for bit
  // Against a reference summed in double, in token order.
  std::vector<double> expected(static_cast<size_t>(rows * width), 0.0);
  const std::vector<float> up = upstream.to_vector<float>();
  for (int64_t k = 0; k < tokens; ++k)
    for (int64_t j = 0; j < width; ++j) expected[ids[k] * width + j] += up[k * width + j];
  double max_err = 0;
  for (size_t i = 0; i < expected.size(); ++i) max_err = std::max(max_err, std::fabs(expected[i] - first[i]));
  CHECK(max_err < 1e-3);
}

TEST_CASE("embedding errors: index dtype, range, weight rank, padding_idx") {
  Tensor w = zeros({5, 3});
  CHECK_THROWS_KILN(embedding(from_vector<float>({1.0f}), w), "embedding: indices must be i64, got f32[1]");
  CHECK_THROWS_KILN(embedding(idx({0, 5}), w),
                    "embedding: index 5 at position 1 is out of range [0, 5) for dim 0 of weight f32[5, 3]");
  CHECK_THROWS_KILN(embedding(idx({-1}), w), "index -1 at position 0 is out of range");
  CHECK_THROWS_KILN(embedding(idx({0}), zeros({5})), "weight must be 2-D");
  CHECK_THROWS_KILN(embedding(idx({0}), w, 5), "padding_idx 5 must be -1 (none) or in [0, 5)");
  CHECK_THROWS_KILN(embedding(idx({0}), w, -2), "padding_idx -2");
}

// ==== index_select =========================================================================

TEST_CASE("index_select picks slices along any dim, with repeats") {
  Tensor m = from_vector<double>({0, 1, 2, 10, 11, 12}, {2, 3});
  check_values(index_select(m, 0, idx({1, 1, 0})), {10, 11, 12, 10, 11, 12, 0, 1, 2});
  check_values(index_select(m, -1, idx({2, 0})), {2, 0, 12, 10});
  check_values(index_select(m.t(), 0, idx({2})), {2, 12});  // non-contiguous x
  check_values(index_select(m, 1, from_vector<int64_t>({1}, Shape{})), {1, 11});  // a 0-d index
  CHECK(index_select(m, 0, zeros({0}, {.dtype = i64})).shape() == Shape{0, 3});
  Tensor x = golden_x();
  Tensor out = index_select(x, 1, idx({2, 0, 2}));
  CHECK(out.shape() == Shape{2, 3, 4});
  check_values(out, golden::index_select_dim1, 0, 0);
}

TEST_CASE("index_select copies i64 and 16-bit tensors") {
  check_values(index_select(idx({5, 6, 7}), 0, idx({2, 0})), {7, 5});
  Tensor h = from_vector<float>({1.5f, -2.0f, 4.0f}).to(f16);
  Tensor out = index_select(h, 0, idx({1, 1}));
  CHECK(out.dtype() == f16);
  check_values(out.to(f32), {-2, -2});
}

TEST_CASE("index_select gradcheck: repeated indices accumulate, double backward via index_add") {
  Tensor x = leaf64({3, 4, 2});
  Tensor index = idx({3, 0, 3, 3});
  check_gradients([&](const std::vector<Tensor>& in) { return index_select(in[0], 1, index); }, {x});
  check_gradients([&](const std::vector<Tensor>& in) { return index_select(in[0].transpose(0, 2), 0, idx({1})); }, {x});
  // The backward (index_add) is itself differentiable: gradcheck the first derivative.
  check_gradients(
      [&](const std::vector<Tensor>& in) {
        return cubed_sum_gradient(in, 0, [&](const std::vector<Tensor>& t) { return index_select(t[0], 1, index); });
      },
      {x});
}

TEST_CASE("index_select errors") {
  Tensor m = zeros({2, 3});
  CHECK_THROWS_KILN(index_select(m, 1, from_vector<double>({0.0})), "index_select: index must be i64, got f64[1]");
  CHECK_THROWS_KILN(index_select(m, 1, idx({0, 3})),
                    "index_select: index 3 at position 1 is out of range [0, 3) for dim 1 of x f32[2, 3]");
  CHECK_THROWS_KILN(index_select(m, 0, idx({-1})), "index -1 at position 0 is out of range [0, 2)");
  CHECK_THROWS_KILN(index_select(m, 0, idx({0, 0}, {1, 2})), "index must be 1-D, got i64[1, 2]");
  CHECK_THROWS_KILN(index_select(m, 2, idx({0})), "dim 2 is out of range");
  CHECK_THROWS_KILN(index_select(scalar_tensor(1.0), 0, idx({0})), "zero-dimensional");
}

// ==== gather ===============================================================================

TEST_CASE("gather reads one element per index position, as torch.gather") {
  Tensor m = from_vector<double>({0, 1, 2, 10, 11, 12}, {2, 3});
  // dim 1: out[i][j] = m[i][index[i][j]]
  check_values(gather(m, 1, idx({2, 2, 0, 1}, {2, 2})), {2, 2, 10, 11});
  // dim 0: out[i][j] = m[index[i][j]][j]; index may be smaller than m in the other dim.
  check_values(gather(m, 0, idx({1, 0, 1, 1}, {2, 2})), {10, 1, 10, 11});
  check_values(gather(m.t(), 1, idx({1, 0, 0}, {3, 1})), {10, 1, 2});  // non-contiguous x
  check_values(gather(idx({4, 5, 6}), 0, idx({2, 2})), {6, 6});       // i64 x
  CHECK(gather(m, 1, zeros({2, 0}, {.dtype = i64})).shape() == Shape{2, 0});
}

TEST_CASE("gather and its gradient match PyTorch on a 3-d tensor") {
  Tensor x = golden_x().requires_grad_();
  Tensor out = gather(x, 1, golden_index());
  CHECK(out.shape() == Shape{2, 2, 3});
  check_values(out, golden::gather_dim1, 0, 0);
  out.backward(from_vector(golden::gather_dim1_grad_out, {2, 2, 3}));
  check_values(x.grad(), golden::gather_dim1_grad, 0, 0);
}

TEST_CASE("gather on a parallel-sized problem matches a plain loop") {
  const int64_t rows = 4096, cols = 64;
  Tensor x = randn({rows, cols}, {.dtype = f64});
  Tensor index = randint(0, cols, {rows, 16});
  const std::vector<double> out = gather(x, 1, index).to_vector<double>();
  const std::vector<double> xs = x.to_vector<double>();
  const std::vector<int64_t> is = index.to_vector<int64_t>();
  bool same = true;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < 16; ++j) same &= out[r * 16 + j] == xs[r * cols + is[r * 16 + j]];
  CHECK(same);
}

TEST_CASE("gather gradcheck, strided input and repeated indices; backward is scatter_add") {
  Tensor x = leaf64({3, 4});
  Tensor index = idx({0, 0, 2, 3, 3, 1}, {3, 2});
  check_gradients([&](const std::vector<Tensor>& in) { return gather(in[0], 1, index); }, {x});
  check_gradients([&](const std::vector<Tensor>& in) { return gather(in[0].t(), 0, idx({2, 0, 2}, {1, 3})); }, {x});
  check_gradients(
      [&](const std::vector<Tensor>& in) {
        return cubed_sum_gradient(in, 0, [&](const std::vector<Tensor>& t) { return gather(t[0], 1, index); });
      },
      {x});
}

TEST_CASE("gather errors") {
  Tensor m = zeros({2, 3});
  CHECK_THROWS_KILN(gather(m, 1, from_vector<float>({0.0f, 0.0f}, {2, 1})), "gather: index must be i64");
  CHECK_THROWS_KILN(gather(m, 1, idx({0, 3}, {2, 1})),
                    "gather: index 3 at position 1 is out of range [0, 3) for dim 1 of x f32[2, 3]");
  CHECK_THROWS_KILN(gather(m, 1, idx({-1, 0}, {2, 1})), "index -1 at position 0 is out of range");
  CHECK_THROWS_KILN(gather(m, 1, idx({0, 1})), "index i64[2] must have as many dims as x f32[2, 3]");
  CHECK_THROWS_KILN(gather(m, 1, idx({0, 0, 0}, {3, 1})),
                    "index i64[3, 1] is larger than x f32[2, 3] in dim 0 (3 > 2)");
  CHECK_THROWS_KILN(gather(m, -3, idx({0}, {1, 1})), "dim -3 is out of range");
}

// ==== scatter_add ==========================================================================

TEST_CASE("scatter_add adds src into a copy of x at the indexed positions") {
  Tensor x = from_vector<double>({1, 1, 1, 1, 1, 1}, {2, 3});
  Tensor src = from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
  // dim 1: out[i][index[i][j]] += src[i][j]; repeats accumulate.
  Tensor out = scatter_add(x, 1, idx({2, 2, 0, 1}, {2, 2}), src);
  check_values(out, {1, 1, 4, 5, 6, 1});
  check_values(x, {1, 1, 1, 1, 1, 1});  // out of place
  // dim 0, with an index covering only the first column.
  check_values(scatter_add(x, 0, idx({1, 1}, {2, 1}), src), {1, 1, 1, 6, 1, 1});
  check_values(scatter_add(idx({0, 0}), 0, idx({1, 1, 0}), idx({5, 6, 7})), {7, 11});  // i64
  check_values(scatter_add(x.t(), 1, idx({1}, {1, 1}), src.t()), {1, 2, 1, 1, 1, 1});  // strided x, src
}

TEST_CASE("scatter_add matches PyTorch with src larger than the index") {
  Tensor out = scatter_add(golden_x(), 1, golden_index(), from_vector(golden::src, {2, 3, 4}));
  CHECK(out.shape() == Shape{2, 3, 4});
  check_values(out, golden::scatter_add_dim1, 0, 0);
}

TEST_CASE("scatter_add gradcheck w.r.t. x and src; src beyond the index gets zero") {
  Tensor x = leaf64({3, 4}), src = leaf64({3, 3});
  Tensor index = idx({1, 1, 3, 0, 2, 0}, {3, 2});
  check_gradients([&](const std::vector<Tensor>& in) { return scatter_add(in[0], 1, index, in[1]); }, {x, src});
  check_gradients([&](const std::vector<Tensor>& in) { return scatter_add(in[0], 0, idx({2, 0}, {1, 2}), in[1]); },
                  {x, src});
  // src's gradient: the upstream gradient read at each destination; column 2 was never used.
  Tensor s = ones({3, 3}, {.dtype = f64, .requires_grad = true});
  scatter_add(zeros({3, 4}, {.dtype = f64}), 1, index, s).backward(arange(12, {.dtype = f64}).reshape({3, 4}));
  check_values(s.grad(), {1, 1, 0, 7, 4, 0, 10, 8, 0});
  // Double backward: scatter_add's backward (gather) is differentiable too.
  check_gradients(
      [&](const std::vector<Tensor>& in) {
        return cubed_sum_gradient(in, 1, [&](const std::vector<Tensor>& t) { return scatter_add(t[0], 1, index, t[1]); });
      },
      {x, src});
}

TEST_CASE("scatter_add errors") {
  Tensor x = zeros({2, 3}), src = ones({2, 3});
  CHECK_THROWS_KILN(scatter_add(x, 1, from_vector<float>({0.0f}, {1, 1}), src), "scatter_add: index must be i64");
  CHECK_THROWS_KILN(scatter_add(x, 1, idx({0}, {1, 1}), src.to(f64)), "scatter_add: dtypes differ");
  CHECK_THROWS_KILN(scatter_add(x, 1, idx({4}, {1, 1}), src),
                    "scatter_add: index 4 at position 0 is out of range [0, 3) for dim 1 of x f32[2, 3]");
  CHECK_THROWS_KILN(scatter_add(x, 0, idx({-2}, {1, 1}), src), "index -2 at position 0 is out of range [0, 2)");
  CHECK_THROWS_KILN(scatter_add(x, 1, idx({0, 0, 0, 0}, {1, 4}), ones({2, 3})),
                    "index i64[1, 4] is larger than src f32[2, 3] in dim 1 (4 > 3)");
  CHECK_THROWS_KILN(scatter_add(x, 1, idx({0, 0, 0}, {3, 1}), ones({3, 3})),
                    "index i64[3, 1] is larger than x f32[2, 3] in dim 0 (3 > 2)");
  CHECK_THROWS_KILN(scatter_add(x, 1, idx({0}), src), "must have as many dims as x");
}
