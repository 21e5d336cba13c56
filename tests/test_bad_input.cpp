// Bad input, across the library: every user mistake must be a kiln::Error whose message
// names the op (or layer) and shows what was wrong with the arguments (their shapes,
// dtypes, devices, the bad value), never a crash, an assert or another exception type.
//
// The cases are tables, one per op family, of {call, fragments the message must contain}.
// The first fragment is always the op's name as the message starts with it; the others
// are the shapes / dtypes / values that let a user find the mistake without a debugger.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <typeinfo>
#include <vector>

#include "helpers.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

struct BadCall {
  std::string what;               // the mistake, for the failure report
  std::function<void()> call;     // must throw kiln::Error
  std::vector<std::string> says;  // fragments its message must contain, the op first
};

// Runs every row; each must throw a kiln::Error that starts with the op's name and
// contains every fragment.
void check_bad_calls(const std::vector<BadCall>& rows) {
  for (const BadCall& row : rows) {
    CAPTURE(row.what);
    std::string message;
    try {
      row.call();
      FAIL_CHECK("no exception");
      continue;
    } catch (const Error& e) {
      message = e.what();
    } catch (const std::exception& e) {
      FAIL_CHECK("threw ", typeid(e).name(), " instead of kiln::Error: ", e.what());
      continue;
    }
    CAPTURE(message);
    REQUIRE(!row.says.empty());
    CHECK_MESSAGE(message.rfind(row.says[0], 0) == 0, "the message does not start with '", row.says[0], "'");
    for (size_t i = 1; i < row.says.size(); ++i)
      CHECK_MESSAGE(message.find(row.says[i]) != std::string::npos, "the message lacks '", row.says[i], "'");
  }
}

Tensor f32s(const Shape& shape) { return randn(shape); }
Tensor f64s(const Shape& shape) { return randn(shape, {.dtype = f64}); }
Tensor i64s(const Shape& shape, int64_t high = 3) { return randint(0, high, shape); }
Tensor bools(const Shape& shape) { return gt(randn(shape), 0.0); }

}  // namespace

// ---- ops ---------------------------------------------------------------------------------------

TEST_CASE("elementwise ops reject mismatched shapes and dtypes, naming both operands") {
  check_bad_calls({
      {"add, shapes that do not broadcast", [] { add(f32s({2, 3}), f32s({4, 5})); }, {"add", "[2, 3]", "[4, 5]"}},
      {"operator*, shapes", [] { (void)(f32s({3}) * f32s({2})); }, {"mul", "[3]", "[2]"}},
      {"sub, f32 and f64", [] { sub(f32s({2}), f64s({2})); }, {"sub", "f32[2]", "f64[2]"}},
      {"div, f32 and i64", [] { div(f32s({2}), i64s({2})); }, {"div", "f32[2]", "i64[2]"}},
      {"pow, shapes", [] { pow(f32s({2, 2}), f32s({3})); }, {"pow", "[2, 2]", "[3]"}},
      {"maximum, dtypes", [] { maximum(f64s({2}), f32s({2})); }, {"maximum", "f64[2]", "f32[2]"}},
      {"exp of i64", [] { kiln::exp(i64s({2})); }, {"exp", "i64"}},
      {"log of bool", [] { kiln::log(bools({2})); }, {"log", "bool"}},
      {"lt, shapes", [] { lt(f32s({2, 3}), f32s({3, 2})); }, {"lt", "[2, 3]", "[3, 2]"}},
      {"eq, dtypes", [] { eq(f32s({2}), f64s({2})); }, {"eq", "f32[2]", "f64[2]"}},
      {"where, float condition", [] { where(f32s({2}), f32s({2}), f32s({2})); }, {"where", "f32[2]", "bool"}},
      {"where, branches' dtypes", [] { where(bools({2}), f32s({2}), f64s({2})); }, {"where", "f32[2]", "f64[2]"}},
      {"where, shapes", [] { where(bools({3}), f32s({2}), f32s({2})); }, {"where", "[3]", "[2]"}},
      {"masked_fill, float mask", [] { masked_fill(f32s({2}), f32s({2}), 0.0); }, {"masked_fill", "f32[2]", "bool"}},
      {"masked_fill, mask shape", [] { masked_fill(f32s({2, 3}), bools({4}), 0.0); }, {"masked_fill", "[4]", "[2, 3]"}},
      {"clamp, min > max", [] { clamp(f32s({2}), 1.0, -1.0); }, {"clamp", "1", "-1"}},
  });
}

