// Numerical robustness at the edges a training run reaches sooner or later: logits of
// +-1e4, attention rows that see no key, layer norm of a constant row, saturated
// activations. Each case checks the forward AND the backward for finite values, and the
// exact value where one is defined (cross_entropy against long double arithmetic), in
// f32 and f64, on every kernel path that computes it (row and tiled softmax, fused and
// create_graph backward). The last cases check that AnomalyMode names the op that made
// the first NaN of a deliberately broken model.
//
// The areas' own tests (test_normalization, test_loss, test_attention) hold the golden
// values; this file holds the contracts for extreme inputs in one place (docs/reliability.md).
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "helpers.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

const double kInf = std::numeric_limits<double>::infinity();

bool all_finite(const Tensor& t) {
  for (double v : t.to_vector<double>())
    if (!std::isfinite(v)) return false;
  return true;
}

// d(sum(y * w))/dx for a fixed, non-uniform w (a plain sum would make many gradients
// vanish identically and hide a wrong backward). Runs the fused backward, or with
// create_graph the composite one built from Tensor ops.
Tensor weighted_gradient(const Tensor& x, const Tensor& y, bool create_graph) {
  const Tensor w = linspace(-1.0, 2.0, y.numel(), {.dtype = y.dtype()}).reshape(y.shape());
  return kiln::grad({sum(y * w)}, {x}, {.create_graph = create_graph})[0];
}

// ---- long double references ----------------------------------------------------------------

// Row-wise cross entropy of (N, C) logits, mean over rows, and its gradient, in long double.
struct CrossEntropyReference {
  long double loss = 0;
  std::vector<long double> grad;
};

CrossEntropyReference cross_entropy_reference(const std::vector<double>& logits, const std::vector<int64_t>& target,
                                              int64_t classes) {
  const int64_t rows = static_cast<int64_t>(target.size());
  CrossEntropyReference ref;
  ref.grad.resize(logits.size());
  for (int64_t r = 0; r < rows; ++r) {
    const double* x = logits.data() + r * classes;
    long double max = x[0], sum = 0;
    for (int64_t c = 0; c < classes; ++c) max = std::max<long double>(max, x[c]);
    for (int64_t c = 0; c < classes; ++c) sum += std::exp(static_cast<long double>(x[c]) - max);
    const long double lse = max + std::log(sum);
    ref.loss += (lse - x[target[static_cast<size_t>(r)]]) / rows;
    for (int64_t c = 0; c < classes; ++c) {
      const long double p = std::exp(static_cast<long double>(x[c]) - lse);
      ref.grad[static_cast<size_t>(r * classes + c)] = (p - (c == target[static_cast<size_t>(r)] ? 1 : 0)) / rows;
    }
  }
  return ref;
}

std::vector<double> to_double(const std::vector<long double>& v) { return {v.begin(), v.end()}; }

}  // namespace

// ---- softmax, log_softmax, logsumexp --------------------------------------------------------

TEST_CASE("softmax of [1e4, -1e4] is [1, 0] with a finite, exact gradient, on the row and tiled kernels") {
  for (DType dtype : {f32, f64}) {
    for (bool create_graph : {false, true}) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(create_graph);
      // As a row (dim 1, contiguous) and as columns (dim 0: the tiled kernel).
      const Tensor rows = from_vector<double>({1e4, -1e4, -1e4, 1e4}, {2, 2}, {.dtype = dtype}).requires_grad_();
      const Tensor columns = rows.detach().t().contiguous().requires_grad_();
      for (const auto& [x, dim] : {std::pair{rows, int64_t{1}}, std::pair{columns, int64_t{0}}}) {
        const Tensor y = softmax(x, dim);
        check_values(dim == 1 ? y : y.t(), {1, 0, 0, 1}, 0, 0);
        // dx = y * (g - sum(g * y)): exactly 0 where y is one-hot.
        check_values(weighted_gradient(x, y, create_graph), {0, 0, 0, 0}, 0, 0);
      }
    }
  }
}

TEST_CASE("log_softmax of +-1e4 logits is exact and its gradient finite") {
  for (DType dtype : {f32, f64}) {
    for (bool create_graph : {false, true}) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(create_graph);
      const Tensor x = from_vector<double>({1e4, -1e4, 0}, {1, 3}, {.dtype = dtype}).requires_grad_();
      const Tensor y = log_softmax(x, 1);
      // log(1 + e^-1e4 + e^-2e4) is 0 in any precision.
      check_values(y, {0, -2e4, -1e4}, 0, 0);
      // dx = g - softmax * sum(g), g = linspace(-1, 2, 3) = (-1, 0.5, 2), sum 1.5.
      check_values(weighted_gradient(x, y, create_graph), {-1 - 1.5, 0.5, 2}, 1e-6);
    }
  }
}

