// scaled_dot_product_attention: values and gradients against PyTorch (golden), gradcheck
// in f64 (masks, causal, 3-D, non-contiguous inputs, mask gradients, second
// derivatives), fully masked rows, dropout, the blocked / parallel kernel paths against
// a composite reference, and the error messages.
#include <omp.h>

#include <cmath>
#include <limits>

#include <kiln/ops/attention.h>

#include "golden/attention_golden.h"
#include "helpers.h"

using namespace kiln;
using namespace kiln::testing;
namespace G = golden::attention;

namespace {

const double kInf = std::numeric_limits<double>::infinity();

Tensor golden_tensor(const std::vector<double>& values, const Shape& shape, DType dtype = f64) {
  return from_vector(values, shape, {.dtype = dtype});
}

// Bool masks are stored as 0/1.
Tensor golden_bool(const std::vector<double>& values, const Shape& shape) {
  return gt(from_vector(values, shape), 0.5);
}

// The fixed output weighting W of the golden script: the first numel of output_weights.
Tensor output_weights(const Tensor& out) {
  REQUIRE(static_cast<size_t>(out.numel()) <= G::output_weights.size());
  const std::vector<double> w(G::output_weights.begin(), G::output_weights.begin() + out.numel());
  return from_vector(w, out.shape(), {.dtype = out.dtype()});
}

// The textbook formula with Tensor ops, kiln's convention for rows with no visible key
// included (they attend to nothing).
Tensor reference_attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& o = {}) {
  const double scale = o.scale ? *o.scale : 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  Tensor logits = matmul(q, k.transpose(-1, -2)) * scale;
  const Tensor minus_inf = scalar_like(logits, -kInf, "test");
  if (o.mask.defined()) logits = o.mask.dtype() == b8 ? where(o.mask, logits, minus_inf) : logits + o.mask;
  if (o.causal) {
    const Tensor key = arange(static_cast<double>(k.size(-2))).unsqueeze(0);
    const Tensor query = arange(static_cast<double>(q.size(-2))).unsqueeze(1);
    logits = where(le(key, query), logits, minus_inf);
  }
  const Tensor visible = gt(max(logits.detach(), -1, true), -kInf);
  const Tensor zero = scalar_like(logits, 0.0, "test");
  return matmul(where(visible, softmax(where(visible, logits, zero), -1), zero), v);
}

struct GoldenInputs {
  const std::vector<double>&q, &k, &v;
  Shape q_shape, k_shape, v_shape;
};

struct GoldenExpected {
  const std::vector<double>&out, &dq, &dk, &dv;
};

// Runs attention on the golden inputs in `dtype`, checks its output against PyTorch,
// then backpropagates sum(out * W) and checks the gradients of q, k and v.
void check_golden(const GoldenInputs& in, const AttentionOptions& options, const GoldenExpected& e, DType dtype) {
  CAPTURE(dtype_name(dtype));
  const double tol = dtype == f64 ? 1e-10 : 3e-5;
  const Tensor q = golden_tensor(in.q, in.q_shape, dtype).requires_grad_();
  const Tensor k = golden_tensor(in.k, in.k_shape, dtype).requires_grad_();
  const Tensor v = golden_tensor(in.v, in.v_shape, dtype).requires_grad_();
  AttentionOptions o = options;
  if (o.mask.defined() && o.mask.dtype() != b8) o.mask = o.mask.to(dtype);
  const Tensor out = scaled_dot_product_attention(q, k, v, o);
  check_values(out, e.out, tol, tol);
  sum(out * output_weights(out)).backward();
  check_values(q.grad(), e.dq, tol, tol);
  check_values(k.grad(), e.dk, tol, tol);
  check_values(v.grad(), e.dv, tol, tol);
}

void check_golden_both_dtypes(const GoldenInputs& in, const AttentionOptions& options, const GoldenExpected& e) {
  for (DType dtype : {f64, f32}) check_golden(in, options, e, dtype);
}

using AttentionFn = std::function<Tensor(const std::vector<Tensor>&)>;

// An attention call on gradcheck's inputs {q, k, v}.
AttentionFn attention_of(const AttentionOptions& options) {
  return [options](const std::vector<Tensor>& in) {
    return scaled_dot_product_attention(in[0], in[1], in[2], options);
  };
}

double fraction_zero(const Tensor& t) {
  int64_t zeros = 0;
  for (double x : t.to_vector<double>()) zeros += x == 0.0;
  return static_cast<double>(zeros) / static_cast<double>(t.numel());
}

}  // namespace