TEST_CASE("in-place ops refuse destinations that overlap themselves or their source") {
  const Tensor x = f32s({3, 3});
  check_bad_calls({
      {"add_ into an expand", [] { f32s({1, 3}).expand({4, 3}).add_(f32s({4, 3})); },
       {"add_", "f32[4, 3]", "stride 0 in dim 0"}},
      {"mul_ of an expand", [] { f32s({3, 1}).expand({3, 5}).mul_(2.0); }, {"mul_", "stride 0 in dim 1"}},
      {"copy_ into an expand", [] { f32s({1}).expand({4}).copy_(f32s({4})); }, {"copy_", "stride 0"}},
      {"add_ of its own transpose", [x] { Tensor(x).add_(x.t()); }, {"add_", "shares memory", "same view"}},
      {"copy_ of its own first row", [x] { Tensor(x).copy_(x.select(0, 0)); }, {"copy_", "shares memory"}},
  });
  // What stays allowed: a tensor updated by itself, disjoint parts of one storage, and a
  // fill of an expand (one value everywhere).
  Tensor y = from_vector<float>({1, 2, 3, 4});
  y.add_(y);
  check_values(y, {2, 4, 6, 8});
  y.narrow(0, 0, 2).copy_(y.narrow(0, 2, 2));
  check_values(y, {6, 8, 6, 8});
  from_vector<float>({0}).expand({3}).fill_(1.0);
}

TEST_CASE("reductions reject out-of-range dims and unsupported dtypes") {
  check_bad_calls({
      {"sum over dim 2 of a 2-D tensor", [] { sum(f32s({2, 3}), {2}); }, {"sum", "dim 2", "2"}},
      {"mean over a repeated dim", [] { mean(f32s({2, 3}), {1, -1}); }, {"mean", "dim"}},
      {"mean of i64", [] { mean(i64s({2})); }, {"mean", "i64"}},
      {"max over dim -3", [] { kiln::max(f32s({2, 3}), -3); }, {"max", "dim -3"}},
      {"max of an empty slice", [] { kiln::max(f32s({2, 0}), 1); }, {"max", "[2, 0]"}},
      {"argmin over dim 5", [] { argmin(f32s({2}), 5); }, {"argmin", "dim 5"}},
      {"var over dim 3", [] { var(f32s({2, 3}), {3}); }, {"var", "dim 3"}},
      {"logsumexp of i64", [] { logsumexp(i64s({2}), {0}); }, {"logsumexp", "i64"}},
      {"norm of bool", [] { norm(bools({2})); }, {"norm", "bool"}},
      {"sum_to a shape it does not reduce to", [] { sum_to(f32s({2, 3}), {4}); }, {"sum_to", "[2, 3]", "[4]"}},
  });
}

TEST_CASE("view and shape ops reject impossible shapes, dims and index ranges") {
  const Tensor x = f32s({2, 3});
  check_bad_calls({
      {"view to another element count", [&] { x.view({4, 4}); }, {"view", "[4, 4]", "6"}},
      {"reshape with two -1", [&] { x.reshape({-1, -1}); }, {"reshape", "[-1, -1]"}},
      {"view of a transposed tensor", [&] { x.t().view({6}); }, {"view", "f32[3, 2]", "[6]"}},
      {"permute with too few dims", [&] { x.permute({0}); }, {"permute", "1", "2"}},
      {"permute repeating a dim", [&] { x.permute({1, 1}); }, {"permute", "repeats"}},
      {"transpose dim 5", [&] { x.transpose(0, 5); }, {"transpose", "dim 5"}},
      {"narrow past the end", [&] { x.narrow(1, 2, 4); }, {"narrow", "start 2", "length 4", "3"}},
      {"select index 3 of size 2", [&] { x.select(0, 3); }, {"select", "index 3", "size 2"}},
      {"slice with step 0", [&] { x.slice(1, 0, 2, 0); }, {"slice", "step", "0"}},
      {"expand 3 to 4", [&] { x.expand({2, 4}); }, {"expand", "f32[2, 3]", "[2, 4]"}},
      {"squeeze dim 4", [&] { x.squeeze(4); }, {"squeeze", "dim 4"}},
      {"unsqueeze dim 5", [&] { x.unsqueeze(5); }, {"unsqueeze", "dim 5"}},
      {"flatten, start after end", [&] { x.flatten(1, 0); }, {"flatten", "start_dim 1", "end_dim 0"}},
      {"cat, sizes differ", [&] { cat({x, f32s({2, 4})}, 0); }, {"cat", "[2, 3]", "[2, 4]"}},
      {"cat, dtypes differ", [&] { cat({x, f64s({2, 3})}, 0); }, {"cat", "f32", "f64"}},
      {"cat, dims differ", [&] { cat({x, f32s({6})}, 0); }, {"cat", "[2, 3]", "[6]"}},
      {"cat, dim out of range", [&] { cat({x, x}, 2); }, {"cat", "dim 2"}},
      {"cat of nothing", [] { cat({}, 0); }, {"cat", "empty"}},
      {"stack, shapes differ", [&] { stack({x, f32s({3, 2})}); }, {"stack", "[2, 3]", "[3, 2]"}},
      {"split sizes that do not sum up", [&] { split(x, std::vector<int64_t>{1, 1}, 1); }, {"split", "[1, 1]", "3"}},
      {"split_size 0", [&] { split(x, int64_t{0}, 1); }, {"split", "split_size", "0"}},
      {"chunk into 0", [&] { chunk(x, 0); }, {"chunk", "0"}},
      {"pad, odd number of values", [&] { pad(x, {1, 2, 3}); }, {"pad", "3"}},
      {"pad cropping more than the dim", [&] { pad(x, {-2, -2}); }, {"pad", "-2", "dim 1"}},
  });
}