TEST_CASE("logsumexp of +-1e4 is exact, of an all -inf row -inf, and both have finite gradients") {
  for (DType dtype : {f32, f64}) {
    CAPTURE(dtype_name(dtype));
    const Tensor x = from_vector<double>({1e4, -1e4, 1e4, 1e4, -kInf, -kInf}, {3, 2}, {.dtype = dtype}).requires_grad_();
    const Tensor y = logsumexp(x, {1});
    const std::vector<double> got = y.to_vector<double>();
    CHECK(got[0] == 1e4);
    CHECK(got[1] == doctest::Approx(1e4 + std::log(2.0)).epsilon(1e-7));
    CHECK(got[2] == -kInf);
    // d logsumexp / dx = exp(x - logsumexp) is the softmax of the row; the row of -inf
    // gets zeros, not NaN. In f32, logsumexp = 1e4 + ln 2 is rounded to the float spacing
    // at 1e4 (2^-10), so exp(x - it) is 0.5 only to within about 5e-4.
    const Tensor g = kiln::grad({sum(y)}, {x})[0];
    check_values(g, {1, 0, 0.5, 0.5, 0, 0}, dtype == f32 ? 5e-4 : 1e-12, 0);
  }
}

// ---- cross_entropy -----------------------------------------------------------------------------

TEST_CASE("cross_entropy at logits of +-1e4 equals the exact (long double) value, loss and gradient") {
  // Rows chosen to stress the shift: the target at the largest or the smallest logit,
  // ties at the top, then random logits spread over [-1e4, 1e4].
  constexpr int64_t kClasses = 5;
  std::vector<double> logits = {1e4,  -1e4, -1e4, -1e4, -1e4,   // target 1: loss 2e4
                                1e4,  -1e4, -1e4, -1e4, -1e4,   // target 0: loss ~0
                                1e4,  1e4,  -1e4, 0,    -1e4,   // target 1: loss ln 2
                                -1e4, -1e4, -1e4, -1e4, -1e4};  // all equal: ln 5
  std::vector<int64_t> target = {1, 0, 1, 4};
  manual_seed(17);
  const std::vector<double> random = uniform(-1e4, 1e4, {8, kClasses}, {.dtype = f64}).to_vector<double>();
  logits.insert(logits.end(), random.begin(), random.end());
  for (int64_t r = 0; r < 8; ++r) target.push_back(r % kClasses);
  const int64_t rows = static_cast<int64_t>(target.size());

  for (DType dtype : {f32, f64}) {
    for (bool create_graph : {false, true}) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(create_graph);
      const Tensor x = from_vector(logits, {rows, kClasses}, {.dtype = dtype}).requires_grad_();
      // The reference starts from the logits as stored (f32 rounds the random ones).
      const CrossEntropyReference ref = cross_entropy_reference(x.to_vector<double>(), target, kClasses);
      const Tensor loss = cross_entropy(x, from_vector(target));
      // f32: the terms reach 2e4, whose float spacing is 2e-3.
      const double atol = dtype == f32 ? 4e-3 : 1e-9;
      CHECK(std::fabs(loss.item<double>() - static_cast<double>(ref.loss)) <= atol);
      const Tensor g = kiln::grad({loss}, {x}, {.create_graph = create_graph})[0];
      CHECK(all_finite(g));
      check_values(g, to_double(ref.grad), dtype == f32 ? 1e-6 : 1e-12, 0);
    }
  }
}

TEST_CASE("cross_entropy with label smoothing and per-row losses stays finite at +-1e4") {
  for (DType dtype : {f32, f64}) {
    CAPTURE(dtype_name(dtype));
    const Tensor x = from_vector<double>({1e4, -1e4, -1e4, -1e4, 1e4, -1e4}, {2, 3}, {.dtype = dtype}).requires_grad_();
    const Tensor loss = cross_entropy(x, from_vector<int64_t>({1, 1}), {.label_smoothing = 0.3, .reduction = "none"});
    // Smoothing eps over C classes: (1 - eps) * nll + eps * (lse - mean(x)).
    // Row 0: lse = 1e4, nll = 2e4, lse - mean = 1e4 - (-1e4 / 3) = 4e4 / 3.
    // Row 1: the target is the max: nll = 0, same lse - mean.
    check_values(loss, {0.7 * 2e4 + 0.3 * 4e4 / 3, 0.3 * 4e4 / 3}, 1e-2, 1e-6);
    sum(loss).backward();
    // dx = softmax - q, q = eps / C + (1 - eps) * onehot.
    check_values(x.grad(), {1 - 0.1, -0.1 - 0.7, -0.1, -0.1, 1 - 0.1 - 0.7, -0.1}, 1e-6);
  }
}

