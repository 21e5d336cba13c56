// Views (view.cpp: view/reshape, transpose/permute, narrow/slice/select, expand,
// squeeze/unsqueeze/flatten, contiguous/clone, to(dtype)) and the shape ops (shape.cpp:
// cat, stack, split, chunk, pad): storage sharing, values, gradients, errors.
#include "golden/shape_index_golden.h"
#include "helpers.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

// 0, 1, ..., n-1 in `shape` (f64 by default).
Tensor iota(const Shape& shape, DType dtype = f64) {
  return arange(0, static_cast<double>(numel_of(shape)), 1, {.dtype = dtype}).reshape(shape);
}

bool shares_storage(const Tensor& a, const Tensor& b) { return a.storage() == b.storage(); }

}  // namespace

// ==== views ================================================================================

TEST_CASE("view infers -1, shares storage, and writes through to the base") {
  Tensor x = iota({6});
  Tensor v = x.view({2, -1});
  CHECK(v.shape() == Shape{2, 3});
  CHECK(shares_storage(v, x));
  v.select(0, 1).fill_(9.0);  // the second row of the view is x[3:6]
  check_values(x, {0, 1, 2, 9, 9, 9});
  CHECK(x.view({-1, 1, 2}).shape() == Shape{3, 1, 2});
}

TEST_CASE("view splits and merges dims of a narrowed tensor where strides allow") {
  Tensor x = iota({4, 6}).narrow(1, 0, 3);  // strides [6, 1], not contiguous
  Tensor v = x.view({2, 2, 3});             // splitting dim 0 keeps it a view
  CHECK(shares_storage(v, x));
  CHECK(v.strides() == Shape{12, 6, 1});
  check_values(v, {0, 1, 2, 6, 7, 8, 12, 13, 14, 18, 19, 20});
  CHECK_THROWS_KILN(x.view({12}), "without copying");
}

TEST_CASE("view errors name the shapes") {
  Tensor x = iota({2, 3});
  CHECK_THROWS_KILN(x.view({4, -1}), "is invalid for");
  CHECK_THROWS_KILN(x.view({-1, -1}), "only one dimension can be -1");
  CHECK_THROWS_KILN(x.view({7}), "shape [7] is invalid for input of 6 elements");
  CHECK_THROWS_KILN(x.view({-2, 3}), "invalid size -2");
  CHECK_THROWS_KILN(x.t().view({6}), "use reshape()");
}

TEST_CASE("reshape is a view when possible and copies a non-contiguous tensor") {
  Tensor x = iota({2, 3});
  Tensor r = x.reshape({3, 2});
  CHECK(shares_storage(r, x));
  Tensor xt = x.t();
  Tensor flat = xt.reshape({-1});
  CHECK_FALSE(shares_storage(flat, x));
  CHECK(flat.is_contiguous());
  check_values(flat, {0, 3, 1, 4, 2, 5});
  x.fill_(0.0);
  check_values(flat, {0, 3, 1, 4, 2, 5});  // a copy: unaffected by later writes to x
}

TEST_CASE("transpose, t and permute swap strides without copying") {
  Tensor x = iota({2, 3, 4});
  Tensor p = x.permute({2, 0, 1});
  CHECK(p.shape() == Shape{4, 2, 3});
  CHECK(p.strides() == Shape{1, 12, 4});
  CHECK(shares_storage(p, x));
  check_values(p.select(0, 1), {1, 5, 9, 13, 17, 21});  // p[i, j, k] = x[j, k, i]
  check_values(x.transpose(0, 2).select(0, 1).select(0, 2), {9, 21});  // x[:, 2, 1]
  Tensor m = iota({2, 3});
  check_values(m.t(), {0, 3, 1, 4, 2, 5});
  m.t().select(0, 2).fill_(-1.0);  // column 2 of m
  check_values(m, {0, 1, -1, 3, 4, -1});
}

TEST_CASE("permute and t reject bad arguments") {
  Tensor x = iota({2, 3, 4});
  CHECK_THROWS_KILN(x.permute({0, 1}), "got 2 dims for f64[2, 3, 4]");
  CHECK_THROWS_KILN(x.permute({0, 1, 1}), "repeats");
  CHECK_THROWS_KILN(x.permute({0, 1, 3}), "out of range");
  CHECK_THROWS_KILN(x.t(), "<= 2 dims");
  CHECK_THROWS_KILN(x.transpose(0, 3), "dim 3 is out of range");
}

