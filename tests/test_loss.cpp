// Losses: cross_entropy (fused; ignore_index, label smoothing, every reduction, the
// (N, C, d1, ...) form) and nll_loss against PyTorch, mse_loss by hand; gradcheck in f64
// (also second derivatives through create_graph), stability with +-1e4 logits, the
// parallel kernel path, and the error messages.
#include <cmath>
#include <functional>
#include <limits>

#include "fused_op_checks.h"
#include "helpers.h"

using namespace kiln;
using namespace kiln::testing;
namespace G = golden::normalization;

namespace {

Tensor targets(const std::vector<int64_t>& values, const Shape& shape) { return from_vector(values, shape); }
Tensor targets(const std::vector<int64_t>& values) { return from_vector(values); }

// Fixed, non-uniform output weights (a constant for autograd).
Tensor weights_like(const Tensor& y) {
  return cos(arange(static_cast<double>(y.numel()), {.dtype = y.dtype()}) * 0.9 + 0.2).reshape(y.shape());
}

// The gradient of sum(loss * W) w.r.t. logits, by the fused kernel and by the composite
// (create_graph) backward: both must agree.
void check_backward_paths_agree(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& opts) {
  const Tensor x = logits.detach().requires_grad_();
  const Tensor loss = cross_entropy(x, target, opts);
  const Tensor objective = sum(loss * weights_like(loss));
  const Tensor fused = grad({objective}, {x}, {.retain_graph = true})[0];
  const Tensor composite = grad({objective}, {x}, {.create_graph = true})[0];
  CHECK(composite.requires_grad());
  check_all_close(fused, composite.detach(), 1e-12, 1e-10);
}

}  // namespace

// ---- cross_entropy: golden values and gradients -------------------------------------------

TEST_CASE("cross_entropy matches PyTorch for each reduction, ignore_index and label smoothing") {
  const GoldenInput logits{G::ce_x, {5, 4}};
  const Tensor t = targets({2, -100, 0, 3, 1});
  const Tensor t_ignore2 = targets({2, 1, 0, 2, 3});
  for (DType dtype : {f64, f32}) {
    CAPTURE(dtype_name(dtype));
    check_golden_with_grads([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], t); }, {logits},
                            G::ce_mean, {G::ce_mean_grad0}, dtype);
    check_golden_with_grads(
        [&](const std::vector<Tensor>& in) {
          return cross_entropy(in[0], t, {.label_smoothing = 0.1, .reduction = "sum"});
        },
        {logits}, G::ce_sum_smooth, {G::ce_sum_smooth_grad0}, dtype);
    check_golden_with_grads(
        [&](const std::vector<Tensor>& in) {
          return cross_entropy(in[0], t_ignore2, {.ignore_index = 2, .label_smoothing = 0.2, .reduction = "none"});
        },
        {logits}, G::ce_none_smooth_ignore2, {G::ce_none_smooth_ignore2_grad0}, dtype);
    check_golden_with_grads(
        [&](const std::vector<Tensor>& in) { return cross_entropy(in[0], t, {.label_smoothing = 0.3}); }, {logits},
        G::ce_mean_smooth, {G::ce_mean_smooth_grad0}, dtype);
  }
}

TEST_CASE("cross_entropy on (N, C, H, W) logits matches PyTorch") {
  const GoldenInput logits{G::ce4_x, {2, 3, 2, 2}};
  const Tensor t = targets({0, 2, 1, -100, 2, 2, 0, 1}, {2, 2, 2});
  for (DType dtype : {f64, f32}) {
    CAPTURE(dtype_name(dtype));
    check_golden_with_grads(
        [&](const std::vector<Tensor>& in) { return cross_entropy(in[0], t, {.label_smoothing = 0.05}); }, {logits},
        G::ce4_mean_smooth, {G::ce4_mean_smooth_grad0}, dtype);
    check_golden_with_grads(
        [&](const std::vector<Tensor>& in) { return cross_entropy(in[0], t, {.reduction = "none"}); }, {logits},
        G::ce4_none, {G::ce4_none_grad0}, dtype);
  }
}

TEST_CASE("cross_entropy of a hand-computed row") {
  // logits [0, ln 3]: p = [1/4, 3/4]; target 1 -> -ln(3/4).
  Tensor x = from_vector<double>({0.0, std::log(3.0)}, {1, 2});
  check_values(cross_entropy(x, targets({1})), {-std::log(0.75)}, 1e-15);
  // With smoothing 0.5, q = [0.25, 0.75]: loss = -(0.25 ln 1/4 + 0.75 ln 3/4).
  check_values(cross_entropy(x, targets({1}), {.label_smoothing = 0.5}),
               {-(0.25 * std::log(0.25) + 0.75 * std::log(0.75))}, 1e-15);
}