TEST_CASE("index ops reject out-of-range indices and non-integer index dtypes") {
  const Tensor weight = f32s({10, 4});
  check_bad_calls({
      {"embedding index 10 of 10 rows", [&] { embedding(from_vector<int64_t>({1, 10}), weight); },
       {"embedding", "index 10", "[0, 10)"}},
      {"embedding index -1", [&] { embedding(from_vector<int64_t>({-1}), weight); }, {"embedding", "index -1"}},
      {"embedding with f32 indices", [&] { embedding(f32s({3}), weight); }, {"embedding", "f32[3]", "i64"}},
      {"embedding, 1-D weight", [] { embedding(i64s({2}), f32s({10})); }, {"embedding", "f32[10]", "2-D"}},
      {"embedding, padding_idx 10", [&] { embedding(i64s({2}), weight, 10); }, {"embedding", "padding_idx 10"}},
      {"gather index 3 along a dim of 3", [] { gather(f32s({2, 3}), 1, from_vector<int64_t>({0, 3}, {2, 1})); },
       {"gather", "index 3", "[0, 3)"}},
      {"gather, index with other dims", [] { gather(f32s({2, 3}), 1, i64s({2})); }, {"gather", "i64[2]", "f32[2, 3]"}},
      {"gather with f64 index", [] { gather(f32s({2, 3}), 1, f64s({2, 1})); }, {"gather", "f64[2, 1]", "i64"}},
      {"gather along dim 2", [] { gather(f32s({2, 3}), 2, i64s({2, 1})); }, {"gather", "dim 2"}},
      {"index_select index -4", [] { index_select(f32s({2, 3}), 1, from_vector<int64_t>({-4})); },
       {"index_select", "index -4"}},
      {"index_select, 2-D index", [] { index_select(f32s({2, 3}), 1, i64s({1, 1})); }, {"index_select", "i64[1, 1]"}},
      {"scatter_add, src dtype", [] { scatter_add(f32s({2, 3}), 1, i64s({2, 1}), f64s({2, 1})); },
       {"scatter_add", "f32[2, 3]", "f64[2, 1]"}},
      {"scatter_add index 5", [] { scatter_add(f32s({2, 3}), 1, from_vector<int64_t>({5, 0}, {2, 1}), f32s({2, 1})); },
       {"scatter_add", "index 5"}},
  });
}

TEST_CASE("linalg ops reject unaligned shapes and integer or mixed dtypes") {
  check_bad_calls({
      {"matmul [2, 3] x [4, 5]", [] { matmul(f32s({2, 3}), f32s({4, 5})); }, {"matmul", "[2, 3]", "[4, 5]", "3 != 4"}},
      {"matmul of i64", [] { matmul(i64s({2, 2}), i64s({2, 2})); }, {"matmul", "i64[2, 2]"}},
      {"matmul f32 x f64", [] { matmul(f32s({2, 2}), f64s({2, 2})); }, {"matmul", "f32[2, 2]", "f64[2, 2]"}},
      {"matmul of a 0-d tensor", [] { matmul(f32s({}), f32s({2})); }, {"matmul", "f32[]"}},
      {"matmul, batch dims", [] { matmul(f32s({2, 2, 3}), f32s({3, 3, 4})); }, {"matmul", "[2, 2, 3]", "[3, 3, 4]"}},
      {"bmm of 2-D tensors", [] { bmm(f32s({2, 3}), f32s({3, 2})); }, {"bmm", "f32[2, 3]", "3-D"}},
      {"bmm, batch sizes", [] { bmm(f32s({2, 2, 3}), f32s({3, 3, 2})); }, {"bmm", "[2, 2, 3]", "[3, 3, 2]"}},
      {"linear, in_features", [] { linear(f32s({2, 3}), f32s({4, 5})); }, {"linear", "[2, 3]", "[4, 5]", "3 != 5"}},
      {"linear, bias shape", [] { linear(f32s({2, 3}), f32s({4, 3}), f32s({3})); }, {"linear", "f32[3]", "4"}},
      {"linear, i64 input", [] { linear(i64s({2, 3}), i64s({4, 3})); }, {"linear", "i64"}},
  });
}