// ---- attention: rows that see no key -------------------------------------------------------------
// Contract (ops/attention.h): a query row whose keys are all masked gets a zero output and
// zero gradients, on the fused kernel and on the create_graph (composite) backward.

namespace {

// Masks (B, H, Lq, Lk) = (1, 2, 3, 4) in which query 1 of both heads sees no key; in
// head 1, query 2 sees only key 3.
struct FullyMaskedCase {
  Tensor keep, additive;
};

FullyMaskedCase fully_masked_case(DType dtype) {
  Tensor keep = ones({1, 2, 3, 4}, {.dtype = f64});
  keep.select(2, 1).zero_();
  keep.select(1, 1).select(1, 2).narrow(1, 0, 3).zero_();
  const Tensor zero = zeros({1, 2, 3, 4}, {.dtype = dtype}), minus_inf = full({1, 2, 3, 4}, -kInf, {.dtype = dtype});
  return {gt(keep, 0.5), where(gt(keep, 0.5), zero, minus_inf)};
}

}  // namespace

TEST_CASE("attention: a fully masked row gives zeros and zero gradients, fused and composite, f32 and f64") {
  for (DType dtype : {f32, f64}) {
    const FullyMaskedCase masks = fully_masked_case(dtype);
    for (const Tensor& mask : {masks.keep, masks.additive}) {
      for (bool create_graph : {false, true}) {
        CAPTURE(dtype_name(dtype));
        CAPTURE(dtype_name(mask.dtype()));
        CAPTURE(create_graph);
        manual_seed(3);
        const Tensor q = randn({1, 2, 3, 8}, {.dtype = dtype}).requires_grad_();
        const Tensor k = randn({1, 2, 4, 8}, {.dtype = dtype}).requires_grad_();
        const Tensor v = randn({1, 2, 4, 5}, {.dtype = dtype}).requires_grad_();
        const Tensor out = scaled_dot_product_attention(q, k, v, {.mask = mask});
        CHECK(all_finite(out));
        check_values(out.select(2, 1), std::vector<double>(10, 0.0), 0, 0);
        // Query 2 of head 1 sees key 3 only: its output is v's row 3, exactly.
        check_close(out.select(1, 1).select(1, 2), v.detach().select(1, 1).select(1, 3), 1e-6);

        const std::vector<Tensor> grads = kiln::grad({sum(out * out)}, {q, k, v}, {.create_graph = create_graph});
        for (const Tensor& g : grads) CHECK(all_finite(g));
        check_values(grads[0].select(2, 1), std::vector<double>(16, 0.0), 0, 0);  // dq of the masked row
        if (create_graph) {  // the composite graph must be differentiable again, NaN-free
          const Tensor second = kiln::grad({sum(grads[0] * grads[0])}, {v})[0];
          CHECK(all_finite(second));
        }
      }
    }
  }
}

TEST_CASE("attention: causal plus a mask that hides the diagonal leaves row 0 empty, still zeros") {
  for (DType dtype : {f32, f64}) {
    CAPTURE(dtype_name(dtype));
    manual_seed(4);
    const Tensor q = randn({2, 3, 4}, {.dtype = dtype}).requires_grad_();
    const Tensor k = randn({2, 3, 4}, {.dtype = dtype}).requires_grad_();
    const Tensor v = randn({2, 3, 4}, {.dtype = dtype}).requires_grad_();
    // Key 0 is masked for every query; causal leaves query 0 only key 0.
    const Tensor keep = gt(from_vector<double>({0, 1, 1}), 0.5);
    const Tensor out = scaled_dot_product_attention(q, k, v, {.mask = keep, .causal = true});
    check_values(out.select(1, 0), std::vector<double>(8, 0.0), 0, 0);
    sum(out).backward();
    for (const Tensor& t : {q, k, v}) CHECK(all_finite(t.grad()));
  }
}

// A NaN in a query makes every score of its row NaN. The row's max skips NaN and used to
// land on -inf, so the row passed for fully masked and came out as zeros, hiding the NaN
// (found by running the CUDA kernel, which gives NaN, against the CPU one).
TEST_CASE("attention: a NaN query gives a NaN row, not the zeros of a masked row") {
  for (DType dtype : {f32, f64}) {
    CAPTURE(dtype_name(dtype));
    Tensor q = randn({1, 3, 4}, {.dtype = dtype});
    q.select(1, 1).select(1, 2).fill_(std::nan(""));
    const Tensor k = randn({1, 5, 4}, {.dtype = dtype}), v = randn({1, 5, 4}, {.dtype = dtype});
    const Tensor out = scaled_dot_product_attention(q, k, v);
    for (int64_t row = 0; row < 3; ++row) {
      const std::vector<double> values = out.select(1, row).to_vector<double>();
      for (double x : values) CHECK(std::isnan(x) == (row == 1));
    }
  }
}

