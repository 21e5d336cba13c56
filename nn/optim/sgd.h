// Stochastic gradient descent with momentum, dampening, Nesterov momentum and (L2)
// weight decay: torch.optim.SGD's semantics exactly.
//
//   nn::optim::SGD opt(model->parameters(), {.lr = 0.1, .momentum = 0.9, .nesterov = true});
//
// Per element, with d = grad + weight_decay * param:
//   buf = d on the first step, else momentum * buf + (1 - dampening) * d
//   d   = nesterov ? d + momentum * buf : buf          (when momentum != 0)
//   param -= lr * d
#pragma once

#include "kiln/nn/optim/optimizer.h"

namespace kiln::nn::optim {

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;  // needs momentum > 0 and dampening == 0

  void check(const std::string& optimizer) const;
  template <class F>
  void visit(F&& f) {
    f("lr", lr);
    f("momentum", momentum);
    f("dampening", dampening);
    f("weight_decay", weight_decay);
    f("nesterov", nesterov);
  }
};

class SGD : public OptimizerWithOptions<SGDOptions> {
 public:
  explicit SGD(const std::vector<Tensor>& params, const SGDOptions& options = {});
  explicit SGD(const std::vector<ParamGroup>& groups, const SGDOptions& options = {});

  std::string name() const override { return "SGD"; }
  void step() override;

 protected:
  // momentum_buffer appears on a parameter's first step with momentum != 0.
  std::vector<BufferSpec> state_buffers() const override { return {{"momentum_buffer", /*required=*/false}}; }
};

}  // namespace kiln::nn::optim