TEST_CASE("losses reject float targets, mismatched shapes and out-of-range classes") {
  const Tensor logits = f32s({3, 4});
  check_bad_calls({
      {"cross_entropy with float targets", [&] { cross_entropy(logits, f32s({3})); }, {"cross_entropy", "f32[3]", "i64"}},
      {"cross_entropy, target count", [&] { cross_entropy(logits, i64s({4})); }, {"cross_entropy", "i64[4]", "f32[3, 4]"}},
      {"cross_entropy, class 4 of 4", [&] { cross_entropy(logits, from_vector<int64_t>({0, 4, 1})); },
       {"cross_entropy", "target 4", "4"}},
      {"cross_entropy, class -2", [&] { cross_entropy(logits, from_vector<int64_t>({0, -2, 1})); },
       {"cross_entropy", "target -2"}},
      {"cross_entropy, 1-D logits", [] { cross_entropy(f32s({4}), i64s({1})); }, {"cross_entropy", "f32[4]"}},
      {"cross_entropy, i64 logits", [] { cross_entropy(i64s({3, 4}), i64s({3})); }, {"cross_entropy", "i64[3, 4]"}},
      {"cross_entropy, label_smoothing 2", [&] { cross_entropy(logits, i64s({3}), {.label_smoothing = 2}); },
       {"cross_entropy", "label_smoothing", "2"}},
      {"cross_entropy, reduction 'avg'", [&] { cross_entropy(logits, i64s({3}), {.reduction = "avg"}); },
       {"cross_entropy", "avg"}},
      {"nll_loss with f64 targets", [&] { nll_loss(logits, f64s({3})); }, {"nll_loss", "f64[3]", "i64"}},
      {"mse_loss, shapes", [] { mse_loss(f32s({2, 3}), f32s({3, 2})); }, {"mse_loss", "f32[2, 3]", "f32[3, 2]"}},
      {"mse_loss, dtypes", [] { mse_loss(f32s({2}), f64s({2})); }, {"mse_loss", "f32[2]", "f64[2]"}},
      {"mse_loss, reduction", [] { mse_loss(f32s({2}), f32s({2}), "max"); }, {"mse_loss", "max"}},
  });
}

TEST_CASE("activations, normalizations and dropout reject bad dtypes, dims and options") {
  check_bad_calls({
      {"relu of bool", [] { relu(bools({2})); }, {"relu", "bool"}},
      {"sigmoid of i64", [] { sigmoid(i64s({2})); }, {"sigmoid", "i64"}},
      {"gelu approximate 'fast'", [] { gelu(f32s({2}), "fast"); }, {"gelu", "fast"}},
      {"softplus with beta 0", [] { softplus(f32s({2}), 0.0); }, {"softplus", "beta"}},
      {"softmax over dim 2 of a 2-D tensor", [] { softmax(f32s({2, 3}), 2); }, {"softmax", "dim 2"}},
      {"log_softmax of i64", [] { log_softmax(i64s({2, 3}), 1); }, {"log_softmax", "i64[2, 3]"}},
      {"layer_norm, normalized_shape", [] { layer_norm(f32s({2, 3}), {4}); }, {"layer_norm", "[4]", "f32[2, 3]"}},
      {"layer_norm, weight shape", [] { layer_norm(f32s({2, 3}), {3}, f32s({2})); }, {"layer_norm", "f32[2]", "[3]"}},
      {"layer_norm, bias dtype", [] { layer_norm(f32s({2, 3}), {3}, {}, f64s({3})); }, {"layer_norm", "f64[3]"}},
      {"layer_norm, empty normalized_shape", [] { layer_norm(f32s({2, 3}), {}); }, {"layer_norm", "[]"}},
      {"layer_norm, negative eps", [] { layer_norm(f32s({2, 3}), {3}, {}, {}, -1.0); }, {"layer_norm", "eps", "-1"}},
      {"dropout p 1.5", [] { dropout(f32s({2}), 1.5, true); }, {"dropout", "1.5"}},
      {"dropout p -0.1", [] { dropout(f32s({2}), -0.1, true); }, {"dropout", "-0.1"}},
      {"dropout of i64", [] { dropout(i64s({2}), 0.5, true); }, {"dropout", "i64"}},
  });
}

