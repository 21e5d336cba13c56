// nn::optim: SGD, Adam and AdamW trajectories against PyTorch, parameter groups, the
// no-decay grouping, state_dict round trips, learning-rate schedules, clip_grad_norm_
// and the errors for bad options and mismatched state dicts.
//
// The fixed problem (tests/golden/gen_optim.py): loss = sum((X W^T + b - Y)^2) with
// W (3, 4) and b (3,) as parameters; both sides start from the same values.
#include <kiln/nn/optim/adam.h>
#include <kiln/nn/optim/clip_grad.h>
#include <kiln/nn/optim/lr_scheduler.h>
#include <kiln/nn/optim/sgd.h>

#include <cmath>
#include <functional>
#include <memory>
#include <numbers>

#include "golden/optim_golden.h"
#include "helpers.h"

using namespace kiln;
using namespace kiln::testing;
namespace optim = kiln::nn::optim;
namespace gold = golden::optim;

namespace {

constexpr int kSteps = 5;
constexpr int64_t kValuesPerStep = 15;  // W (12) then b (3)

// The least-squares problem, in `dtype`.
struct Problem {
  Tensor w, b, x, y;
  explicit Problem(DType dtype = f64)
      : w(from_vector(gold::w0, {3, 4}, {.dtype = dtype, .requires_grad = true})),
        b(from_vector(gold::b0, {3}, {.dtype = dtype, .requires_grad = true})),
        x(from_vector(gold::x, {5, 4}, {.dtype = dtype})),
        y(from_vector(gold::y, {5, 3}, {.dtype = dtype})) {}

  void backward() const { sum(pow(matmul(x, w.t()) + b - y, 2.0)).backward(); }
  // The parameters flattened as [W, b], like one step of a golden trajectory.
  std::vector<double> values() const {
    std::vector<double> out = w.to_vector<double>();
    for (double v : b.to_vector<double>()) out.push_back(v);
    return out;
  }
};

using MakeOptimizer = std::function<std::unique_ptr<optim::Optimizer>(const Problem&)>;

// One training step: fresh gradients, one update.
void train_step(optim::Optimizer& opt, const Problem& p) {
  opt.zero_grad();
  p.backward();
  opt.step();
}

// Runs kSteps and checks the parameters after each against the golden trajectory.
void check_trajectory(const MakeOptimizer& make, const std::vector<double>& expected, DType dtype, double rtol,
                      double atol) {
  REQUIRE(expected.size() == kSteps * kValuesPerStep);
  Problem p(dtype);
  std::unique_ptr<optim::Optimizer> opt = make(p);
  for (int s = 0; s < kSteps; ++s) {
    CAPTURE(s);
    train_step(*opt, p);
    const auto first = expected.begin() + s * kValuesPerStep;
    check_values(from_vector(p.values()), std::vector<double>(first, first + kValuesPerStep), atol, rtol);
  }
}

struct GoldenCase {
  std::string name;
  const std::vector<double>& expected;
  MakeOptimizer make;
};

// An optimizer of type Opt over the problem's [W, b] with the given options.
template <class Opt, class Options>
MakeOptimizer over_w_and_b(const Options& options) {
  return [options](const Problem& p) { return std::make_unique<Opt>(std::vector<Tensor>{p.w, p.b}, options); };
}

std::vector<GoldenCase> golden_cases() {
  using optim::SGD, optim::SGDOptions, optim::Adam, optim::AdamOptions, optim::AdamW, optim::AdamWOptions;
  return {
      {"sgd plain", gold::sgd_plain, over_w_and_b<SGD>(SGDOptions{.lr = 0.01})},
      {"sgd momentum", gold::sgd_momentum, over_w_and_b<SGD>(SGDOptions{.lr = 0.01, .momentum = 0.9})},
      {"sgd nesterov", gold::sgd_nesterov,
       over_w_and_b<SGD>(SGDOptions{.lr = 0.01, .momentum = 0.9, .nesterov = true})},
      {"sgd weight decay", gold::sgd_weight_decay,
       over_w_and_b<SGD>(SGDOptions{.lr = 0.01, .momentum = 0.9, .weight_decay = 0.1})},
      {"sgd dampening", gold::sgd_dampening,
       over_w_and_b<SGD>(SGDOptions{.lr = 0.01, .momentum = 0.9, .dampening = 0.5})},
      {"adam", gold::adam, over_w_and_b<Adam>(AdamOptions{.lr = 0.01})},
      {"adam weight decay", gold::adam_weight_decay,
       over_w_and_b<Adam>(AdamOptions{.lr = 0.01, .betas = {0.8, 0.95}, .eps = 1e-6, .weight_decay = 0.1})},
      {"adamw", gold::adamw, over_w_and_b<AdamW>(AdamWOptions{.lr = 0.01, .weight_decay = 0.1})},
  };
}

// A module with a matrix, a bias and a frozen matrix, for the no-decay grouping.
struct TinyModel : nn::Module {
  Tensor weight, bias, frozen;
  explicit TinyModel(const Problem& p) {
    weight = register_parameter("weight", p.w);
    bias = register_parameter("bias", p.b);
    frozen = register_parameter("frozen", zeros({2, 2}, {.dtype = f64}), /*requires_grad=*/false);
  }
};

}  // namespace

