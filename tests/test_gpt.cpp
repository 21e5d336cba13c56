// nn::GPT against the same model in PyTorch (llm.c's test_gpt2 idea): with the weights
// of tests/golden/tiny_gpt.safetensors.bin (made by gen_tiny_gpt.py), kiln must reproduce
// PyTorch's logits, loss, every parameter gradient, and the losses of 10 AdamW steps.
// The reference is f64 (PyTorch on the exactly upcast f32 weights): kiln in f64 must match
// it to rounding, kiln in f32 to within 1e-4. Plus nn::GPT's own contract: names,
// causality, argument errors.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include <kiln/nn/gpt.h>
#include <kiln/nn/optim/adam.h>

#include "helpers.h"
#include "tiny_gpt_fixture.h"

using namespace kiln;
using namespace kiln::testing;
using namespace kiln::testing::tiny_gpt;

namespace {

// How far `got` is from `expected`. An element passes when
//   |got - expected| <= tol * (|expected| + scale),   scale = max |expected| of the tensor:
// relative to the element, with the tensor's own magnitude as the floor for elements near
// zero (where f32 rounding of the large terms that cancel there dominates).
struct Discrepancy {
  double max_abs = 0;  // max |got - expected|
  double max_rel = 0;  // max |got - expected| / (|expected| + scale); infinite for a NaN
  int64_t worst = -1;  // the element of max_rel
  double got_at_worst = 0, expected_at_worst = 0;

  void merge(const Discrepancy& other) {
    const double abs = std::max(max_abs, other.max_abs);
    if (other.max_rel > max_rel) *this = other;
    max_abs = abs;
  }
};

Discrepancy compare(const Tensor& got, const Tensor& expected) {
  REQUIRE(got.shape() == expected.shape());
  const std::vector<double> g = got.to_vector<double>(), e = expected.to_vector<double>();
  double scale = 0;
  for (double v : e) scale = std::max(scale, std::fabs(v));
  Discrepancy d;
  for (size_t i = 0; i < g.size(); ++i) {
    const double diff = std::fabs(g[i] - e[i]), bound = std::fabs(e[i]) + scale;
    const double rel = std::isnan(diff) ? std::numeric_limits<double>::infinity() : diff == 0 ? 0 : diff / bound;
    d.max_abs = std::max(d.max_abs, diff);
    if (rel > d.max_rel) d = {d.max_abs, rel, static_cast<int64_t>(i), g[i], e[i]};
  }
  return d;
}

void check_within(const Discrepancy& d, double tol, const std::string& what) {
  CHECK_MESSAGE(d.max_rel <= tol, what, ": element ", d.worst, " is ", d.got_at_worst, ", expected ",
                d.expected_at_worst, " (relative error ", d.max_rel, " > ", tol, ")");
}

struct Errors {
  Discrepancy logits, loss, gradients, adamw_losses;
};

// Logits, loss and every parameter's gradient from the fixture's weights.
void check_forward_backward(DType dtype, double tol, Errors& errors) {
  auto model = golden_model(dtype);
  const Tensor logits = model->forward(fixture_tensor("data.tokens"));
  errors.logits = compare(logits, fixture_tensor("expected.logits"));
  check_within(errors.logits, tol, "logits");
  const Tensor loss = next_token_loss(logits, fixture_tensor("data.targets"));
  errors.loss = compare(loss, fixture_tensor("expected.loss"));
  check_within(errors.loss, tol, "loss");

  // The tied wte.weight collects the gradients of both of its uses.
  loss.backward();
  const auto params = model->named_parameters();
  for (const auto& [name, p] : params) {
    REQUIRE_MESSAGE(p.grad().defined(), name, " got no gradient");
    const Discrepancy d = compare(p.grad(), fixture_tensor("expected.grad." + name));
    check_within(d, tol, "gradient of " + name);
    errors.gradients.merge(d);
  }
  const auto is_grad = [](const auto& entry) { return entry.first.starts_with("expected.grad."); };
  CHECK(std::count_if(fixture().tensors.begin(), fixture().tensors.end(), is_grad) ==
        static_cast<std::ptrdiff_t>(params.size()));
}

// AdamW with GPT-2's weight decay split (nn::optim::weight_decay_groups) from the
// fixture's weights: the loss before the first step and after each step.
void check_adamw_steps(DType dtype, double tol, Errors& errors) {
  auto model = golden_model(dtype);
  const Tensor tokens = fixture_tensor("data.tokens"), targets = fixture_tensor("data.targets");
  nn::optim::AdamW opt(nn::optim::weight_decay_groups(*model),
                       {.lr = fixture_number("lr"),
                        .betas = {fixture_number("beta1"), fixture_number("beta2")},
                        .eps = fixture_number("eps"),
                        .weight_decay = fixture_number("weight_decay")});
  const Tensor expected = fixture_tensor("expected.adamw_losses");
  std::vector<double> losses;
  for (int64_t step = 0; step + 1 < expected.numel(); ++step) {
    opt.zero_grad();
    const Tensor loss = next_token_loss(model->forward(tokens), targets);
    losses.push_back(loss.item<double>());
    loss.backward();
    opt.step();
  }
  NoGradGuard no_grad;
  losses.push_back(next_token_loss(model->forward(tokens), targets).item<double>());
  errors.adamw_losses = compare(from_vector(losses, {.dtype = f64}), expected);
  check_within(errors.adamw_losses, tol, "AdamW losses");
  CHECK(losses.back() < losses.front() - 1);  // it learns: 5.54 -> 2.86
}

// Runs both comparisons in `dtype` and prints the worst errors seen.
void check_against_pytorch(DType dtype, double tol) {
  Errors e;
  check_forward_backward(dtype, tol, e);
  check_adamw_steps(dtype, tol, e);
  MESSAGE("GPT vs PyTorch in ", std::string(dtype_name(dtype)), ", max |error| (relative): logits ",
          e.logits.max_abs, " (", e.logits.max_rel, "), loss ", e.loss.max_abs, " (", e.loss.max_rel,
          "), gradients ", e.gradients.max_abs, " (", e.gradients.max_rel, "), AdamW losses ",
          e.adamw_losses.max_abs, " (", e.adamw_losses.max_rel, ")");
}

}  // namespace