TEST_CASE("attention rejects mismatched q, k, v and masks") {
  const Tensor q = f32s({1, 2, 3, 4}), k = f32s({1, 2, 5, 4}), v = f32s({1, 2, 5, 6});
  const char* op = "scaled_dot_product_attention";
  check_bad_calls({
      {"head dims differ", [&] { scaled_dot_product_attention(q, f32s({1, 2, 5, 3}), v); }, {op, "f32[1, 2, 3, 4]", "f32[1, 2, 5, 3]"}},
      {"key counts differ", [&] { scaled_dot_product_attention(q, k, f32s({1, 2, 4, 6})); }, {op, "f32[1, 2, 5, 4]", "f32[1, 2, 4, 6]"}},
      {"heads differ", [&] { scaled_dot_product_attention(q, f32s({1, 3, 5, 4}), v); }, {op, "(B, H)"}},
      {"2-D inputs", [] { scaled_dot_product_attention(f32s({3, 4}), f32s({5, 4}), f32s({5, 4})); }, {op, "f32[3, 4]"}},
      {"f64 key", [&] { scaled_dot_product_attention(q, f64s({1, 2, 5, 4}), v); }, {op, "f32[1, 2, 3, 4]", "f64[1, 2, 5, 4]"}},
      {"i64 inputs", [] { scaled_dot_product_attention(i64s({1, 3, 4}), i64s({1, 3, 4}), i64s({1, 3, 4})); }, {op, "i64"}},
      {"mask shape", [&] { scaled_dot_product_attention(q, k, v, {.mask = bools({3, 4})}); }, {op, "bool[3, 4]", "[1, 2, 3, 5]"}},
      {"mask dtype", [&] { scaled_dot_product_attention(q, k, v, {.mask = f64s({3, 5})}); }, {op, "f64[3, 5]", "f32"}},
      {"dropout_p 2", [&] { scaled_dot_product_attention(q, k, v, {.dropout_p = 2}); }, {op, "dropout_p", "2"}},
  });
}

TEST_CASE("convolutions and pools reject bad shapes, channels and window settings") {
  const Tensor image = f32s({1, 3, 8, 8}), weight = f32s({4, 3, 3, 3});
  check_bad_calls({
      {"conv2d, channel mismatch", [&] { conv2d(image, f32s({4, 2, 3, 3})); }, {"conv2d", "f32[1, 3, 8, 8]", "f32[4, 2, 3, 3]"}},
      {"conv2d, 2-D input", [&] { conv2d(f32s({8, 8}), weight); }, {"conv2d", "f32[8, 8]"}},
      {"conv2d, bias shape", [&] { conv2d(image, weight, f32s({3})); }, {"conv2d", "f32[3]"}},
      {"conv2d, stride 0", [&] { conv2d(image, weight, {}, {.stride = 0}); }, {"conv2d", "stride"}},
      {"conv2d, negative padding", [&] { conv2d(image, weight, {}, {.padding = -1}); }, {"conv2d", "padding"}},
      {"conv2d, groups 2 of 3 channels", [&] { conv2d(image, weight, {}, {.groups = 2}); }, {"conv2d", "groups"}},
      {"conv2d, kernel larger than the image", [] { conv2d(f32s({1, 3, 2, 2}), f32s({4, 3, 3, 3})); },
       {"conv2d", "[1, 3, 2, 2]"}},
      {"conv2d, f64 weight", [&] { conv2d(image, f64s({4, 3, 3, 3})); }, {"conv2d", "f32", "f64"}},
      {"conv1d, channel mismatch", [] { conv1d(f32s({1, 3, 8}), f32s({4, 2, 3})); }, {"conv1d", "f32[1, 3, 8]", "f32[4, 2, 3]"}},
      {"max_pool2d, kernel 0", [&] { max_pool2d(image, 0); }, {"max_pool2d", "kernel"}},
      {"max_pool2d, 2-D input", [] { max_pool2d(f32s({8, 8}), 2); }, {"max_pool2d", "f32[8, 8]"}},
      {"max_pool2d, padding over half the kernel", [&] { max_pool2d(image, 2, {.padding = 2}); }, {"max_pool2d", "padding"}},
      {"max_pool2d, kernel larger than the input", [] { max_pool2d(f32s({1, 1, 2, 2}), 3); }, {"max_pool2d", "[1, 1, 2, 2]"}},
      {"avg_pool1d, negative stride", [] { avg_pool1d(f32s({1, 2, 8}), 2, {.stride = -1}); }, {"avg_pool1d", "stride"}},
      {"avg_pool2d of i64", [] { avg_pool2d(i64s({1, 1, 4, 4}), 2); }, {"avg_pool2d", "i64"}},
      {"adaptive_avg_pool2d to size 0", [&] { adaptive_avg_pool2d(image, 0); }, {"adaptive_avg_pool2d", "0"}},
      {"adaptive_avg_pool1d of a 4-D input", [&] { adaptive_avg_pool1d(image, 2); }, {"adaptive_avg_pool1d", "f32[1, 3, 8, 8]"}},
  });
}

TEST_CASE("context_pool rejects mismatched x, m, s and bad options") {
  const Tensor x = f32s({2, 5, 4}), m = rand({2, 5}), s = rand({2, 5}) + 0.5;
  check_bad_calls({
      {"x 2-D", [&] { context_pool(f32s({5, 4}), m, s); }, {"context_pool", "f32[5, 4]"}},
      {"m shape", [&] { context_pool(x, rand({2, 4}), s); }, {"context_pool", "f32[2, 4]"}},
      {"s shape", [&] { context_pool(x, m, rand({2, 6}) + 0.5); }, {"context_pool", "f32[2, 6]"}},
      {"m dtype", [&] { context_pool(x, m.to(f64), s); }, {"context_pool", "f64[2, 5]"}},
      {"s negative", [&] { context_pool(x, m, -s); }, {"context_pool", "s"}},
      {"negative window", [&] { context_pool(x, m, s, {.window = -1}); }, {"context_pool", "window", "-1"}},
      {"stride 0", [&] { context_pool(x, m, s, {.stride = 0}); }, {"context_pool", "stride", "0"}},
      {"negative eps", [&] { context_pool(x, m, s, {.eps = -1}); }, {"context_pool", "eps"}},
      {"2-D op, causal", [] { context_pool2d(f32s({1, 2, 2, 3}), rand({1, 2, 2}), rand({1, 2, 2}) + 0.5, {.causal = true}); },
       {"context_pool2d", "causal"}},
  });
}