// ---- golden trajectories ----------------------------------------------------------------------

TEST_CASE("SGD, Adam and AdamW follow PyTorch's first 5 steps (f64)") {
  for (const GoldenCase& c : golden_cases()) {
    CAPTURE(c.name);
    check_trajectory(c.make, c.expected, f64, 1e-10, 1e-12);
  }
}

TEST_CASE("SGD, Adam and AdamW in f32 stay within 1e-6 relative (+1e-7 absolute) of PyTorch's f64 steps") {
  for (const GoldenCase& c : golden_cases()) {
    CAPTURE(c.name);
    check_trajectory(c.make, c.expected, f32, 1e-6, 1e-7);
  }
}

TEST_CASE("parameter groups keep their own lr") {
  check_trajectory(
      [](const Problem& p) {
        return std::make_unique<optim::SGD>(
            std::vector<optim::ParamGroup>{{.params = {p.w}}, {.params = {p.b}, .lr = 0.05}},
            optim::SGDOptions{.lr = 0.01, .momentum = 0.9});
      },
      gold::sgd_groups, f64, 1e-10, 1e-12);

  Problem p;
  optim::SGD opt(std::vector<optim::ParamGroup>{{.params = {p.w}}, {.params = {p.b}, .lr = 0.05}}, {.lr = 0.01});
  CHECK(opt.num_param_groups() == 2);
  CHECK(opt.lr(0) == 0.01);
  CHECK(opt.lr(1) == 0.05);
  CHECK(opt.initial_lr(1) == 0.05);
  opt.set_lr(0.2);  // every group
  CHECK(opt.lr(1) == 0.2);
  CHECK(opt.initial_lr(1) == 0.05);
  CHECK(opt.params(1).at(0).is_same(p.b));
  CHECK(opt.parameters().size() == 2);
}

TEST_CASE("weight_decay_groups: matrices decay, biases do not (GPT-2 style), frozen parameters are left out") {
  Problem p;
  TinyModel model(p);
  const std::vector<optim::ParamGroup> groups = optim::weight_decay_groups(model);
  REQUIRE(groups.size() == 2);
  REQUIRE(groups[0].params.size() == 1);
  REQUIRE(groups[1].params.size() == 1);
  CHECK(groups[0].params[0].is_same(model.weight));
  CHECK_FALSE(groups[0].weight_decay.has_value());  // the optimizer's
  CHECK(groups[1].params[0].is_same(model.bias));
  CHECK(groups[1].weight_decay == 0.0);

  check_trajectory(
      [](const Problem& p) {
        TinyModel m(p);
        return std::make_unique<optim::AdamW>(optim::weight_decay_groups(m),
                                              optim::AdamWOptions{.lr = 0.01, .weight_decay = 0.5});
      },
      gold::adamw_no_decay_groups, f64, 1e-10, 1e-12);
}

TEST_CASE("the DESIGN example: AdamW on a module with a schedule and clipping follows PyTorch's losses") {
  Problem p;
  auto model = std::make_shared<TinyModel>(p);  // its frozen parameter never gets a gradient
  optim::AdamW opt(model->parameters(), {.lr = 0.05, .weight_decay = 0.01});
  optim::WarmupCosineLR schedule(opt, {.warmup_steps = 10, .total_steps = 200, .min_lr = 0.005});
  std::vector<double> losses;
  for (int step = 0; step < 200; ++step) {
    opt.zero_grad();
    Tensor loss = sum(pow(matmul(p.x, model->weight.t()) + model->bias - p.y, 2.0));
    loss.backward();
    optim::clip_grad_norm_(model->parameters(), 5.0);
    opt.step();
    schedule.step();
    if (step == 0 || step == 50 || step == 100 || step == 199) losses.push_back(loss.item<double>());
  }
  check_values(from_vector(losses), gold::trained_losses, 1e-12, 1e-9);
  CHECK(losses.back() < 0.7 * losses.front());
  CHECK(opt.state(2).step == 0);
}

// ---- update mechanics -------------------------------------------------------------------------

