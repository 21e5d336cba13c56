// Sequential: runs child modules in order. Any module with `Tensor forward(const
// Tensor&) const` can be appended; children are named "0", "1", ... as in PyTorch.
#pragma once

#include <functional>
#include <vector>

#include "kiln/nn/module.h"

namespace kiln::nn {

class Sequential : public Module {
 public:
  Sequential() = default;
  template <class... M>
  explicit Sequential(std::shared_ptr<M>... modules) {
    (push_back(std::move(modules)), ...);
  }

  template <class M>
  Sequential& push_back(std::shared_ptr<M> module) {
    M* raw = module.get();
    register_module(std::to_string(steps_.size()), std::move(module));
    steps_.push_back([raw](const Tensor& x) { return raw->forward(x); });
    return *this;
  }

  Tensor forward(const Tensor& x) const {
    Tensor h = x;
    for (const auto& step : steps_) h = step(h);
    return h;
  }
  size_t size() const { return steps_.size(); }

 private:
  // One call per child, not per element: the type erasure costs nothing measurable.
  std::vector<std::function<Tensor(const Tensor&)>> steps_;
};

}  // namespace kiln::nn