// ---- devices -------------------------------------------------------------------------------------
// kiln never copies between devices behind the user's back, so an op given a CUDA tensor
// next to CPU ones must say which tensor is on which device. A tensor on cuda:0 can exist
// without a GPU: from_blob wraps memory and allocates nothing; its data is never read
// because the op refuses the mix first.

TEST_CASE("ops given a tensor on another device name the op, the tensor and its device") {
  float fake[64] = {};
  const Tensor gpu = from_blob(fake, {2, 3}, f32, Device::cuda(0));
  const Tensor gpu_square = from_blob(fake, {3, 3}, f32, Device::cuda(0));
  const Tensor gpu_index = from_blob(fake, {2}, i64, Device::cuda(0));
  const Tensor cpu = f32s({2, 3});
  const std::vector<std::string> on_gpu = {"f32[2, 3]", "cuda:0"};
  auto says = [&](const char* op, std::vector<std::string> extra = {"f32[2, 3]", "cuda:0"}) {
    extra.insert(extra.begin(), op);
    return extra;
  };
  check_bad_calls({
      {"add(cpu, cuda)", [&] { add(cpu, gpu); }, says("add")},
      {"mul(cuda, cpu)", [&] { mul(gpu, cpu); }, says("mul")},
      {"matmul(cpu, cuda)", [&] { matmul(f32s({2, 3}), gpu_square); }, says("matmul", {"f32[3, 3]", "cuda:0"})},
      {"cat(cpu, cuda)", [&] { cat({cpu, gpu}); }, says("cat")},
      {"embedding(cuda indices, cpu weight)", [&] { embedding(gpu_index, f32s({4, 2})); }, says("embedding", {"i64[2]", "cuda:0"})},
      {"cross_entropy(cuda logits, cpu targets)", [&] { cross_entropy(gpu, i64s({2})); }, says("cross_entropy")},
      {"attention(cpu q, cuda k)", [&] { scaled_dot_product_attention(f32s({1, 2, 3}), gpu.unsqueeze(0), f32s({1, 2, 3})); },
       says("scaled_dot_product_attention", {"f32[1, 2, 3]", "cuda:0"})},
      {"conv2d(cuda input, cpu weight)", [&] { conv2d(gpu.view({1, 1, 2, 3}), f32s({1, 1, 1, 1})); },
       says("conv2d", {"cuda:0"})},
      {"context_pool(cuda x, cpu m and s)", [&] { context_pool(gpu.unsqueeze(0), rand({1, 2}), rand({1, 2}) + 1); },
       says("context_pool", {"cuda:0"})},
      {"a Linear layer on cpu given a cuda input", [&] { nn::Linear(3, 2).forward(gpu); }, says("linear")},
  });
}

TEST_CASE("moving to a device kiln was built without is a clear error") {
  if (cuda::is_available()) {
    MESSAGE("skipped: this build has a GPU, so moving to cuda:0 is allowed");
    return;
  }
  // Which part refuses (the storage, or the CUDA backend without a device) may change;
  // the message must name the device either way.
  CHECK_THROWS_KILN(f32s({2}).to(Device::cuda(0)), "cuda:0");
  CHECK_THROWS_KILN(zeros({2}, {.device = Device::cuda(0)}), "cuda:0");
}

// ---- factories -----------------------------------------------------------------------------------