TEST_CASE("parameters without a gradient are skipped and get no state") {
  Problem p;
  Tensor unused = ones({2}, {.dtype = f64, .requires_grad = true});
  optim::Adam opt({p.w, p.b, unused}, {.lr = 0.1});
  train_step(opt, p);
  check_values(unused, {1, 1});
  CHECK(opt.state(2).step == 0);
  CHECK(opt.state(2).buffers.empty());
  CHECK(opt.state(0).step == 1);
  CHECK(opt.state(0).buffers.count("exp_avg") == 1);
}

TEST_CASE("step writes in place and bumps the version counter") {
  Problem p;
  optim::SGD opt({p.w, p.b}, {.lr = 0.01});
  p.backward();
  const void* data = p.w.raw_data();
  const uint64_t version = p.w.version();
  opt.step();
  CHECK(p.w.raw_data() == data);
  CHECK(p.w.version() > version);
  CHECK(p.w.is_leaf());
  CHECK(p.w.requires_grad());
}

TEST_CASE("zero_grad sets gradients to none, or to zeros in place") {
  Problem p;
  optim::SGD opt({p.w, p.b}, {.lr = 0.01});
  p.backward();
  CHECK(p.w.grad().defined());
  opt.zero_grad();
  CHECK_FALSE(p.w.grad().defined());
  p.backward();
  const Tensor g = p.b.grad();
  opt.zero_grad(/*set_to_none=*/false);
  CHECK(p.b.grad().is_same(g));
  check_values(g, {0, 0, 0});
}

TEST_CASE("a non-contiguous (expanded) gradient is read correctly") {
  Tensor w = zeros({2, 3}, {.dtype = f64, .requires_grad = true});
  w.set_grad(ones({1, 3}, {.dtype = f64}).expand({2, 3}));
  REQUIRE_FALSE(w.grad().is_contiguous());
  optim::SGD opt({w}, {.lr = 0.5});
  opt.step();
  check_values(w, {-0.5, -0.5, -0.5, -0.5, -0.5, -0.5});
}

TEST_CASE("the parallel path (large parameters) matches the formula") {
  // Above the OpenMP threshold, one Adam step from zero moments, written with tensor ops.
  const int64_t n = 100003;
  const Tensor start = randn({n}, {.dtype = f64});
  const Tensor g = randn({n}, {.dtype = f64});
  Tensor w = start.clone().requires_grad_();
  w.set_grad(g);
  const double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
  optim::AdamW opt({w}, {.lr = lr, .betas = {b1, b2}, .eps = eps, .weight_decay = wd});
  opt.step();
  const Tensor m = (1 - b1) * g, v = (1 - b2) * g * g;
  const Tensor expected = start * (1 - lr * wd) - (lr / (1 - b1)) * m / (sqrt(v) / std::sqrt(1 - b2) + eps);
  check_close(w.detach(), expected, 1e-12, 1e-10);
  check_close(opt.state(0).buffers.at("exp_avg"), m, 1e-15, 1e-12);
}

// ---- state dict -----------------------------------------------------------------------------------

TEST_CASE("state_dict names options and per-parameter state") {
  Problem p;
  optim::Adam opt({p.w, p.b}, {.lr = 0.01, .betas = {0.8, 0.95}});
  for (int s = 0; s < 3; ++s) train_step(opt, p);
  const nn::StateDict sd = opt.state_dict();
  CHECK(sd.find("group.0.num_params").item<double>() == 2);
  CHECK(sd.find("group.0.lr").item<double>() == 0.01);
  CHECK(sd.find("group.0.initial_lr").item<double>() == 0.01);
  CHECK(sd.find("group.0.beta1").item<double>() == 0.8);
  CHECK(sd.find("group.0.beta2").item<double>() == 0.95);
  CHECK(sd.find("group.0.eps").item<double>() == 1e-8);
  CHECK(sd.find("group.0.weight_decay").item<double>() == 0);
  CHECK(sd.find("group.0.lr").dtype() == f64);
  CHECK(sd.find("group.0.lr").dim() == 0);
  CHECK(sd.find("state.1.step").item<double>() == 3);
  CHECK(sd.find("state.0.exp_avg").shape() == Shape{3, 4});
  CHECK(sd.find("state.1.exp_avg_sq").shape() == Shape{3});
  CHECK(sd.size() == 7 + 2 * 3);

  // SGD keeps a momentum buffer only when it has momentum; booleans are stored as 0/1.
  Problem q;
  optim::SGD plain({q.w, q.b}, {.lr = 0.1});
  train_step(plain, q);
  const nn::StateDict plain_sd = plain.state_dict();
  CHECK(plain_sd.find("group.0.nesterov").item<double>() == 0);
  CHECK(plain_sd.find("state.0.step").item<double>() == 1);
  CHECK_FALSE(plain_sd.contains("state.0.momentum_buffer"));
  optim::SGD heavy({q.w, q.b}, {.lr = 0.1, .momentum = 0.9, .nesterov = true});
  train_step(heavy, q);
  CHECK(heavy.state_dict().find("group.0.nesterov").item<double>() == 1);
  CHECK(heavy.state_dict().find("state.1.momentum_buffer").shape() == Shape{3});
}