TEST_CASE("MultiHeadAttention: a sequence whose every key is padded gives proj's bias, with finite gradients") {
  for (DType dtype : {f32, f64}) {
    CAPTURE(dtype_name(dtype));
    manual_seed(5);
    nn::MultiHeadAttention attn(8, 2);
    attn.to(dtype);
    const Tensor x = randn({2, 3, 8}, {.dtype = dtype}).requires_grad_();
    // Batch 0: every key padded. Batch 1: only the last one.
    const Tensor padded = gt(from_vector<double>({1, 1, 1, 0, 0, 1}, {2, 3}), 0.5);
    const Tensor y = attn.forward(x, padded);
    CHECK(all_finite(y));
    for (int64_t t = 0; t < 3; ++t) check_close(y.select(0, 0).select(0, t), attn.proj->bias, 1e-6);
    sum(y * y).backward();
    CHECK(all_finite(x.grad()));
    check_values(x.grad().select(0, 0), std::vector<double>(24, 0.0), 0, 0);  // batch 0 reaches no output
    for (const Tensor& p : attn.parameters()) CHECK(all_finite(p.grad()));
  }
}

// ---- layer_norm / RMSNorm of a constant row --------------------------------------------------

TEST_CASE("layer_norm of a constant row is finite: the output is the bias, gradients finite") {
  for (DType dtype : {f32, f64}) {
    for (double value : {0.0, 1.0, -3.5, 1e4}) {
      for (bool create_graph : {false, true}) {
        CAPTURE(dtype_name(dtype));
        CAPTURE(value);
        CAPTURE(create_graph);
        const Tensor x = full({2, 6}, value, {.dtype = dtype}).requires_grad_();
        const Tensor weight = linspace(0.5, 1.5, 6, {.dtype = dtype}).requires_grad_();
        const Tensor bias = linspace(-1.0, 1.0, 6, {.dtype = dtype}).requires_grad_();
        const Tensor y = layer_norm(x, {6}, weight, bias);
        check_values(y, bias.detach().expand({2, 6}).to_vector<double>(), 1e-6, 0);
        const Tensor w = linspace(-1.0, 2.0, 12, {.dtype = dtype}).reshape({2, 6});
        const std::vector<Tensor> g = kiln::grad({sum(y * w)}, {x, weight, bias}, {.create_graph = create_graph});
        for (const Tensor& t : g) CHECK(all_finite(t));
        // xhat = 0 on the row, so dweight = sum_rows(g * xhat) = 0 and dx = rstd * (gw - mean(gw)).
        check_values(g[1], std::vector<double>(6, 0.0), 1e-6, 0);
      }
    }
  }
}

TEST_CASE("nn::LayerNorm and nn::RMSNorm of a zero row stay finite, forward and backward") {
  for (DType dtype : {f32, f64}) {
    CAPTURE(dtype_name(dtype));
    nn::LayerNorm ln(Shape{4});
    nn::RMSNorm rms(Shape{4});
    ln.to(dtype);
    rms.to(dtype);
    const Tensor x = zeros({3, 4}, {.dtype = dtype}).requires_grad_();
    const Tensor y = ln.forward(x) + rms.forward(x);
    check_values(y, std::vector<double>(12, 0.0), 0, 0);
    sum(y * linspace(-1.0, 1.0, 12, {.dtype = dtype}).reshape({3, 4})).backward();
    CHECK(all_finite(x.grad()));
    for (const Tensor& p : ln.parameters()) CHECK(all_finite(p.grad()));
    for (const Tensor& p : rms.parameters()) CHECK(all_finite(p.grad()));
  }
}

// ---- saturated activations -----------------------------------------------------------------------