TEST_CASE("cross_entropy: mean over no valid target is NaN with a zero gradient, as PyTorch") {
  Tensor x = randn({3, 4}, {.dtype = f64}).requires_grad_();
  Tensor loss = cross_entropy(x, targets({-100, -100, -100}));
  CHECK(std::isnan(loss.item<double>()));
  loss.backward();
  check_values(x.grad(), std::vector<double>(12, 0.0));
}

// ---- cross_entropy: gradcheck ---------------------------------------------------------------

TEST_CASE("cross_entropy passes gradcheck for every reduction, smoothing and layout") {
  Tensor x = leaf64({4, 5});
  const Tensor t = targets({1, -100, 4, 0});
  for (const char* reduction : {"mean", "sum", "none"}) {
    for (double smoothing : {0.0, 0.15}) {
      CAPTURE(reduction);
      CAPTURE(smoothing);
      const CrossEntropyOptions opts{.label_smoothing = smoothing, .reduction = reduction};
      check_gradients([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], t, opts); }, {x});
    }
  }
  // (N, C, d1, d2) with a custom ignore_index, and transposed (non-contiguous) logits.
  Tensor x4 = leaf64({2, 3, 2, 3});
  const Tensor t4 = targets({0, 1, 2, 1, 7, 0, 2, 2, 1, 7, 0, 0}, {2, 2, 3});
  check_gradients(
      [&](const std::vector<Tensor>& in) {
        return cross_entropy(in[0], t4, {.ignore_index = 7, .label_smoothing = 0.1});
      },
      {x4});
  Tensor xt = leaf64({5, 4});
  check_gradients([&](const std::vector<Tensor>& in) { return cross_entropy(in[0].t(), t, {.reduction = "none"}); },
                  {xt});
}

TEST_CASE("cross_entropy supports double backward (create_graph)") {
  const Tensor t4 = targets({0, 2, 1, -100, 2, 2, 0, 1}, {2, 2, 2});
  for (const char* reduction : {"mean", "none"}) {
    CAPTURE(reduction);
    const CrossEntropyOptions opts{.label_smoothing = 0.1, .reduction = reduction};
    check_gradients(
        [&](const std::vector<Tensor>& in) {
          GradModeGuard grad_mode(true);
          const bool outer_graph = in[0].requires_grad();
          const Tensor leaf = outer_graph ? in[0] : in[0].detach().requires_grad_();
          const Tensor loss = cross_entropy(leaf, t4, opts);
          return grad({sum(loss * weights_like(loss))}, {leaf}, {.create_graph = outer_graph})[0];
        },
        {leaf64({2, 3, 2, 2})});
  }
}

TEST_CASE("cross_entropy's fused and composite backward agree, also on the parallel path") {
  // (512, 100) is above the parallel threshold.
  Tensor t = randint(0, 100, {512});
  t.data<int64_t>()[7] = -100;
  check_backward_paths_agree(randn({512, 100}, {.dtype = f64}) * 4.0, t, {.label_smoothing = 0.1});
  check_backward_paths_agree(randn({512, 100}, {.dtype = f64}), t, {.reduction = "none"});
  check_backward_paths_agree(randn({4, 3, 5}, {.dtype = f64}), randint(0, 3, {4, 5}), {.reduction = "sum"});
  // And the forward equals nll_loss(log_softmax(x)).
  const Tensor x = randn({512, 100}, {.dtype = f64});
  check_all_close(cross_entropy(x, t), nll_loss(log_softmax(x, 1), t), 1e-12, 1e-12);
}

TEST_CASE("cross_entropy is finite and exact for +-1e4 logits in f32") {
  Tensor x = from_vector<float>({1e4f, -1e4f, 0.0f, -1e4f, 1e4f, 1e4f}, {2, 3}).requires_grad_();
  Tensor loss = cross_entropy(x, targets({1, 2}), {.reduction = "none"});
  // Row 0: lse = 1e4, loss = 1e4 - (-1e4). Row 1: lse = 1e4 + ln 2, loss = ln 2.
  check_values(loss, {2e4, std::log(2.0)}, 1e-3, 1e-6);
  sum(loss).backward();
  check_values(x.grad(), {1, -1, 0, 0, 0.5, -0.5}, 1e-6);
  Tensor smoothed = cross_entropy(x.detach(), targets({1, 2}), {.label_smoothing = 0.1});
  CHECK(std::isfinite(smoothed.item<double>()));
}