// Steps an optimizer 3 times, saves, loads into a fresh optimizer over a copy of the
// parameters, and continues both for 2 steps: they must stay identical, and on PyTorch's
// trajectory.
void check_round_trip(const MakeOptimizer& make, const std::vector<double>& expected) {
  Problem a;
  auto opt_a = make(a);
  for (int s = 0; s < 3; ++s) train_step(*opt_a, a);
  const nn::StateDict saved = opt_a->state_dict();

  Problem b;
  {
    NoGradGuard no_grad;
    b.w.copy_(a.w);
    b.b.copy_(a.b);
  }
  auto opt_b = make(b);
  opt_b->load_state_dict(saved);
  for (int s = 0; s < 2; ++s) {
    train_step(*opt_a, a);
    train_step(*opt_b, b);
  }
  check_close(b.w, a.w, 0, 0);  // bit for bit
  check_close(b.b, a.b, 0, 0);
  const auto last = expected.end() - kValuesPerStep;
  check_values(from_vector(b.values()), std::vector<double>(last, expected.end()), 1e-12, 1e-10);
}

TEST_CASE("state_dict round trip: resuming after 3 steps equals training uninterrupted") {
  SUBCASE("Adam") { check_round_trip(over_w_and_b<optim::Adam>(optim::AdamOptions{.lr = 0.01}), gold::adam); }
  SUBCASE("AdamW") {
    check_round_trip(over_w_and_b<optim::AdamW>(optim::AdamWOptions{.lr = 0.01, .weight_decay = 0.1}), gold::adamw);
  }
  SUBCASE("SGD with Nesterov momentum") {
    check_round_trip(over_w_and_b<optim::SGD>(optim::SGDOptions{.lr = 0.01, .momentum = 0.9, .nesterov = true}),
                     gold::sgd_nesterov);
  }
}

TEST_CASE("load_state_dict copies: the source optimizer's later steps do not leak in") {
  Problem a, b;
  optim::Adam opt_a({a.w, a.b}, {.lr = 0.01}), opt_b({b.w, b.b}, {.lr = 0.5});
  train_step(opt_a, a);
  opt_b.load_state_dict(opt_a.state_dict());
  CHECK(opt_b.lr() == 0.01);
  const std::vector<double> loaded = opt_b.state(0).buffers.at("exp_avg").to_vector<double>();
  train_step(opt_a, a);
  check_values(opt_b.state(0).buffers.at("exp_avg"), loaded, 0, 0);
}

TEST_CASE("load_state_dict converts buffers to the parameters' dtype") {
  Problem a(f64), b(f32);
  optim::Adam opt_a({a.w, a.b}), opt_b({b.w, b.b});
  train_step(opt_a, a);
  opt_b.load_state_dict(opt_a.state_dict());
  CHECK(opt_b.state(0).buffers.at("exp_avg").dtype() == f32);
  train_step(opt_b, b);  // and the update accepts them
  CHECK(opt_b.state(0).step == 2);
}