TEST_CASE("factories reject negative sizes and impossible ranges, naming the factory") {
  check_bad_calls({
      {"empty({2, -3})", [] { empty({2, -3}); }, {"empty", "[2, -3]"}},
      {"zeros({-1})", [] { zeros({-1}); }, {"zeros", "[-1]"}},
      {"ones({3, -2})", [] { ones({3, -2}); }, {"ones", "[3, -2]"}},
      {"full({-4})", [] { full({-4}, 1.0); }, {"full", "[-4]"}},
      {"rand({-1, 2})", [] { rand({-1, 2}); }, {"rand", "[-1, 2]"}},
      {"randn({-2})", [] { randn({-2}); }, {"randn", "[-2]"}},
      {"normal({-2})", [] { normal(0, 1, {-2}); }, {"normal", "[-2]"}},
      {"uniform, low > high", [] { uniform(1, 0, {2}); }, {"uniform", "1", "0"}},
      {"randint({-3})", [] { randint(0, 5, {-3}); }, {"randint", "[-3]"}},
      {"randint, empty range", [] { randint(5, 5, {2}); }, {"randint", "5"}},
      {"eye(-1)", [] { eye(-1); }, {"eye", "-1"}},
      {"linspace with -2 steps", [] { linspace(0, 1, -2); }, {"linspace", "-2"}},
      {"arange with step 0", [] { arange(0, 5, 0); }, {"arange", "step"}},
      {"arange to infinity", [] { arange(0, INFINITY, 1); }, {"arange", "finite"}},
      {"from_vector, 3 values for [2, 2]", [] { from_vector<float>({1, 2, 3}, {2, 2}); }, {"from_vector", "3", "[2, 2]"}},
      {"from_vector, negative size", [] { from_vector<float>({}, {0, -1}); }, {"from_vector", "[0, -1]"}},
      {"from_blob, negative size", [] { from_blob(nullptr, {-1}, f32); }, {"from_blob", "[-1]"}},
  });
}

// ---- nn layers -----------------------------------------------------------------------------------

TEST_CASE("nn layers reject zero and negative sizes at construction, naming the layer") {
  check_bad_calls({
      {"Linear(0, 4)", [] { nn::Linear(0, 4); }, {"Linear", "0"}},
      {"Linear(3, -1)", [] { nn::Linear(3, -1); }, {"Linear", "-1"}},
      {"Embedding(0, 8)", [] { nn::Embedding(0, 8); }, {"Embedding", "0"}},
      {"Embedding(10, -2)", [] { nn::Embedding(10, -2); }, {"Embedding", "-2"}},
      {"Embedding, padding_idx 10 of 10", [] { nn::Embedding(10, 2, 10); }, {"Embedding", "padding_idx 10"}},
      {"Conv2d(0, 4, 3)", [] { nn::Conv2d(0, 4, 3); }, {"Conv2d", "in_channels=0"}},
      {"Conv2d(3, 4, 0)", [] { nn::Conv2d(3, 4, 0); }, {"Conv2d", "kernel_size"}},
      {"Conv2d, groups 2 of 3 channels", [] { nn::Conv2d(3, 4, 3, {.groups = 2}); }, {"Conv2d", "groups=2"}},
      {"Conv1d(3, -4, 3)", [] { nn::Conv1d(3, -4, 3); }, {"Conv1d", "-4"}},
      {"Conv1d(3, 4, -1)", [] { nn::Conv1d(3, 4, -1); }, {"Conv1d", "kernel_size", "-1"}},
      {"LayerNorm({0})", [] { nn::LayerNorm(Shape{0}); }, {"LayerNorm", "[0]"}},
      {"LayerNorm({})", [] { nn::LayerNorm(Shape{}); }, {"LayerNorm", "[]"}},
      {"RMSNorm({4, -1})", [] { nn::RMSNorm(Shape{4, -1}); }, {"RMSNorm", "[4, -1]"}},
      {"MultiHeadAttention(0, 2)", [] { nn::MultiHeadAttention(0, 2); }, {"MultiHeadAttention", "0"}},
      {"MultiHeadAttention(8, 0)", [] { nn::MultiHeadAttention(8, 0); }, {"MultiHeadAttention", "8", "0"}},
      {"MultiHeadAttention(8, 3)", [] { nn::MultiHeadAttention(8, 3); }, {"MultiHeadAttention", "8", "3"}},
      {"TransformerBlock(0, 2)", [] { nn::TransformerBlock(0, 2); }, {"TransformerBlock", "d_model", "0"}},
      {"TransformerBlock, mlp_ratio 0", [] { nn::TransformerBlock(8, 2, {.mlp_ratio = 0}); }, {"TransformerBlock", "mlp_ratio"}},
      {"GPT, vocab_size 0", [] { nn::GPT({.vocab_size = 0}); }, {"GPT", "vocab_size"}},
      {"GPT, n_layer -1", [] { nn::GPT({.n_layer = -1}); }, {"GPT", "n_layer"}},
      {"GPT, d_model 0", [] { nn::GPT({.d_model = 0}); }, {"GPT", "d_model"}},
      {"Dropout(1.5)", [] { nn::Dropout(1.5); }, {"Dropout", "1.5"}},
      {"ContextPool1d(0)", [] { nn::ContextPool1d(0); }, {"ContextPool1d", "0"}},
      {"ContextPool1d, window -1", [] { nn::ContextPool1d(4, {.window = -1}); }, {"ContextPool1d", "window", "-1"}},
      {"PatchEmbed, img_size 0", [] { nn::PatchEmbed({.img_size = 0}); }, {"PatchEmbed", "img_size"}},
      {"PatchEmbed, patch 5 of 32", [] { nn::PatchEmbed({.img_size = 32, .patch_size = 5}); }, {"PatchEmbed", "5"}},
      {"MaxPool2d(0)", [] { nn::MaxPool2d(0); }, {"MaxPool2d", "kernel_size"}},
      {"AvgPool1d(-2)", [] { nn::AvgPool1d(-2); }, {"AvgPool1d", "kernel_size", "-2"}},
      {"AdaptiveAvgPool2d(0)", [] { nn::AdaptiveAvgPool2d(0); }, {"AdaptiveAvgPool2d", "output_size"}},
  });
}