TEST_CASE("GPT in f32 matches PyTorch: logits, loss, every gradient, 10 AdamW steps (within 1e-4)") {
  check_against_pytorch(f32, 1e-4);
}

TEST_CASE("GPT in f64 matches PyTorch to rounding: logits, loss, every gradient, 10 AdamW steps") {
  check_against_pytorch(f64, 1e-10);
}

TEST_CASE("GPT: parameter names, a tied head, and causality") {
  manual_seed(0);
  nn::GPT model({.vocab_size = 11, .block_size = 8, .n_layer = 2, .n_head = 2, .d_model = 8});
  std::vector<std::string> names;
  for (const auto& [name, p] : model.named_parameters()) names.push_back(name);
  REQUIRE(names.size() == 2 + 12 * 2 + 2);  // wte, wpe, 12 per block, ln_f; no head weight
  CHECK(names[0] == "wte.weight");
  CHECK(names[1] == "wpe.weight");
  CHECK(names[2] == "blocks.0.ln1.weight");
  CHECK(names[4] == "blocks.0.attn.qkv.weight");
  CHECK(names[14] == "blocks.1.ln1.weight");
  CHECK(names.back() == "ln_f.bias");
  CHECK(model.layers.size() == 2);
  CHECK(model.summary().find("GPT(\n  vocab_size=11, block_size=8, n_layer=2, n_head=2, d_model=8") != std::string::npos);

  // Changing the token at position 5 leaves the logits of positions 0..4 as they were.
  const Tensor tokens = randint(0, 11, {2, 8});
  const Tensor logits = model.forward(tokens);
  CHECK(logits.shape() == Shape({2, 8, 11}));
  Tensor changed = tokens.clone();
  {
    NoGradGuard no_grad;
    changed.narrow(1, 5, 1).fill_(static_cast<double>((tokens.to_vector<int64_t>()[5] + 1) % 11));
  }
  const Tensor changed_logits = model.forward(changed);
  check_close(changed_logits.narrow(1, 0, 5), logits.narrow(1, 0, 5), 0, 0);
  CHECK(max(abs(changed_logits.narrow(1, 5, 1) - logits.narrow(1, 5, 1))).item<double>() > 1e-4);
  // Shorter sequences use the first positions only.
  check_close(model.forward(tokens.narrow(1, 0, 3)), logits.narrow(1, 0, 3), 1e-6, 1e-5);
}

TEST_CASE("GPT: bad configurations and inputs are errors") {
  CHECK_THROWS_KILN(nn::GPT({.n_head = 4, .d_model = 30}),
                    "GPT: d_model (30) must be a positive multiple of n_head (4)");
  CHECK_THROWS_KILN(nn::GPT({.vocab_size = 0}), "GPT: vocab_size, block_size and n_layer must be positive, got 0");
  CHECK_THROWS_KILN(nn::GPT({.dropout = 1.0}), "GPT: dropout must be in [0, 1), got 1");
  nn::GPT model({.vocab_size = 11, .block_size = 4, .n_layer = 1, .n_head = 2, .d_model = 8});
  CHECK_THROWS_KILN(model.forward(zeros({2, 5}, {.dtype = i64})),
                    "GPT: sequence length 5 is outside [1, block_size = 4]");
  CHECK_THROWS_KILN(model.forward(zeros({2, 3})), "GPT: expected token indices i64 (B, T), got f32[2, 3]");
  CHECK_THROWS_KILN(model.forward(zeros({6}, {.dtype = i64})), "GPT: expected token indices i64 (B, T), got i64[6]");
}