TEST_CASE("load_state_dict rejects state for other parameters or another optimizer, changing nothing") {
  Problem p;
  optim::Adam opt({p.w, p.b}, {.lr = 0.01});
  train_step(opt, p);
  const nn::StateDict good = opt.state_dict();

  SUBCASE("different shapes") {
    Tensor w2 = zeros({4, 3}, {.dtype = f64, .requires_grad = true}), b2 = zeros({3}, {.dtype = f64, .requires_grad = true});
    optim::Adam other({w2, b2});
    CHECK_THROWS_KILN(other.load_state_dict(good),
                      "Adam.load_state_dict: 'state.0.exp_avg' has shape [3, 4] but parameter 0 has shape [4, 3]");
  }
  SUBCASE("a different number of parameters") {
    optim::Adam other({p.w});
    CHECK_THROWS_KILN(other.load_state_dict(good),
                      "parameter group 0 has 2 parameter(s) in the state dict, 1 in this optimizer");
  }
  SUBCASE("a different number of groups") {
    optim::Adam other(std::vector<optim::ParamGroup>{{.params = {p.w}}, {.params = {p.b}}});
    CHECK_THROWS_KILN(other.load_state_dict(good), "the state dict has 1 parameter group(s), this optimizer has 2");
  }
  SUBCASE("another optimizer's state") {
    optim::SGD sgd({p.w, p.b}, {.lr = 0.1, .momentum = 0.9});
    CHECK_THROWS_KILN(sgd.load_state_dict(good), "SGD.load_state_dict: missing key 'group.0.momentum'");
    CHECK_THROWS_KILN(opt.load_state_dict(sgd.state_dict()), "Adam.load_state_dict: missing key 'group.0.beta1'");
  }
  SUBCASE("a missing buffer") {
    nn::StateDict partial;
    for (const auto& [key, t] : good)
      if (key != "state.1.exp_avg_sq") partial.insert(key, t);
    optim::Adam other({p.w, p.b});
    CHECK_THROWS_KILN(other.load_state_dict(partial), "missing key 'state.1.exp_avg_sq'");
  }
  SUBCASE("an invalid option value, and nothing changes") {
    nn::StateDict bad = good;
    bad.insert("group.0.lr", scalar_tensor(-1.0, {.dtype = f64}));
    optim::Adam other({p.w, p.b}, {.lr = 0.5});
    CHECK_THROWS_KILN(other.load_state_dict(bad), "Adam: invalid learning rate -1");
    CHECK(other.lr() == 0.5);
    CHECK(other.state(0).step == 0);
  }
}

// ---- options ----------------------------------------------------------------------------------------

TEST_CASE("defaults follow torch.optim") {
  Problem p;
  optim::AdamW adamw({p.w});
  CHECK(adamw.defaults().lr == 1e-3);
  CHECK(adamw.defaults().betas == std::pair<double, double>{0.9, 0.999});
  CHECK(adamw.defaults().eps == 1e-8);
  CHECK(adamw.defaults().weight_decay == 0.01);
  optim::Adam adam({p.w});
  CHECK(adam.defaults().weight_decay == 0);
  optim::SGD sgd({p.w});
  CHECK(sgd.options(0).momentum == 0);
  CHECK_FALSE(sgd.options(0).nesterov);
}

TEST_CASE("options can be read and changed by name, and are checked") {
  Problem p;
  optim::Adam opt({p.w, p.b});
  opt.set_option(0, "beta1", 0.5);
  CHECK(opt.options(0).betas.first == 0.5);
  CHECK(opt.option(0, "beta1") == 0.5);
  CHECK_THROWS_KILN(opt.set_option(0, "beta2", 1.0), "Adam: invalid beta2 1 (must be in [0, 1))");
  CHECK(opt.option(0, "beta2") == 0.999);
  CHECK_THROWS_KILN(opt.option(0, "momentum"), "Adam: no option 'momentum' (its options are lr, beta1, beta2, eps, weight_decay)");
  CHECK_THROWS_KILN(opt.set_lr(0, -0.1), "Adam: invalid learning rate -0.1 (must be >= 0)");
  CHECK_THROWS_KILN(opt.lr(3), "Adam: no parameter group 3 (it has 1)");
  optim::SGD sgd({p.w}, {.lr = 0.1, .momentum = 0.9});
  CHECK_THROWS_KILN(sgd.set_option(0, "nesterov", 0.5), "SGD: option 'nesterov' is a flag (0 or 1), got 0.5");
  sgd.set_option(0, "nesterov", 1);
  CHECK(sgd.options(0).nesterov);
}