TEST_CASE("slice handles steps, negative indices and clamping; narrow and select share storage") {
  Tensor x = iota({10});
  check_values(x.slice(0, 1, 8, 3), {1, 4, 7});
  check_values(x.slice(0, -3, -1), {7, 8});
  check_values(x.slice(0, -100, 2), {0, 1});
  check_values(x.slice(0, 8, 100, 5), {8});
  CHECK(x.slice(0, 6, 3).numel() == 0);  // end before start: empty, not an error
  check_values(x.narrow(0, -4, 2), {6, 7});

  Tensor m = iota({3, 4});
  Tensor s = m.slice(1, 0, 4, 2);  // columns 0 and 2
  check_values(s, {0, 2, 4, 6, 8, 10});
  CHECK(shares_storage(s, m));
  s.fill_(-1.0);
  check_values(m, {-1, 1, -1, 3, -1, 5, -1, 7, -1, 9, -1, 11});
  check_values(m.select(1, -1), {3, 7, 11});
  check_values(m.select(0, 1), {-1, 5, -1, 7});
}

TEST_CASE("slice, narrow and select errors") {
  Tensor x = iota({3, 4});
  CHECK_THROWS_KILN(x.slice(1, 0, 2, 0), "step must be positive");
  CHECK_THROWS_KILN(x.slice(2, 0, 1), "dim 2 is out of range");
  CHECK_THROWS_KILN(x.narrow(1, 2, 3), "out of bounds");
  CHECK_THROWS_KILN(x.narrow(0, 0, -1), "out of bounds");
  CHECK_THROWS_KILN(x.select(0, 3), "index 3 is out of range for dim 0 of size 3");
  CHECK_THROWS_KILN(x.select(1, -5), "index -5 is out of range");
  CHECK_THROWS_KILN(scalar_tensor(1.0).select(0, 0), "0-d");
}

TEST_CASE("expand broadcasts size-1 dims with stride 0 and adds leading dims") {
  Tensor x = from_vector<double>({1, 2, 3}, {3, 1});
  Tensor e = x.expand({2, 3, 4});
  CHECK(e.shape() == Shape{2, 3, 4});
  CHECK(e.strides() == Shape{0, 1, 0});
  CHECK(shares_storage(e, x));
  CHECK(e.to_vector<double>() == std::vector<double>{1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3,
                                                     1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3});
  CHECK(x.expand({-1, 5}).shape() == Shape{3, 5});
  CHECK_THROWS_KILN(x.expand({4, 4}), "only size-1 dims expand");
  CHECK_THROWS_KILN(x.expand({4}), "fewer dims");
  CHECK_THROWS_KILN(x.expand({-1, 3, 1}), "-1 is not allowed for a new leading dim");
}

// Known bugs in view.cpp, reported to its owner: skipped until fixed, then delete the skip.
// Run them anyway with --no-skip.
TEST_CASE("expand rejects negative sizes other than -1") {
  Tensor x = from_vector<double>({1.0});
  CHECK_THROWS_KILN(x.expand({-2}), "expand");  // today: a tensor of shape [-2] and numel -2
}

TEST_CASE("transpose of a 0-d tensor still validates its dims") {
  CHECK_THROWS_KILN(scalar_tensor(1.0).transpose(3, 7), "out of range");  // today: returns a view
}

TEST_CASE("squeeze, unsqueeze and flatten") {
  Tensor x = iota({1, 3, 1, 2});
  CHECK(x.squeeze().shape() == Shape{3, 2});
  CHECK(x.squeeze(2).shape() == Shape{1, 3, 2});
  CHECK(x.squeeze(1).shape() == Shape{1, 3, 1, 2});  // not size 1: unchanged
  CHECK(x.squeeze(-4).shape() == Shape{3, 1, 2});
  CHECK(x.unsqueeze(0).shape() == Shape{1, 1, 3, 1, 2});
  CHECK(x.unsqueeze(-1).shape() == Shape{1, 3, 1, 2, 1});
  CHECK(x.flatten().shape() == Shape{6});
  CHECK(x.flatten(1, 2).shape() == Shape{1, 3, 2});
  CHECK(scalar_tensor(2.0).flatten().shape() == Shape{1});
  CHECK(shares_storage(x.squeeze(), x));
  // unsqueeze of a transposed (non-contiguous) tensor is still a view
  Tensor t = iota({3, 2}).t();
  Tensor u = t.unsqueeze(1);
  CHECK(shares_storage(u, t));
  check_values(u, {0, 2, 4, 1, 3, 5});
  CHECK_THROWS_KILN(x.unsqueeze(5), "out of range");
  CHECK_THROWS_KILN(x.flatten(2, 1), "comes after");
  CHECK_THROWS_KILN(x.squeeze(4), "out of range");
}

