// nn::Module: registration, recursive naming, modes, dtype moves, state_dict round
// trips and the errors of a strict load.
#include <kiln/nn/module.h>

#include "helpers.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

struct Affine : nn::Module {
  Tensor weight, bias;
  Affine(int64_t n) {
    weight = register_parameter("weight", ones({n}));
    bias = register_parameter("bias", zeros({n}));
  }
  Tensor forward(const Tensor& x) { return x * weight + bias; }
  std::string extra_repr() const override { return "n=" + std::to_string(weight.numel()); }
};

struct Net : nn::Module {
  std::shared_ptr<Affine> first, second;
  Tensor steps;
  Net() {
    first = register_module("first", std::make_shared<Affine>(3));
    second = register_module("second", std::make_shared<Affine>(3));
    steps = register_buffer("steps", zeros({1}, {.dtype = i64}));
  }
  Tensor forward(const Tensor& x) { return second->forward(first->forward(x)); }
};

}  // namespace

TEST_CASE("parameters are named recursively in registration order") {
  Net net;
  std::vector<std::string> names;
  for (auto& [name, p] : net.named_parameters()) names.push_back(name);
  CHECK(names == std::vector<std::string>{"first.weight", "first.bias", "second.weight", "second.bias"});
  CHECK(net.num_parameters() == 12);
  CHECK(net.parameters()[0].requires_grad());
  CHECK(net.named_buffers().at(0).first == "steps");
  CHECK(net.children().size() == 2);
}

TEST_CASE("registered handles and the module see the same tensor") {
  Net net;
  Tensor loss = sum(net.forward(ones({2, 3})));
  loss.backward();
  CHECK(net.first->weight.grad().defined());
  CHECK(net.parameters()[0].grad().defined());
  net.zero_grad();
  CHECK_FALSE(net.first->weight.grad().defined());
}

TEST_CASE("train/eval propagate to children") {
  Net net;
  net.eval();
  CHECK_FALSE(net.is_training());
  CHECK_FALSE(net.first->is_training());
  net.train();
  CHECK(net.second->is_training());
}

TEST_CASE("to(dtype) converts floating parameters in place and keeps integer buffers") {
  Net net;
  net.to(f64);
  CHECK(net.first->weight.dtype() == f64);
  CHECK(net.parameters()[0].dtype() == f64);
  CHECK(net.steps.dtype() == i64);
  CHECK(net.first->weight.requires_grad());
  Tensor y = net.forward(ones({1, 3}, {.dtype = f64}));
  CHECK(y.dtype() == f64);
}

TEST_CASE("state_dict round trip copies values into another model") {
  Net a, b;
  {
    NoGradGuard no_grad;
    a.first->weight.fill_(3.0);
    a.steps.fill_(7.0);
  }
  b.load_state_dict(a.state_dict());
  check_values(b.first->weight, {3, 3, 3});
  check_values(b.steps, {7});
  CHECK_FALSE(b.first->weight.is_same(a.first->weight));  // copied, not shared
}

TEST_CASE("strict load names missing, unexpected and mis-shaped keys") {
  Net net;
  nn::StateDict partial;
  partial.insert("first.weight", ones({3}));
  CHECK_THROWS_KILN(net.load_state_dict(partial), "missing keys: first.bias");
  net.load_state_dict(partial, /*strict=*/false);  // a partial load is fine when asked for

  nn::StateDict extra = net.state_dict();
  extra.insert("third.weight", ones({3}));
  CHECK_THROWS_KILN(net.load_state_dict(extra), "unexpected keys: third.weight");

  nn::StateDict wrong = net.state_dict();
  wrong.insert("second.bias", ones({4}));
  CHECK_THROWS_KILN(net.load_state_dict(wrong), "second.bias (checkpoint [4], model [3])");
}

TEST_CASE("registration errors") {
  Net net;
  CHECK_THROWS_KILN(net.register_parameter("steps", ones({1})), "already registered");
  CHECK_THROWS_KILN(net.register_buffer("a.b", ones({1})), "invalid name");
  Tensor x = from_vector<double>({1.0}).requires_grad_();
  CHECK_THROWS_KILN(net.register_parameter("nonleaf", x * 2.0), "leaf");
}

TEST_CASE("summary prints the tree with parameter counts") {
  Net net;
  const std::string s = net.summary();
  CHECK(s.find("Net(") == 0);
  CHECK(s.find("(first): Affine(n=3)  # 6 params") != std::string::npos);
  CHECK(s.find("Total params: 12 (trainable: 12)") != std::string::npos);
}