// ---- golden values -----------------------------------------------------------------------------

TEST_CASE("attention matches PyTorch: 4-D, Lq != Lk, value dim != head dim, custom scale") {
  const GoldenInputs in{G::basic_q, G::basic_k, G::basic_v, {2, 2, 3, 4}, {2, 2, 5, 4}, {2, 2, 5, 3}};
  check_golden_both_dtypes(in, {}, {G::basic, G::basic_grad0, G::basic_grad1, G::basic_grad2});
  check_golden_both_dtypes(in, {.scale = 0.3},
                           {G::basic_scale, G::basic_scale_grad0, G::basic_scale_grad1, G::basic_scale_grad2});
}

TEST_CASE("causal attention matches PyTorch, square and rectangular (top-left aligned)") {
  const AttentionOptions causal{.causal = true};
  check_golden_both_dtypes(
      {G::causal_square_q, G::causal_square_k, G::causal_square_v, {1, 2, 4, 3}, {1, 2, 4, 3}, {1, 2, 4, 3}}, causal,
      {G::causal_square, G::causal_square_grad0, G::causal_square_grad1, G::causal_square_grad2});
  check_golden_both_dtypes(
      {G::causal_wide_q, G::causal_wide_k, G::causal_wide_v, {1, 2, 3, 3}, {1, 2, 5, 3}, {1, 2, 5, 2}}, causal,
      {G::causal_wide, G::causal_wide_grad0, G::causal_wide_grad1, G::causal_wide_grad2});
  check_golden_both_dtypes(
      {G::causal_tall_q, G::causal_tall_k, G::causal_tall_v, {1, 2, 5, 3}, {1, 2, 3, 3}, {1, 2, 3, 2}}, causal,
      {G::causal_tall, G::causal_tall_grad0, G::causal_tall_grad1, G::causal_tall_grad2});
}

TEST_CASE("masked attention matches PyTorch: additive (with -inf) and bool masks, broadcast") {
  const GoldenInputs in{G::masked_q, G::masked_k, G::masked_v, {2, 2, 3, 4}, {2, 2, 5, 4}, {2, 2, 5, 3}};
  SUBCASE("additive (Lq, Lk) with -inf entries") {
    check_golden_both_dtypes(in, {.mask = golden_tensor(G::additive_2d_mask, {3, 5})},
                             {G::additive_2d, G::additive_2d_grad0, G::additive_2d_grad1, G::additive_2d_grad2});
  }
  SUBCASE("bool key padding (B, 1, 1, Lk)") {
    check_golden_both_dtypes(in, {.mask = golden_bool(G::key_pad_mask, {2, 1, 1, 5})},
                             {G::key_pad, G::key_pad_grad0, G::key_pad_grad1, G::key_pad_grad2});
  }
  SUBCASE("bool (B, H, Lq, Lk)") {
    check_golden_both_dtypes(in, {.mask = golden_bool(G::bool_4d_mask, {2, 2, 3, 5})},
                             {G::bool_4d, G::bool_4d_grad0, G::bool_4d_grad1, G::bool_4d_grad2});
  }
  SUBCASE("bool and causal together, leaving two rows with no visible key (zeros)") {
    check_golden_both_dtypes(
        in, {.mask = golden_bool(G::bool_4d_mask, {2, 2, 3, 5}), .causal = true},
        {G::bool_4d_causal, G::bool_4d_causal_grad0, G::bool_4d_causal_grad1, G::bool_4d_causal_grad2});
  }
}

TEST_CASE("an additive mask that requires grad gets PyTorch's gradient") {
  for (DType dtype : {f64, f32}) {
    CAPTURE(dtype_name(dtype));
    const double tol = dtype == f64 ? 1e-10 : 3e-5;
    const Tensor q = golden_tensor(G::masked_q, {2, 2, 3, 4}, dtype).requires_grad_();
    const Tensor k = golden_tensor(G::masked_k, {2, 2, 5, 4}, dtype).requires_grad_();
    const Tensor v = golden_tensor(G::masked_v, {2, 2, 5, 3}, dtype).requires_grad_();
    const Tensor mask = golden_tensor(G::additive_4d_mask, {2, 1, 3, 5}, dtype).requires_grad_();
    const Tensor out = scaled_dot_product_attention(q, k, v, {.mask = mask});
    check_values(out, G::additive_4d, tol, tol);
    sum(out * output_weights(out)).backward();
    check_values(q.grad(), G::additive_4d_grad0, tol, tol);
    check_values(k.grad(), G::additive_4d_grad1, tol, tol);
    check_values(v.grad(), G::additive_4d_grad2, tol, tol);
    REQUIRE(mask.grad().shape() == Shape({2, 1, 3, 5}));  // summed over the broadcast heads
    check_values(mask.grad(), G::additive_4d_grad3, tol, tol);
  }
}