TEST_CASE("nn layers reject inputs of the wrong shape or dtype, naming the layer and the input") {
  manual_seed(1);
  const nn::Linear linear(4, 2);
  const nn::Embedding embedding(10, 4);
  const nn::LayerNorm norm(Shape{4});
  const nn::MultiHeadAttention attn(8, 2);
  const nn::Conv2d conv(3, 4, 3);
  const nn::GPT gpt({.vocab_size = 16, .block_size = 8, .n_layer = 1, .n_head = 2, .d_model = 8});
  check_bad_calls({
      {"Linear(4, 2) on (2, 3)", [&] { linear.forward(f32s({2, 3})); }, {"Linear", "4", "f32[2, 3]"}},
      {"Linear on f64", [&] { linear.forward(f64s({2, 4})); }, {"linear", "f64[2, 4]", "f32"}},
      {"Embedding on an index out of range", [&] { embedding.forward(from_vector<int64_t>({3, 12})); }, {"embedding", "index 12"}},
      {"LayerNorm(4) on (2, 3)", [&] { norm.forward(f32s({2, 3})); }, {"layer_norm", "[4]", "f32[2, 3]"}},
      {"MultiHeadAttention(8) on (2, 3, 6)", [&] { attn.forward(f32s({2, 3, 6})); }, {"MultiHeadAttention", "f32[2, 3, 6]"}},
      {"MultiHeadAttention, padding mask shape", [&] { attn.forward(f32s({2, 3, 8}), bools({3, 2})); },
       {"MultiHeadAttention", "bool[3, 2]", "[2, 3]"}},
      {"Conv2d(3 -> 4) on 2 channels", [&] { conv.forward(f32s({1, 2, 8, 8})); }, {"conv2d", "f32[1, 2, 8, 8]"}},
      {"GPT on f32 tokens", [&] { gpt.forward(f32s({1, 4})); }, {"GPT", "f32[1, 4]"}},
      {"GPT on 9 tokens, block_size 8", [&] { gpt.forward(i64s({1, 9})); }, {"GPT", "9", "8"}},
      {"GPT on token 16 of 16", [&] { gpt.forward(from_vector<int64_t>({1, 16}, {1, 2})); }, {"embedding", "index 16"}},
  });
}

// ---- state dicts ---------------------------------------------------------------------------------

namespace {

struct TwoLayers : nn::Module {
  std::shared_ptr<nn::Linear> fc1, fc2;
  TwoLayers(int64_t hidden = 4) {
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(3, hidden));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(hidden, 2));
  }
};

}  // namespace

TEST_CASE("load_state_dict names missing, unexpected and mis-shaped keys, and both shapes") {
  TwoLayers model;
  const nn::StateDict good = TwoLayers().state_dict();

  nn::StateDict missing;
  for (const auto& [name, t] : good)
    if (name != "fc2.bias") missing.insert(name, t);
  CHECK_THROWS_KILN(model.load_state_dict(missing), "load_state_dict: missing keys: fc2.bias");

  nn::StateDict extra = good;
  extra.insert("fc3.weight", f32s({2, 2}));
  CHECK_THROWS_KILN(model.load_state_dict(extra), "load_state_dict: unexpected keys: fc3.weight");

  nn::StateDict both = missing;
  both.insert("fc3.weight", f32s({2, 2}));
  CHECK_THROWS_KILN(model.load_state_dict(both), "missing keys: fc2.bias; unexpected keys: fc3.weight");

  const nn::StateDict wider = TwoLayers(5).state_dict();
  CHECK_THROWS_KILN(model.load_state_dict(wider),
                    "load_state_dict: shape mismatch for fc1.weight (checkpoint [5, 3], model [4, 3])");
  CHECK_THROWS_KILN(model.load_state_dict(wider), "fc2.weight (checkpoint [2, 5], model [2, 4])");

  // Non-strict loading forgives missing and unexpected keys, never a wrong shape.
  CHECK_NOTHROW(model.load_state_dict(both, /*strict=*/false));
  CHECK_THROWS_KILN(model.load_state_dict(wider, /*strict=*/false), "shape mismatch for fc1.weight");

  // A refused load changes nothing: the weights are still the model's own.
  const std::vector<double> before = model.fc1->weight.to_vector<double>();
  CHECK_THROWS_KILN(model.load_state_dict(extra), "unexpected keys");
  CHECK(model.fc1->weight.to_vector<double>() == before);
}