TEST_CASE("contiguous returns the tensor itself when contiguous, clone always copies") {
  Tensor x = iota({2, 3});
  CHECK(x.contiguous().is_same(x));
  Tensor c = x.t().contiguous();
  CHECK(c.is_contiguous());
  CHECK_FALSE(shares_storage(c, x));
  check_values(c, {0, 3, 1, 4, 2, 5});
  Tensor k = x.clone();
  CHECK_FALSE(shares_storage(k, x));
  k.fill_(1.0);
  check_values(x, {0, 1, 2, 3, 4, 5});
}

TEST_CASE("to(dtype) converts values; bf16 and f16 round to nearest even as PyTorch") {
  Tensor x = from_vector<float>({2.7f, -2.7f, 0.5f});
  CHECK(x.to(f32).is_same(x));
  check_values(x.to(i64), {2, -2, 0});  // truncation toward zero, as PyTorch
  CHECK(x.to(f64).dtype() == f64);
  check_values(from_vector<int64_t>({3, -4}).to(f32), {3, -4});

  Tensor r = from_vector(golden::round_trip, {.dtype = f32});
  Tensor via_bf16 = r.to(bf16);
  CHECK(via_bf16.dtype() == bf16);
  check_values(via_bf16.to(f32), golden::round_trip_bf16, 0, 0);
  check_values(r.to(f16).to(f32), golden::round_trip_f16, 0, 0);
  check_values(r.to(bf16).to(f64), golden::round_trip_bf16, 0, 0);
  // Values exactly representable in 16 bits survive a round trip unchanged.
  Tensor exact = from_vector<float>({0.5f, -3.0f, 1.25f, 96.0f});
  check_values(exact.to(bf16).to(f32), {0.5, -3.0, 1.25, 96.0}, 0, 0);
  check_values(exact.to(f16).to(f32), {0.5, -3.0, 1.25, 96.0}, 0, 0);
}

TEST_CASE("to(dtype) passes gradients back in the source dtype") {
  Tensor x = from_vector<float>({1.0f, 2.0f}).requires_grad_();
  sum(x.to(f64) * 3.0).backward();
  CHECK(x.grad().dtype() == f32);
  check_values(x.grad(), {3, 3});
  CHECK_FALSE(x.to(i64).requires_grad());  // integers carry no gradient
}

TEST_CASE("gradcheck through every view") {
  Tensor x = leaf64({2, 3, 4});
  auto check = [&](const char* name, std::function<Tensor(const Tensor&)> f) {
    INFO(name);
    // Multiply by x's own view so the result depends on position, not just a sum.
    check_gradients([&](const std::vector<Tensor>& in) { return f(in[0]) * f(in[0]); }, {x});
  };
  check("view", [](const Tensor& t) { return t.view({6, -1}); });
  check("reshape of a transpose (copies)", [](const Tensor& t) { return t.transpose(0, 2).reshape({-1}); });
  check("transpose", [](const Tensor& t) { return t.transpose(1, 2); });
  check("permute", [](const Tensor& t) { return t.permute({1, 2, 0}); });
  check("narrow", [](const Tensor& t) { return t.narrow(2, 1, 2); });
  check("slice with step", [](const Tensor& t) { return t.slice(2, -4, 4, 2); });
  check("select", [](const Tensor& t) { return t.select(1, -1); });
  check("expand", [](const Tensor& t) { return t.narrow(0, 0, 1).expand({3, 3, 4}); });
  check("squeeze/unsqueeze", [](const Tensor& t) { return t.narrow(1, 1, 1).squeeze(1).unsqueeze(0); });
  check("flatten", [](const Tensor& t) { return t.flatten(0, 1); });
  check("contiguous", [](const Tensor& t) { return t.transpose(0, 1).contiguous(); });
  check("clone", [](const Tensor& t) { return t.clone(); });
  check("t", [](const Tensor& t) { return t.select(0, 1).t(); });
}