TEST_CASE("3-D (B, L, D) attention matches PyTorch, with a (B, Lq, Lk) mask or causal") {
  const GoldenInputs in{G::three_d_q, G::three_d_k, G::three_d_v, {2, 3, 4}, {2, 5, 4}, {2, 5, 2}};
  check_golden_both_dtypes(in, {.mask = golden_tensor(G::three_d_mask, {2, 3, 5}), .scale = 0.7},
                           {G::three_d, G::three_d_grad0, G::three_d_grad1, G::three_d_grad2});
  check_golden_both_dtypes(
      in, {.causal = true},
      {G::three_d_causal, G::three_d_causal_grad0, G::three_d_causal_grad1, G::three_d_causal_grad2});
}

TEST_CASE("the output is laid out (B, Lq, H, Dv): merging heads is a view") {
  const Tensor q = randn({2, 3, 5, 4}), k = randn({2, 3, 6, 4}), v = randn({2, 3, 6, 7});
  const Tensor out = scaled_dot_product_attention(q, k, v);
  CHECK(out.shape() == Shape({2, 3, 5, 7}));
  CHECK(out.transpose(1, 2).is_contiguous());
  check_close(out, reference_attention(q, k, v), 1e-6, 1e-5);
}

// ---- gradcheck ---------------------------------------------------------------------------------

TEST_CASE("attention passes gradcheck for q, k, v with and without masks and causal") {
  const Tensor q = leaf64({2, 2, 3, 4}), k = leaf64({2, 2, 5, 4}), v = leaf64({2, 2, 5, 3});
  SUBCASE("plain") { check_gradients(attention_of({}), {q, k, v}); }
  SUBCASE("causal, both rectangular shapes") {
    check_gradients(attention_of({.causal = true}), {q, k, v});
    check_gradients(attention_of({.causal = true}), {leaf64({1, 2, 5, 3}), leaf64({1, 2, 3, 3}), leaf64({1, 2, 3, 2})});
  }
  SUBCASE("bool mask with a fully masked row") {
    Tensor keep = gt(randn({2, 1, 3, 5}), -0.5);
    keep.select(0, 1).select(1, 2).zero_();  // batch 1, query 2 sees nothing
    check_gradients(attention_of({.mask = keep, .causal = true}), {q, k, v});
  }
  SUBCASE("additive mask, differentiable too") {
    check_gradients(
        [](const std::vector<Tensor>& in) {
          return scaled_dot_product_attention(in[0], in[1], in[2], {.mask = in[3]});
        },
        {q, k, v, leaf64({3, 5})});
  }
  SUBCASE("3-D with a custom scale") {
    check_gradients(attention_of({.scale = 0.9}), {leaf64({2, 3, 4}), leaf64({2, 4, 4}), leaf64({2, 4, 2})});
  }
  SUBCASE("non-contiguous inputs: heads split from (B, L, H, D) views") {
    check_gradients(
        [](const std::vector<Tensor>& in) {
          return scaled_dot_product_attention(in[0].transpose(1, 2), in[1].transpose(1, 2), in[2].transpose(1, 2),
                                              {.causal = true});
        },
        {leaf64({2, 4, 2, 3}), leaf64({2, 4, 2, 3}), leaf64({2, 4, 2, 3})});
  }
  SUBCASE("several query blocks (Lq > 64), one head") {
    check_gradients(attention_of({.causal = true}),
                    {leaf64({1, 1, 70, 2}), leaf64({1, 1, 70, 2}), leaf64({1, 1, 70, 2})});
  }
}