TEST_CASE("bad options and parameters are refused with clear errors") {
  Problem p;
  const std::vector<Tensor> params{p.w, p.b};
  CHECK_THROWS_KILN(optim::SGD(params, {.lr = -0.1}), "SGD: invalid learning rate -0.1 (must be >= 0)");
  CHECK_THROWS_KILN(optim::SGD(params, {.lr = 0.1, .momentum = -1}), "SGD: invalid momentum -1");
  CHECK_THROWS_KILN(optim::SGD(params, {.lr = 0.1, .weight_decay = -1}), "SGD: invalid weight_decay -1");
  CHECK_THROWS_KILN(optim::SGD(params, {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = true}),
                    "SGD: Nesterov momentum requires a momentum > 0 and zero dampening");
  CHECK_THROWS_KILN(optim::SGD(params, {.lr = 0.1, .nesterov = true}), "Nesterov momentum requires a momentum > 0");
  CHECK_THROWS_KILN(optim::Adam(params, {.lr = -1e-3}), "Adam: invalid learning rate -0.001");
  CHECK_THROWS_KILN(optim::Adam(params, {.betas = {1.0, 0.999}}), "Adam: invalid beta1 1 (must be in [0, 1))");
  CHECK_THROWS_KILN(optim::Adam(params, {.betas = {0.9, -0.1}}), "Adam: invalid beta2 -0.1 (must be in [0, 1))");
  CHECK_THROWS_KILN(optim::Adam(params, {.eps = -1}), "Adam: invalid epsilon -1");
  CHECK_THROWS_KILN(optim::AdamW(params, {.lr = -1}), "AdamW: invalid learning rate -1");
  CHECK_THROWS_KILN(optim::AdamW(params, {.weight_decay = -0.1}), "AdamW: invalid weight_decay -0.1");
  // A group override is checked too.
  CHECK_THROWS_KILN(optim::SGD(std::vector<optim::ParamGroup>{{.params = params, .lr = -1}}),
                    "SGD: invalid learning rate -1");

  CHECK_THROWS_KILN(optim::SGD(std::vector<Tensor>{}), "SGD: got an empty parameter list");
  CHECK_THROWS_KILN(optim::SGD({p.w, p.w}), "SGD: parameter 1 of group 0 appears twice in the group");
  CHECK_THROWS_KILN(optim::SGD(std::vector<optim::ParamGroup>{{.params = {p.w}}, {.params = {p.w}}}),
                    "SGD: parameter 0 of group 1 (f64[3, 4]) is already in a group");
  CHECK_THROWS_KILN(optim::SGD({p.w * 2.0}), "SGD: parameter 0 of group 0 (f64[3, 4]) is not a leaf tensor");
  CHECK_THROWS_KILN(optim::SGD({zeros({3}, {.dtype = i64})}), "only f32 and f64 parameters can be optimized");
  CHECK_THROWS_KILN(optim::SGD({Tensor()}), "SGD: parameter 0 of group 0 is undefined");
}

TEST_CASE("a gradient or state that does not match its parameter is refused at step") {
  Tensor w = zeros({3}, {.dtype = f64, .requires_grad = true});
  optim::Adam opt({w});
  w.set_grad(ones({3}, {.dtype = f32}));
  CHECK_THROWS_KILN(opt.step(), "Adam.step: the gradient of parameter 0 is f32[3] but the parameter is f64[3]");

  Tensor v = zeros({3}, {.dtype = f64, .requires_grad = true});
  optim::Adam opt2({v});
  v.set_grad(ones({3}, {.dtype = f64}));
  opt2.step();
  {
    NoGradGuard no_grad;
    v.set_data(zeros({3}, {.dtype = f32}));  // as Module::to(f32) does
  }
  v.set_grad(ones({3}, {.dtype = f32}));
  CHECK_THROWS_KILN(opt2.step(), "Adam.step: state 'exp_avg' of parameter 0 is f64[3] but the parameter is f32[3]");
}

// ---- schedules --------------------------------------------------------------------------------------

TEST_CASE("StepLR matches PyTorch's StepLR") {
  Tensor w = zeros({1}, {.requires_grad = true});
  optim::SGD opt({w}, {.lr = 0.1});
  optim::StepLR schedule(opt, /*step_size=*/3, /*gamma=*/0.5);
  for (size_t s = 0; s < gold::step_lr.size(); ++s) {
    CAPTURE(s);
    CHECK(opt.lr() == doctest::Approx(gold::step_lr[s]).epsilon(1e-12));
    schedule.step();
  }
  CHECK(schedule.current_step() == 10);
}

TEST_CASE("WarmupCosineLR: linear warmup, half cosine to min_lr, then min_lr") {
  Tensor w = zeros({1}, {.requires_grad = true});
  optim::AdamW opt({w}, {.lr = 1.0});
  optim::WarmupCosineLR schedule(opt, {.warmup_steps = 10, .total_steps = 110, .min_lr = 0.1});
  CHECK(opt.lr() == doctest::Approx(0.1));  // applied on construction: step 0
  const std::vector<std::pair<int64_t, double>> expected = {
      {0, 0.1},  {4, 0.5},  {9, 1.0},   {10, 1.0}, {35, 0.1 + 0.9 * 0.5 * (1 + std::cos(std::numbers::pi * 0.25))},
      {60, 0.55}, {85, 0.1 + 0.9 * 0.5 * (1 + std::cos(std::numbers::pi * 0.75))}, {110, 0.1}, {500, 0.1}};
  for (const auto& [step, lr] : expected) {
    CAPTURE(step);
    schedule.set_step(step);
    CHECK(opt.lr() == doctest::Approx(lr).epsilon(1e-12));
    CHECK(schedule.lr_at(step, 1.0) == doctest::Approx(lr).epsilon(1e-12));
  }
  schedule.set_step(59);
  schedule.step();
  CHECK(schedule.current_step() == 60);
  CHECK(opt.lr() == doctest::Approx(0.55));
}