TEST_CASE("cross_entropy of a row holding NaN or +inf is NaN, as in PyTorch") {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  for (DType dtype : {f32, f64}) {
    const Tensor x = from_vector<double>({1, nan, 2, inf, 1, 2, -inf, 0, 1}, {3, 3}, {.dtype = dtype});
    check_values(cross_entropy(x, targets({0, 1, 2}), {.reduction = "none"}), {nan, nan, std::log1p(std::exp(-1.0))},
                 1e-6);
  }
}

// ---- cross_entropy: errors -------------------------------------------------------------------

TEST_CASE("cross_entropy rejects bad targets and options with a clear error") {
  const Tensor x = zeros({3, 4});
  CHECK_THROWS_KILN(cross_entropy(x, zeros({3})), "cross_entropy: target must hold class indices as i64, got f32[3]");
  CHECK_THROWS_KILN(cross_entropy(x, targets({0, 4, 1})),
                    "cross_entropy: target 4 (at flat index 1) is out of range for 4 classes");
  CHECK_THROWS_KILN(cross_entropy(x, targets({0, 1, -1})), "target -1 (at flat index 2)");
  CHECK_THROWS_KILN(cross_entropy(x, targets({0, 1, -100}), {.ignore_index = 9}), "target -100");
  CHECK_THROWS_KILN(cross_entropy(x, targets({0, 1})), "cross_entropy: target i64[2] does not match input f32[3, 4]");
  CHECK_THROWS_KILN(cross_entropy(zeros({4}), targets({0})), "expected input of shape (N, C) or (N, C, d1, ...)");
  CHECK_THROWS_KILN(cross_entropy(x, targets({0, 1, 2}), {.reduction = "avg"}),
                    "reduction must be \"mean\", \"sum\" or \"none\", got \"avg\"");
  CHECK_THROWS_KILN(cross_entropy(x, targets({0, 1, 2}), {.label_smoothing = 1.5}),
                    "label_smoothing must be in [0, 1], got 1.5");
  CHECK_THROWS_KILN(cross_entropy(zeros({3, 4}, {.dtype = i64}), targets({0, 1, 2})), "expected a floating tensor");
}

// ---- nll_loss ----------------------------------------------------------------------------------

TEST_CASE("nll_loss matches PyTorch, composes with log_softmax, and passes gradcheck") {
  const Tensor t = targets({2, -100, 0, 3, 1});
  for (DType dtype : {f64, f32}) {
    CAPTURE(dtype_name(dtype));
    check_golden_with_grads([&](const std::vector<Tensor>& in) { return nll_loss(log_softmax(in[0], 1), t); },
                            {{G::ce_x, {5, 4}}}, G::nll_mean, {G::nll_mean_grad0}, dtype);
    check_golden_with_grads([&](const std::vector<Tensor>& in) { return nll_loss(in[0], t, -100, "none"); },
                            {{G::ce_x, {5, 4}}}, G::nll_none, {G::nll_none_grad0}, dtype);
  }
  Tensor x = leaf64({5, 4});
  for (const char* reduction : {"mean", "sum", "none"})
    check_gradients([&](const std::vector<Tensor>& in) { return nll_loss(in[0], t, -100, reduction); }, {x});
  CHECK_THROWS_KILN(nll_loss(zeros({5, 4}), targets({0, 1, 2, 3, 5})), "nll_loss: target 5 (at flat index 4)");
  CHECK_THROWS_KILN(nll_loss(zeros({5, 4}), zeros({5})), "nll_loss: target must hold class indices as i64");
}

// ---- mse_loss ----------------------------------------------------------------------------------

TEST_CASE("mse_loss: values by hand, gradcheck for both inputs, errors") {
  Tensor a = from_vector<double>({1, 2, 3, 4}, {2, 2});
  Tensor b = from_vector<double>({1, 0, 5, 1}, {2, 2});
  // squared differences: 0, 4, 4, 9
  check_values(mse_loss(a, b), {17.0 / 4});
  check_values(mse_loss(a, b, "sum"), {17});
  check_values(mse_loss(a, b, "none"), {0, 4, 4, 9});
  check_values(mse_loss(a.to(f32), b.to(f32)), {17.0 / 4});
  Tensor x = leaf64({3, 2}), y = leaf64({3, 2});
  for (const char* reduction : {"mean", "sum", "none"})
    check_gradients([&](const std::vector<Tensor>& in) { return mse_loss(in[0], in[1], reduction); }, {x, y});
  CHECK_THROWS_KILN(mse_loss(a, zeros({4}, {.dtype = f64})),
                    "mse_loss: input f64[2, 2] and target f64[4] must have the same shape");
  CHECK_THROWS_KILN(mse_loss(a, b.to(f32)), "mse_loss: dtypes differ");
  CHECK_THROWS_KILN(mse_loss(a, b, "max"), "mse_loss: reduction must be");
}