TEST_CASE("attention supports double backward (create_graph), dropout included") {
  const Tensor q = leaf64({1, 2, 3, 2}), k = leaf64({1, 2, 4, 2}), v = leaf64({1, 2, 4, 3});
  const Tensor mask = leaf64({3, 4});
  for (double p : {0.0, 0.3}) {
    CAPTURE(p);
    // gradcheck of (q, k, v, mask) -> the first derivatives of sum(out * W). Inside the
    // gradcheck they are built with create_graph (the composite backward); its finite
    // differences come from the fused kernel, so the two paths are checked against each other.
    check_gradients(
        [p](const std::vector<Tensor>& in) {
          GradModeGuard grad_mode(true);
          const bool outer_graph = in[0].requires_grad();
          std::vector<Tensor> leaves;
          for (const Tensor& t : in) leaves.push_back(outer_graph ? t : t.detach().requires_grad_());
          manual_seed(5);
          const Tensor out = scaled_dot_product_attention(
              leaves[0], leaves[1], leaves[2], {.mask = leaves[3], .causal = true, .dropout_p = p});
          const std::vector<Tensor> g = grad({sum(out * output_weights(out))}, leaves, {.create_graph = outer_graph});
          return cat({g[0].flatten(), g[1].flatten(), g[2].flatten(), g[3].flatten()});
        },
        {q, k, v, mask});
  }
}

TEST_CASE("the fused and the create_graph backward give the same gradients") {
  const Tensor q = leaf64({2, 3, 70, 5}), k = leaf64({2, 3, 90, 5}), v = leaf64({2, 3, 90, 4});
  const Tensor mask = leaf64({2, 1, 70, 90});
  manual_seed(3);
  const Tensor out = scaled_dot_product_attention(q, k, v, {.mask = mask, .causal = true, .dropout_p = 0.2});
  const Tensor loss = sum(out * cos(out.detach()));
  const std::vector<Tensor> fused = grad({loss}, {q, k, v, mask}, {.retain_graph = true});
  const std::vector<Tensor> composite = grad({loss}, {q, k, v, mask}, {.create_graph = true});
  for (size_t i = 0; i < fused.size(); ++i) {
    CAPTURE(i);
    CHECK(composite[i].requires_grad());
    check_close(fused[i], composite[i].detach(), 1e-12, 1e-9);
  }
}

// ---- kernel paths at larger sizes ------------------------------------------------------------------

TEST_CASE("the blocked, parallel kernel matches the composite formula, forward and backward") {
  // Several query blocks with a partial last one; Lk not a multiple of 4 (dropout draws
  // straddle Philox blocks); many heads (parallel over heads) and a single head (query
  // blocks split over threads, dk/dv summed from partial buffers).
  struct Case {
    Shape q, k, v;
    bool causal;
    bool mask;
  };
  const Case cases[] = {
      {{2, 4, 150, 16}, {2, 4, 130, 16}, {2, 4, 130, 24}, true, true},
      {{1, 1, 300, 32}, {1, 1, 301, 32}, {1, 1, 301, 32}, false, true},
      {{1, 1, 257, 64}, {1, 1, 257, 64}, {1, 1, 257, 64}, true, false},
      {{3, 200, 8}, {3, 77, 8}, {3, 77, 8}, true, true},
  };
  for (const Case& c : cases) {
    for (DType dtype : {f64, f32}) {
      CAPTURE(shape_str(c.q));
      CAPTURE(dtype_name(dtype));
      const bool f32_ = dtype == f32;
      const Tensor q = randn(c.q, {.dtype = dtype}).requires_grad_();
      const Tensor k = randn(c.k, {.dtype = dtype}).requires_grad_();
      const Tensor v = randn(c.v, {.dtype = dtype}).requires_grad_();
      Shape scores = c.q;
      scores.back() = c.k[c.k.size() - 2];
      scores[1] = c.q.size() == 4 ? 1 : scores[1];  // broadcast over heads
      const Tensor mask = c.mask ? (randn(scores, {.dtype = dtype}) * 2.0).requires_grad_() : Tensor();
      const AttentionOptions options{.mask = mask, .causal = c.causal};
      const Tensor out = scaled_dot_product_attention(q, k, v, options);
      const Tensor expected = reference_attention(q, k, v, options);
      check_close(out, expected.detach(), f32_ ? 1e-5 : 1e-12, f32_ ? 1e-4 : 1e-10);

      const Tensor w = cos(expected.detach() * 3.0);
      std::vector<Tensor> inputs = {q, k, v};
      if (c.mask) inputs.push_back(mask);
      const std::vector<Tensor> got = grad({sum(out * w)}, inputs);
      const std::vector<Tensor> want = grad({sum(expected * w)}, inputs);
      for (size_t i = 0; i < got.size(); ++i) {
        CAPTURE(i);
        check_close(got[i], want[i], f32_ ? 2e-4 : 1e-11, f32_ ? 1e-3 : 1e-9);
      }
    }
  }
}