TEST_CASE("double backward through a strided slice") {
  // L = sum(s^3) with s = x[1::2]; dL/dx = 3 s^2 on the slice; d/dx sum(dL/dx) = 6 s there.
  Tensor x = from_vector<double>({1, 2, 3, 4, 5}).requires_grad_();
  Tensor s = x.slice(0, 1, 5, 2);
  Tensor g = grad({sum(s * s * s)}, {x}, {.create_graph = true})[0];
  check_values(g, {0, 12, 0, 48, 0});
  Tensor gg = grad({sum(g)}, {x})[0];
  check_values(gg, {0, 12, 0, 24, 0});
}

// ==== cat / stack ==========================================================================

TEST_CASE("cat joins along dim 0 and dim 1, including non-contiguous and empty inputs") {
  Tensor a = iota({2, 2});
  Tensor b = iota({3, 2}) + 10.0;
  check_values(cat({a, b}), {0, 1, 2, 3, 10, 11, 12, 13, 14, 15});

  Tensor c = iota({2, 3}) + 20.0;
  Tensor d = iota({1, 2}).t() + 30.0;  // (2, 1), a transposed view
  Tensor empty_piece = zeros({2, 0}, {.dtype = f64});
  Tensor out = cat({a, empty_piece, c, d}, 1);
  CHECK(out.shape() == Shape{2, 6});
  check_values(out, {0, 1, 20, 21, 22, 30, 2, 3, 23, 24, 25, 31});
  check_values(cat({c.t(), a}, -2), {20, 23, 21, 24, 22, 25, 0, 1, 2, 3});
  CHECK(cat({a}).shape() == Shape{2, 2});
}

TEST_CASE("cat copies every dtype, i64 and 16-bit floats included") {
  Tensor a = from_vector<int64_t>({1, 2, 3, 4}, {2, 2});
  Tensor b = from_vector<int64_t>({5, 6}, {2, 1});
  Tensor out = cat({a, b}, 1);
  CHECK(out.dtype() == i64);
  check_values(out, {1, 2, 5, 3, 4, 6});
  Tensor h = cat({from_vector<float>({1.5f, 2.0f}).to(bf16), from_vector<float>({-3.0f}).to(bf16)});
  CHECK(h.dtype() == bf16);
  check_values(h.to(f32), {1.5, 2.0, -3.0});
}

TEST_CASE("cat of large inputs takes the parallel block copy") {
  Tensor a = iota({300, 500});
  Tensor b = iota({300, 700}) * -1.0;
  Tensor out = cat({a, b}, 1);
  CHECK(out.shape() == Shape{300, 1200});
  // Exact copies: compare whole vectors (one assertion each, not one per element).
  CHECK(out.narrow(1, 0, 500).to_vector<double>() == a.to_vector<double>());
  CHECK(out.narrow(1, 500, 700).to_vector<double>() == b.to_vector<double>());
  CHECK(cat({a.t(), b.t()}, 0).t().to_vector<double>() == out.to_vector<double>());  // strided inputs
}

TEST_CASE("cat gradcheck: each input gets its slice of the gradient") {
  Tensor a = leaf64({2, 3}), b = leaf64({2, 1}), c = leaf64({4, 2});
  check_gradients([](const std::vector<Tensor>& in) { return cat({in[0], in[1], in[2].t()}, 1); }, {a, b, c});
  check_gradients([](const std::vector<Tensor>& in) { return cat({in[0].t(), in[2]}, 0) * 2.0; }, {a, b, c});
  // Inputs that do not need a gradient are skipped.
  Tensor fixed = iota({2, 2});
  check_gradients([&](const std::vector<Tensor>& in) { return cat({fixed, in[0]}, 1); }, {a});
}

TEST_CASE("cat errors name the op and the shapes") {
  CHECK_THROWS_KILN(cat({}), "cat: expected a non-empty list");
  CHECK_THROWS_KILN(cat({scalar_tensor(1.0), scalar_tensor(2.0)}), "zero-dimensional");
  CHECK_THROWS_KILN(cat({iota({2, 3}), iota({2, 4})}, 0),
                    "cat: sizes must match except in dim 0, but tensor 0 is f64[2, 3] and tensor 1 is f64[2, 4]");
  CHECK_THROWS_KILN(cat({iota({2, 3}), iota({6})}), "same number of dims");
  CHECK_THROWS_KILN(cat({iota({2}), iota({2}, f32)}), "dtypes differ");
  CHECK_THROWS_KILN(cat({iota({2})}, 1), "dim 1 is out of range");
  CHECK_THROWS_KILN(cat({iota({2}), Tensor()}), "undefined");
}