TEST_CASE("schedules scale each group from its initial lr, and survive a state_dict round trip") {
  Problem p;
  optim::SGD opt(std::vector<optim::ParamGroup>{{.params = {p.w}}, {.params = {p.b}, .lr = 0.4}}, {.lr = 0.2});
  optim::StepLR schedule(opt, 2, 0.5);
  schedule.set_step(4);
  CHECK(opt.lr(0) == doctest::Approx(0.05));
  CHECK(opt.lr(1) == doctest::Approx(0.1));

  // A resumed run: the fresh optimizer's initial_lr comes from the state dict, so the
  // schedule built after loading scales from the original lrs, not the decayed ones.
  Problem q;
  optim::SGD resumed(std::vector<optim::ParamGroup>{{.params = {q.w}}, {.params = {q.b}}}, {.lr = 7.0});
  resumed.load_state_dict(opt.state_dict());
  CHECK(resumed.lr(1) == doctest::Approx(0.1));
  CHECK(resumed.initial_lr(1) == 0.4);
  optim::StepLR schedule2(resumed, 2, 0.5);
  schedule2.set_step(5);
  CHECK(resumed.lr(0) == doctest::Approx(0.05));
  CHECK(resumed.lr(1) == doctest::Approx(0.1));

  optim::ConstantLR constant(resumed);
  CHECK(resumed.lr(0) == 0.2);
  constant.set_step(1000);
  CHECK(resumed.lr(1) == 0.4);
}

TEST_CASE("bad schedule settings are refused") {
  Tensor w = zeros({1}, {.requires_grad = true});
  optim::SGD opt({w}, {.lr = 0.1});
  CHECK_THROWS_KILN(optim::StepLR(opt, 0), "StepLR: step_size must be > 0, got 0");
  CHECK_THROWS_KILN(optim::WarmupCosineLR(opt, {.warmup_steps = 10, .total_steps = 10}),
                    "WarmupCosineLR: total_steps (10) must be greater than warmup_steps (10)");
  CHECK_THROWS_KILN(optim::WarmupCosineLR(opt, {.warmup_steps = -1, .total_steps = 10}),
                    "warmup_steps must be >= 0");
  CHECK_THROWS_KILN(optim::WarmupCosineLR(opt, {.total_steps = 10, .min_lr = -1}), "min_lr must be >= 0");
  optim::ConstantLR constant(opt);
  CHECK_THROWS_KILN(constant.set_step(-1), "LRScheduler: step must be >= 0, got -1");
}

// ---- clip_grad_norm_ ----------------------------------------------------------------------------------

TEST_CASE("clip_grad_norm_ matches PyTorch for norms 2, 1, 3 and inf") {
  struct Case {
    std::string name;
    double max_norm, norm_type;
    const std::vector<double>& total;
    const std::vector<double>& grads;
  };
  const std::vector<Case> cases = {
      {"l2", 1.0, 2.0, gold::clip_l2_total, gold::clip_l2_grads},
      {"l1", 2.0, 1.0, gold::clip_l1_total, gold::clip_l1_grads},
      {"linf", 0.5, INFINITY, gold::clip_linf_total, gold::clip_linf_grads},
      {"l3", 1.5, 3.0, gold::clip_l3_total, gold::clip_l3_grads},
      {"l2, below max_norm: untouched", 1e3, 2.0, gold::clip_l2_no_clip_total, gold::clip_l2_no_clip_grads},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    Problem p;
    p.backward();
    const double total = optim::clip_grad_norm_({p.w, p.b}, c.max_norm, c.norm_type);
    CHECK(total == doctest::Approx(c.total[0]).epsilon(1e-12));
    std::vector<double> grads = p.w.grad().to_vector<double>();
    for (double v : p.b.grad().to_vector<double>()) grads.push_back(v);
    check_values(from_vector(grads), c.grads, 1e-12, 1e-10);
  }
}