TEST_CASE("activations at +-1e4 saturate to their limits with finite, exact gradients") {
  struct Activation {
    const char* name;
    Tensor (*fn)(const Tensor&);
    double at_minus, at_plus;            // f(-1e4), f(1e4)
    double slope_minus, slope_plus;      // f'(-1e4), f'(1e4)
  };
  const Activation activations[] = {
      {"relu", [](const Tensor& x) { return relu(x); }, 0, 1e4, 0, 1},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, 0, 1, 0, 0},
      {"tanh", [](const Tensor& x) { return kiln::tanh(x); }, -1, 1, 0, 0},
      {"gelu", [](const Tensor& x) { return gelu(x); }, 0, 1e4, 0, 1},
      {"gelu tanh", [](const Tensor& x) { return gelu(x, "tanh"); }, 0, 1e4, 0, 1},
      {"silu", [](const Tensor& x) { return silu(x); }, 0, 1e4, 0, 1},
      {"softplus", [](const Tensor& x) { return softplus(x); }, 0, 1e4, 0, 1},
  };
  for (const Activation& a : activations) {
    for (DType dtype : {f32, f64}) {
      CAPTURE(a.name);
      CAPTURE(dtype_name(dtype));
      const Tensor x = from_vector<double>({-1e4, 1e4}, {.dtype = dtype}).requires_grad_();
      const Tensor y = a.fn(x);
      check_values(y, {a.at_minus, a.at_plus}, 1e-6, 1e-7);
      sum(y).backward();
      check_values(x.grad(), {a.slope_minus, a.slope_plus}, 1e-6, 0);
    }
  }
}

// ---- AnomalyMode ---------------------------------------------------------------------------------

namespace {

// A deliberately broken model: its "scaling" takes the square root of fc1's output
// minus 100, which is negative, so a NaN appears in the middle of the forward and
// spreads through relu, fc2 and the loss.
struct BrokenForward : nn::Module {
  std::shared_ptr<nn::Linear> fc1, fc2;
  BrokenForward() {
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(4, 8));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(8, 3));
  }
  Tensor forward(const Tensor& x) const { return fc2->forward(relu(sqrt(fc1->forward(x) - 100.0))); }
};

// Its forward is finite, but sqrt(relu(h)) has an infinite derivative wherever relu
// clipped to 0, and relu's zero derivative turns that into 0 * inf = NaN.
struct BrokenBackward : nn::Module {
  std::shared_ptr<nn::Linear> fc1, fc2;
  BrokenBackward() {
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(4, 8));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(8, 3));
  }
  Tensor forward(const Tensor& x) const { return fc2->forward(sqrt(relu(fc1->forward(x)))); }
};

}  // namespace

TEST_CASE("AnomalyMode names the first op of a broken model's forward that produced a NaN") {
  manual_seed(6);
  BrokenForward model;
  const Tensor x = randn({5, 4});
  const Tensor y = from_vector<int64_t>({0, 1, 2, 0, 1});
  // Without anomaly mode the NaN goes unnoticed until the loss.
  CHECK(std::isnan(cross_entropy(model.forward(x), y).item<double>()));
  DetectAnomalyGuard anomaly;
  CHECK_THROWS_KILN(model.forward(x), "anomaly detected: the forward of 'sqrt' produced NaN/Inf (f32[5, 8])");
}

TEST_CASE("AnomalyMode traces a NaN weight to the leaf it came from, also under NoGradGuard") {
  manual_seed(7);
  BrokenForward model;
  {
    NoGradGuard no_grad;
    model.fc1->weight.select(0, 2).select(0, 1).fill_(std::nan(""));
  }
  // The first op whose output holds the NaN is the view weight.t() inside Linear; the
  // message says the NaN came in through its input, a leaf, rather than blame the view.
  const char* expected =
      "the forward of 'permute' produced NaN/Inf (f32[4, 8]), which came in through its input 0 (f32[8, 4], a leaf";
  DetectAnomalyGuard anomaly;
  CHECK_THROWS_KILN(model.forward(randn({2, 4})), expected);
  NoGradGuard no_grad;  // inference: nothing is recorded, the check still runs
  CHECK_THROWS_KILN(model.forward(randn({2, 4})), expected);
}

TEST_CASE("AnomalyMode names the backward that produced the first NaN gradient") {
  manual_seed(8);
  BrokenBackward model;
  const Tensor x = randn({16, 4});
  const Tensor y = randint(0, 3, {16});
  const Tensor loss = cross_entropy(model.forward(x), y);
  REQUIRE(std::isfinite(loss.item<double>()));
  {
    // Without anomaly mode: the NaN lands in fc1's gradients, silently.
    const Tensor quiet = cross_entropy(model.forward(x), y);
    quiet.backward();
    CHECK_FALSE(all_finite(model.fc1->weight.grad()));
    model.zero_grad();
  }
  DetectAnomalyGuard anomaly;
  // sqrt's backward makes inf at relu's zeros; relu's backward makes 0 * inf = NaN.
  CHECK_THROWS_KILN(loss.backward(), "the backward of 'sqrt'");
}