TEST_CASE("stack adds a new dim at any position") {
  Tensor a = iota({2, 3}), b = iota({2, 3}) + 10.0;
  Tensor s0 = stack({a, b});
  CHECK(s0.shape() == Shape{2, 2, 3});
  check_values(s0, {0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15});
  Tensor s1 = stack({a, b}, 1);
  CHECK(s1.shape() == Shape{2, 2, 3});
  check_values(s1, {0, 1, 2, 10, 11, 12, 3, 4, 5, 13, 14, 15});
  Tensor s2 = stack({a, b}, -1);
  CHECK(s2.shape() == Shape{2, 3, 2});
  check_values(s2, {0, 10, 1, 11, 2, 12, 3, 13, 4, 14, 5, 15});
  check_values(stack({scalar_tensor(1.0), scalar_tensor(2.0)}), {1, 2});
}

TEST_CASE("stack gradcheck and errors") {
  Tensor a = leaf64({2, 3}), b = leaf64({3, 2});
  check_gradients([](const std::vector<Tensor>& in) { return stack({in[0], in[1].t(), in[0]}, 1); }, {a, b});
  CHECK_THROWS_KILN(stack({}), "stack: expected a non-empty list");
  CHECK_THROWS_KILN(stack({iota({2, 3}), iota({3, 2})}), "stack: sizes must match, but tensor 0 is f64[2, 3]");
  CHECK_THROWS_KILN(stack({iota({2}), iota({2})}, 2), "dim 2 is out of range");
}

// ==== split / chunk ========================================================================

TEST_CASE("split by size returns views; the last piece may be smaller") {
  Tensor x = iota({5, 2});
  std::vector<Tensor> pieces = split(x, 2);
  REQUIRE(pieces.size() == 3);
  CHECK(pieces[0].shape() == Shape{2, 2});
  CHECK(pieces[2].shape() == Shape{1, 2});
  check_values(pieces[1], {4, 5, 6, 7});
  CHECK(shares_storage(pieces[2], x));
  pieces[2].fill_(-1.0);  // writes through to x
  check_values(x.select(0, 4), {-1, -1});

  std::vector<Tensor> cols = split(x, 1, -1);
  REQUIRE(cols.size() == 2);
  check_values(cols[1], {1, 3, 5, 7, -1});
  CHECK(split(zeros({0, 2}), 3).size() == 1);  // an empty dim: one empty piece, as PyTorch
}

TEST_CASE("split by sizes and chunk follow torch.split / torch.chunk") {
  Tensor x = iota({6});
  std::vector<Tensor> p = split(x, std::vector<int64_t>{1, 0, 5});
  REQUIRE(p.size() == 3);
  CHECK(p[1].numel() == 0);
  check_values(p[2], {1, 2, 3, 4, 5});

  auto sizes = [](const std::vector<Tensor>& ts) {
    std::vector<int64_t> s;
    for (const Tensor& t : ts) s.push_back(t.shape()[0]);
    return s;
  };
  CHECK(sizes(chunk(iota({5}), 3)) == std::vector<int64_t>{2, 2, 1});
  CHECK(sizes(chunk(iota({6}), 4)) == std::vector<int64_t>{2, 2, 2});  // fewer pieces than asked
  CHECK(sizes(chunk(iota({6}), 6)) == std::vector<int64_t>{1, 1, 1, 1, 1, 1});
  CHECK(sizes(chunk(zeros({0}), 3)) == std::vector<int64_t>{0, 0, 0});
  std::vector<Tensor> halves = chunk(iota({2, 4}), 2, 1);
  check_values(halves[1], {2, 3, 6, 7});
}

TEST_CASE("split and chunk gradcheck: each piece's gradient lands in its place") {
  Tensor x = leaf64({5, 3});
  check_gradients(
      [](const std::vector<Tensor>& in) {
        std::vector<Tensor> p = split(in[0], 2);
        return cat({p[2] * p[2], p[0], p[1] * 3.0});  // reordered and scaled differently
      },
      {x});
  check_gradients(
      [](const std::vector<Tensor>& in) {
        std::vector<Tensor> p = chunk(in[0], 2, 1);  // widths 2 and 1
        return p[0] * p[1];
      },
      {x});
  check_gradients(
      [](const std::vector<Tensor>& in) {
        std::vector<Tensor> p = split(in[0], std::vector<int64_t>{3, 2});
        return cat({p[1], p[0] * p[0]});
      },
      {x});
}