TEST_CASE("clip_grad_norm_: by hand, without gradients, non-finite norms, bad arguments") {
  Tensor a = zeros({2}, {.requires_grad = true}), b = zeros({1}, {.requires_grad = true});
  Tensor none = zeros({3}, {.requires_grad = true});
  a.set_grad(from_vector(std::vector<float>{3, 0}));
  b.set_grad(from_vector(std::vector<float>{4}));
  const double total = optim::clip_grad_norm_({a, b, none}, 1.0);  // |(3, 0, 4)| = 5
  CHECK(total == doctest::Approx(5.0));
  check_values(a.grad(), {3.0 / (5 + 1e-6), 0});
  check_values(b.grad(), {4.0 / (5 + 1e-6)});

  CHECK(optim::clip_grad_norm_({none}, 1.0) == 0);

  b.set_grad(from_vector(std::vector<float>{NAN}));
  CHECK(std::isnan(optim::clip_grad_norm_({a, b}, 1.0)));
  CHECK_THROWS_KILN(optim::clip_grad_norm_({a, b}, 1.0, 2.0, /*error_if_nonfinite=*/true),
                    "clip_grad_norm_: the total norm of order 2 of the gradients is nan");
  CHECK_THROWS_KILN(optim::clip_grad_norm_({a}, 1.0, 0.0), "clip_grad_norm_: norm_type must be > 0");
  CHECK_THROWS_KILN(optim::clip_grad_norm_({a}, -1.0), "clip_grad_norm_: max_norm must be >= 0");
}

TEST_CASE("get_total_norm and clip_grads_with_norm_ split clip_grad_norm_ in two, with the same results") {
  for (double norm_type : {2.0, 1.0, 3.0, double(INFINITY)}) {
    CAPTURE(norm_type);
    Problem whole, split;
    whole.backward();
    split.backward();
    const double total = optim::clip_grad_norm_({whole.w, whole.b}, 0.5, norm_type);
    const Tensor norm = optim::get_total_norm(optim::gradients({split.w, split.b}), norm_type);
    CHECK(norm.dim() == 0);
    CHECK(norm.dtype() == f64);
    CHECK(norm.item<double>() == total);
    optim::clip_grads_with_norm_({split.w, split.b}, 0.5, norm.item<double>());
    CHECK(split.w.grad().to_vector<double>() == whole.w.grad().to_vector<double>());
    CHECK(split.b.grad().to_vector<double>() == whole.b.grad().to_vector<double>());
  }
}

TEST_CASE("get_total_norm and clip_grads_with_norm_: by hand, mixed dtypes, nothing to clip, bad arguments") {
  Tensor a = zeros({2}, {.requires_grad = true}), b = zeros({1}, {.dtype = f64, .requires_grad = true});
  Tensor none = zeros({3}, {.requires_grad = true});
  a.set_grad(from_vector(std::vector<float>{3, 0}));
  b.set_grad(from_vector(std::vector<double>{-4}));
  CHECK(optim::gradients({a, none, b}).size() == 2);
  CHECK(optim::get_total_norm(optim::gradients({a, none, b})).item<double>() == doctest::Approx(5.0));
  CHECK(optim::get_total_norm({a.grad(), Tensor(), b.grad()}, 1.0).item<double>() == doctest::Approx(7.0));
  CHECK(optim::get_total_norm({a.grad(), b.grad()}, INFINITY).item<double>() == 4.0);
  CHECK(optim::get_total_norm({}).item<double>() == 0);

  // A norm under max_norm, or one that is not a number, leaves the gradients alone (bit for bit).
  for (double total : {0.99, 0.5, double(NAN), double(INFINITY)}) {
    CAPTURE(total);
    optim::clip_grads_with_norm_({a, b}, 1.0, total);
    CHECK(a.grad().to_vector<float>() == std::vector<float>{3, 0});
    CHECK(b.grad().to_vector<double>() == std::vector<double>{-4});
  }
  optim::clip_grads_with_norm_({a, none, b}, 1.0, 5.0);
  check_values(a.grad(), {3.0 / (5 + 1e-6), 0});
  check_values(b.grad(), {-4.0 / (5 + 1e-6)});
  CHECK_FALSE(none.grad().defined());

  // A NaN gradient makes every norm NaN, the largest-magnitude one too (not the max of
  // the others), so clipping leaves the gradients alone.
  Tensor c = zeros({2}, {.requires_grad = true});
  c.set_grad(from_vector(std::vector<float>{NAN, 1}));
  for (double norm_type : {2.0, 1.0, double(INFINITY)}) {
    CAPTURE(norm_type);
    CHECK(std::isnan(optim::get_total_norm({a.grad(), c.grad()}, norm_type).item<double>()));
    CHECK(std::isnan(optim::clip_grad_norm_({a, c}, 1.0, norm_type)));
  }

  CHECK_THROWS_KILN(optim::get_total_norm({a.grad()}, -2.0), "get_total_norm: norm_type must be > 0");
  CHECK_THROWS_KILN(optim::clip_grads_with_norm_({a}, 1.0, -1.0), "clip_grads_with_norm_: total_norm is a norm");
  CHECK_THROWS_KILN(optim::clip_grads_with_norm_({a}, -1.0, 5.0), "clip_grads_with_norm_: max_norm must be >= 0");
}