TEST_CASE("attention gives the same result on one thread and on all") {
  const Tensor q = randn({1, 2, 200, 16}), k = randn({1, 2, 200, 16}), v = randn({1, 2, 200, 16});
  const auto run = [&] {
    const Tensor ql = q.detach().requires_grad_();
    manual_seed(8);
    const Tensor out = scaled_dot_product_attention(ql, k, v, {.causal = true, .dropout_p = 0.1});
    sum(out * out).backward();
    return std::make_pair(out.detach(), ql.grad());
  };
  const auto all = run();
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const auto one = run();
  omp_set_num_threads(threads);
  check_close(all.first, one.first, 1e-6, 1e-5);
  check_close(all.second, one.second, 1e-5, 1e-4);
}

// ---- rows with no visible key ------------------------------------------------------------------------

TEST_CASE("a fully masked row gives zeros and finite gradients, bool or additive -inf") {
  Tensor q = leaf64({1, 2, 3, 4}), k = leaf64({1, 2, 5, 4}), v = leaf64({1, 2, 5, 3});
  Tensor keep = ones({3, 5}, {.dtype = f64});
  keep.select(0, 1).zero_();  // query 1 sees nothing
  const Tensor additive = where(gt(keep, 0.5), zeros({3, 5}, {.dtype = f64}), full({3, 5}, -kInf, {.dtype = f64}));
  for (const Tensor& mask : {gt(keep, 0.5), additive}) {
    q.zero_grad(), k.zero_grad(), v.zero_grad();
    const Tensor out = scaled_dot_product_attention(q, k, v, {.mask = mask});
    check_values(out.select(2, 1), std::vector<double>(6, 0.0), 0, 0);
    sum(out * out).backward();
    for (const Tensor& g : {q.grad(), k.grad(), v.grad()})
      for (double x : g.to_vector<double>()) CHECK(std::isfinite(x));
    check_values(q.grad().select(2, 1), std::vector<double>(8, 0.0), 0, 0);
  }
}

TEST_CASE("empty attention: no keys gives zeros, no queries or no batch gives empty results") {
  const Tensor q = leaf64({2, 1, 3, 4});
  const Tensor no_keys = zeros({2, 1, 0, 4}, {.dtype = f64}), no_values = zeros({2, 1, 0, 5}, {.dtype = f64});
  const Tensor out = scaled_dot_product_attention(q, no_keys, no_values);
  CHECK(out.shape() == Shape({2, 1, 3, 5}));
  check_values(out, std::vector<double>(30, 0.0), 0, 0);
  sum(out).backward();
  check_values(q.grad(), std::vector<double>(24, 0.0), 0, 0);

  // No queries: the keys and values get zero gradients.
  const Tensor k = leaf64({1, 2, 4, 3}), v = leaf64({1, 2, 4, 3});
  sum(scaled_dot_product_attention(zeros({1, 2, 0, 3}, {.dtype = f64}), k, v, {.causal = true})).backward();
  check_values(k.grad(), std::vector<double>(24, 0.0), 0, 0);
  check_values(v.grad(), std::vector<double>(24, 0.0), 0, 0);
  // An empty batch.
  const Tensor qb = leaf64({0, 2, 3, 4});
  const Tensor empty_batch = scaled_dot_product_attention(qb, leaf64({0, 2, 5, 4}), leaf64({0, 2, 5, 2}));
  CHECK(empty_batch.shape() == Shape({0, 2, 3, 2}));
  sum(empty_batch).backward();
  CHECK(qb.grad().shape() == Shape({0, 2, 3, 4}));
}

// ---- dropout ---------------------------------------------------------------------------------------------

TEST_CASE("attention dropout: identity when not training, reproducible from manual_seed") {
  const Tensor q = randn({2, 2, 40, 8}), k = randn({2, 2, 40, 8}), v = randn({2, 2, 40, 8});
  const Tensor plain = scaled_dot_product_attention(q, k, v);
  check_close(scaled_dot_product_attention(q, k, v, {.dropout_p = 0.5, .training = false}), plain, 0, 0);

  manual_seed(42);
  const Tensor a = scaled_dot_product_attention(q, k, v, {.dropout_p = 0.3});
  const Tensor b = scaled_dot_product_attention(q, k, v, {.dropout_p = 0.3});  // the generator moved on
  manual_seed(42);
  const Tensor c = scaled_dot_product_attention(q, k, v, {.dropout_p = 0.3});
  check_close(a, c, 0, 0);
  CHECK(a.to_vector<float>() != b.to_vector<float>());
  CHECK(a.to_vector<float>() != plain.to_vector<float>());
  // p = 1 drops every probability.
  check_values(scaled_dot_product_attention(q, k, v, {.dropout_p = 1.0}), std::vector<double>(2 * 2 * 40 * 8, 0.0));
}