TEST_CASE("split and chunk errors") {
  Tensor x = iota({4, 3});
  CHECK_THROWS_KILN(split(x, 0), "split_size must be positive, got 0");
  CHECK_THROWS_KILN(split(x, std::vector<int64_t>{1, 2}), "sizes [1, 2] sum to 3, but dim 0 of f64[4, 3] has size 4");
  CHECK_THROWS_KILN(split(x, std::vector<int64_t>{5, -1}), "must be non-negative");
  CHECK_THROWS_KILN(split(x, 1, 2), "dim 2 is out of range");
  CHECK_THROWS_KILN(chunk(x, 0), "number of chunks must be positive");
  CHECK_THROWS_KILN(chunk(scalar_tensor(1.0), 2), "zero-dimensional");
}

// ==== pad ==================================================================================

TEST_CASE("pad adds a constant border; the last dim's pads come first") {
  check_values(pad(from_vector<double>({1, 2}), {2, 1}), {0, 0, 1, 2, 0});
  Tensor m = iota({2, 3});
  Tensor out = pad(m, {1, 0, 0, 1}, -1.0);  // one column before, one row after
  CHECK(out.shape() == Shape{3, 4});
  check_values(out, {-1, 0, 1, 2, -1, 3, 4, 5, -1, -1, -1, -1});
  // Negative pads crop: PyTorch's F.pad(x, (1, -1, -1, 2), value=9).
  check_values(pad(m, {1, -1, -1, 2}, 9.0), {9, 3, 4, 9, 9, 9, 9, 9, 9});
  // Cropping a whole dim away leaves only the constant.
  check_values(pad(from_vector<double>({1, 2, 3}), {-3, 1}, 5.0), {5});
  check_values(pad(from_vector<int64_t>({1, 2}), {1, 1}, 7.0), {7, 1, 2, 7});
}

TEST_CASE("pad matches PyTorch on a 3-d tensor, cropping and padding every dim") {
  Tensor x = from_vector(golden::x, {2, 3, 4});
  Tensor out = pad(x, {1, -1, -1, 2, 0, 1}, 7.0);
  CHECK(out.shape() == Shape{3, 4, 4});
  check_values(out, golden::pad_x, 0, 0);
  // Same result from a non-contiguous input.
  Tensor xt = from_vector(golden::x, {2, 3, 4}).transpose(0, 2).contiguous().transpose(0, 2);
  REQUIRE_FALSE(xt.is_contiguous());
  check_values(pad(xt, {1, -1, -1, 2, 0, 1}, 7.0), golden::pad_x, 0, 0);
}

TEST_CASE("pad gradcheck, with positive and negative pads and a strided input") {
  Tensor x = leaf64({3, 4});
  check_gradients([](const std::vector<Tensor>& in) { return pad(in[0], {2, -1, -1, 1}, 3.0); }, {x});
  check_gradients([](const std::vector<Tensor>& in) { return pad(in[0].t(), {0, 1}) * pad(in[0].t(), {1, 0}); }, {x});
}

TEST_CASE("pad's backward is differentiable (double backward)") {
  // L = sum(pad(x)^2): dL/dx = 2x (cropped elements get 0); d/dx sum(w * dL/dx) = 2w there.
  Tensor x = from_vector<double>({1, 2, 3}).requires_grad_();
  Tensor p = pad(x, {1, -1});  // [0, 1, 2]
  Tensor g = grad({sum(p * p)}, {x}, {.create_graph = true})[0];
  check_values(g, {2, 4, 0});
  Tensor w = from_vector<double>({5, 6, 7});
  check_values(grad({sum(g * w)}, {x})[0], {10, 12, 0});
}

TEST_CASE("pad errors") {
  Tensor x = iota({2, 3});
  CHECK_THROWS_KILN(pad(x, {1}), "pad: pads must come in (low, high) pairs, got 1 values");
  CHECK_THROWS_KILN(pad(x, {1, 1, 1, 1, 1, 1}), "6 pad values for 3 dims, but f64[2, 3] has only 2");
  CHECK_THROWS_KILN(pad(x, {-2, -2}), "crop more than dim 1 of f64[2, 3] holds");
  CHECK_THROWS_KILN(pad(x, {-4, 2}), "crop more than dim 1");
}
