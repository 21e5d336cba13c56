// Autograd engine: accumulation, grad(), double backward, deep chains, in-place
// detection, hooks, no-grad, anomaly mode, DOT export.
#include "helpers.h"

using namespace kiln;
using namespace kiln::testing;

TEST_CASE("backward accumulates into leaves across calls") {
  Tensor x = from_vector<double>({1, 2, 3}).requires_grad_();
  sum(x * x).backward();
  check_values(x.grad(), {2, 4, 6});
  sum(x * 3.0).backward();  // accumulates: 2x + 3
  check_values(x.grad(), {5, 7, 9});
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("a tensor used twice sums both gradient paths") {
  Tensor x = from_vector<double>({2.0}).requires_grad_();
  Tensor y = x * x + x;  // dy/dx = 2x + 1 = 5
  y.backward(ones_like(y));
  check_values(x.grad(), {5});
}

TEST_CASE("grad() returns gradients without touching .grad()") {
  Tensor x = from_vector<double>({1.0, -2.0}).requires_grad_();
  Tensor y = sum(exp(x));
  std::vector<Tensor> g = grad({y}, {x});
  check_values(g[0], {std::exp(1.0), std::exp(-2.0)});
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("double backward of x^3 * sin(x) through composite rules") {
  // f = x^3 sin x;  f' = 3x^2 sin x + x^3 cos x;  f'' = 6x sin x + 6x^2 cos x - x^3 sin x
  const double v = 0.7;
  Tensor x = from_vector<double>({v}).requires_grad_();
  Tensor f = x * x * x * sin(x);
  Tensor df = grad({sum(f)}, {x}, {.create_graph = true})[0];
  check_values(df, {3 * v * v * std::sin(v) + v * v * v * std::cos(v)}, 1e-12, 1e-10);
  Tensor d2f = grad({sum(df)}, {x})[0];
  check_values(d2f, {6 * v * std::sin(v) + 6 * v * v * std::cos(v) - v * v * v * std::sin(v)}, 1e-12, 1e-10);
}

TEST_CASE("a chain of 100000 ops backpropagates and frees without stack overflow") {
  Tensor x = from_vector<float>({1.0f}).requires_grad_();
  Tensor y = x;
  for (int i = 0; i < 100000; ++i) y = y * 1.0f;
  sum(y).backward();
  check_values(x.grad(), {1.0});
  y = Tensor();  // destroying the 100k-node graph must be iterative too
}

TEST_CASE("in-place change of a tensor saved for backward is rejected") {
  Tensor w = from_vector<double>({1, 2}).requires_grad_();
  Tensor data = from_vector<double>({3, 4});
  Tensor loss = sum(w * data);  // mul saves `data`
  data.mul_(2.0);               // allowed: data does not require grad...
  CHECK_THROWS_KILN(loss.backward(), "modified in place");  // ...but backward notices
}

TEST_CASE("in-place op on a tensor requiring grad is refused while grad mode is on") {
  Tensor w = from_vector<double>({1, 2}).requires_grad_();
  CHECK_THROWS_KILN(w.add_(ones_like(w)), "requires grad");
  {
    NoGradGuard no_grad;
    w.add_(ones_like(w));  // the optimizer path
  }
  check_values(w, {2, 3});
}

TEST_CASE("NoGradGuard records no graph") {
  Tensor x = from_vector<double>({1, 2}).requires_grad_();
  Tensor y;
  {
    NoGradGuard guard;
    y = x * 2.0;
  }
  CHECK_FALSE(y.requires_grad());
  CHECK(y.grad_fn() == nullptr);
  CHECK(GradMode::is_enabled());
}

TEST_CASE("backward twice without retain_graph is an error; with it, gradients add") {
  Tensor x = from_vector<double>({3.0}).requires_grad_();
  Tensor y = sum(x * x);
  y.backward({}, /*retain_graph=*/true);
  y.backward();
  check_values(x.grad(), {12});
  CHECK_THROWS_KILN(y.backward(), "second time");
}

TEST_CASE("hooks see and can replace gradients; retain_grad keeps non-leaf grads") {
  Tensor x = from_vector<double>({1, 2}).requires_grad_();
  Tensor h = x * 3.0;
  h.retain_grad();
  h.register_hook([](const Tensor& g) { return g * 2.0; });
  sum(h).backward();
  check_values(h.grad(), {2, 2});  // after the hook doubled it
  check_values(x.grad(), {6, 6});
}

TEST_CASE("a leaf's gradient owns one element per entry, also when it arrives as an expand") {
  // sum's backward hands an expand of one value (stride 0) to the leaf. Kept as .grad, the
  // next in-place accumulation would add into that one element n times.
  Tensor w = from_vector<double>({1, 2, 3}).requires_grad_();
  (sum(w) * 2.0).backward();
  check_values(w.grad(), {2, 2, 2});
  (sum(w) * 2.0).backward();
  check_values(w.grad(), {4, 4, 4});
  // ... and in-place scaling (clip_grad_norm_) would scale it n times.
  w.grad().mul_(0.5);
  check_values(w.grad(), {2, 2, 2});
}

TEST_CASE("a hook's replacement gradient must keep the gradient's shape, dtype and device") {
  Tensor x = from_vector<double>({1, 2}).requires_grad_();
  Tensor h = x * 3.0;
  h.register_hook([](const Tensor& g) { return sum(g); });  // a scalar for a (2) gradient
  CHECK_THROWS_KILN(sum(h).backward(), "returned f64[] in place of f64[2]; a replacement must keep the shape");
  Tensor k = x * 3.0;
  k.register_hook([](const Tensor& g) { return g.to(f32); });
  CHECK_THROWS_KILN(sum(k).backward(), "returned f32[2] in place of f64[2]");
}

TEST_CASE("backward of a non-scalar needs an explicit gradient") {
  Tensor x = from_vector<double>({1, 2}).requires_grad_();
  CHECK_THROWS_KILN((x * 2.0).backward(), "scalar outputs");
  // An explicit gradient must match the output's shape, dtype (and device: test_cuda_models.cpp).
  CHECK_THROWS_KILN((x * 2.0).backward(ones({3}, {.dtype = f64})), "has shape [3] but the output has shape [2]");
  CHECK_THROWS_KILN((x * 2.0).backward(ones({2})), "grad_output 0 is f32[2] but the output is f64[2]");
  Tensor z = from_vector<double>({1, 2});
  CHECK_THROWS_KILN(sum(z).backward(), "does not require grad");
}

TEST_CASE("anomaly mode names the op that produced NaN") {
  DetectAnomalyGuard anomaly;
  Tensor x = from_vector<double>({-1.0}).requires_grad_();
  CHECK_THROWS_KILN(log(x), "'log'");
}

TEST_CASE("anomaly mode names the backward that produced NaN") {
  Tensor x = from_vector<double>({1.0, 2.0}).requires_grad_();
  Tensor y = x * 2.0;  // a finite forward
  DetectAnomalyGuard anomaly;
  CHECK_THROWS_KILN(y.backward(full_like(y, std::nan(""))), "backward of 'mul'");
}

TEST_CASE("to_dot exports the graph") {
  Tensor x = from_vector<double>({1, 2}).requires_grad_();
  Tensor y = sum(exp(x) * x);
  const std::string dot = to_dot(y);
  CHECK(dot.find("digraph") != std::string::npos);
  CHECK(dot.find("exp") != std::string::npos);
  CHECK(dot.find("mul") != std::string::npos);
  CHECK(dot.find("leaf f64[2]") != std::string::npos);
}

TEST_CASE("gradcheck catches a wrong gradient") {
  // A deliberately wrong rule must fail gradcheck: a hook doubles the gradient.
  Tensor x = leaf64({3});
  auto r = gradcheck([](const std::vector<Tensor>& in) {
    Tensor y = in[0] * 1.0;
    if (y.requires_grad()) y.register_hook([](const Tensor& g) { return g * 2.0; });
    return exp(y);
  }, {x});
  CHECK_FALSE(r.ok);
  check_gradients([](const std::vector<Tensor>& in) { return exp(in[0]) * in[0]; }, {x});
}