TEST_CASE("attention dropout drops the entries dropout(softmax(...)) would, at rate p") {
  // With v = I (Lk = Dv) the output is the dropped-out probability matrix itself.
  const int64_t L = 37;
  const Tensor q = randn({2, 3, L, 8}, {.dtype = f64}), k = randn({2, 3, L, 8}, {.dtype = f64});
  const Tensor v = eye(L, {.dtype = f64}).expand({2, 3, L, L});
  manual_seed(11);
  const Tensor fused = scaled_dot_product_attention(q, k, v, {.causal = true, .dropout_p = 0.25});
  manual_seed(11);
  const Tensor probs = reference_attention(q, k, v, {.causal = true});
  const Tensor composite = dropout(probs, 0.25, true);
  check_close(fused, composite, 1e-14, 1e-12);
  // Among the entries a causal row can see, about a quarter are dropped.
  const double visible = static_cast<double>(2 * 3 * L * (L + 1) / 2), total = static_cast<double>(2 * 3 * L * L);
  const double dropped = (fraction_zero(fused) * total - (total - visible)) / visible;
  CHECK(std::fabs(dropped - 0.25) < 0.03);
}

TEST_CASE("attention with dropout passes gradcheck with a fixed seed") {
  check_gradients(
      [](const std::vector<Tensor>& in) {
        manual_seed(21);
        return scaled_dot_product_attention(in[0], in[1], in[2], {.causal = true, .dropout_p = 0.4});
      },
      {leaf64({1, 2, 4, 3}), leaf64({1, 2, 5, 3}), leaf64({1, 2, 5, 2})});
}

// ---- errors ---------------------------------------------------------------------------------------------

TEST_CASE("attention rejects bad shapes, dtypes, masks and options with clear messages") {
  const Tensor q = randn({2, 2, 3, 4}), k = randn({2, 2, 5, 4}), v = randn({2, 2, 5, 3});
  CHECK_THROWS_KILN(scaled_dot_product_attention(randn({3, 4}), randn({5, 4}), randn({5, 3})),
                    "scaled_dot_product_attention: q, k, v must all be 4-D (B, H, L, D) or all 3-D (B, L, D), "
                    "got q f32[3, 4]");
  CHECK_THROWS_KILN(scaled_dot_product_attention(q, randn({2, 5, 4}), v), "must all be 4-D");
  CHECK_THROWS_KILN(scaled_dot_product_attention(q, randn({2, 3, 5, 4}), v), "must have the same (B, H) dims");
  CHECK_THROWS_KILN(scaled_dot_product_attention(q, k, randn({2, 2, 6, 3})),
                    "k and v must hold the same number of keys, got k f32[2, 2, 5, 4] and v f32[2, 2, 6, 3]");
  CHECK_THROWS_KILN(scaled_dot_product_attention(q, randn({2, 2, 5, 3}), v),
                    "q and k must have the same head dim, got q f32[2, 2, 3, 4] and k f32[2, 2, 5, 3]");
  CHECK_THROWS_KILN(scaled_dot_product_attention(q, k.to(f64), v), "dtypes differ");
  CHECK_THROWS_KILN(scaled_dot_product_attention(q.to(i64), k.to(i64), v.to(i64)), "expected a floating tensor");
  CHECK_THROWS_KILN(scaled_dot_product_attention(q, k, v, {.mask = zeros({3, 5}, {.dtype = i64})}),
                    "mask i64[3, 5] must be bool (true = attend) or additive in q's dtype f32");
  CHECK_THROWS_KILN(scaled_dot_product_attention(q, k, v, {.mask = zeros({3, 5}, {.dtype = f64})}),
                    "must be bool (true = attend) or additive");
  CHECK_THROWS_KILN(scaled_dot_product_attention(q, k, v, {.mask = zeros({3, 4})}),
                    "mask f32[3, 4] does not broadcast to the scores [2, 2, 3, 5] (B, H, Lq, Lk)");
  CHECK_THROWS_KILN(scaled_dot_product_attention(q, k, v, {.mask = zeros({1, 2, 2, 3, 5})}), "does not broadcast");
  CHECK_THROWS_KILN(scaled_dot_product_attention(q, k, v, {.dropout_p = 1.5}), "dropout_p must be in [0, 1], got 1.5");
}
