// Adam and AdamW: torch.optim.Adam / torch.optim.AdamW semantics exactly.
//
//   nn::optim::Adam  opt(model->parameters(), {.lr = 1e-3});
//   nn::optim::AdamW opt(model->parameters(), {.lr = 1e-3, .betas = {0.9, 0.95}, .weight_decay = 0.1});
//
// Per element, at step t (1 on the first update):
//   Adam:  g = grad + weight_decay * param           (L2 penalty folded into the gradient)
//   AdamW: param *= 1 - lr * weight_decay, g = grad  (decoupled weight decay)
//   m = beta1 * m + (1 - beta1) * g,   v = beta2 * v + (1 - beta2) * g^2
//   param -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// The two differ only in where weight decay goes, and in its default (0 vs 0.01).
#pragma once

#include <utility>

#include "kiln/nn/optim/optimizer.h"

namespace kiln::nn::optim {

struct AdamOptions {
  double lr = 1e-3;
  std::pair<double, double> betas = {0.9, 0.999};
  double eps = 1e-8;
  double weight_decay = 0;

  void check(const std::string& optimizer) const;
  template <class F>
  void visit(F&& f) {
    f("lr", lr);
    f("beta1", betas.first);
    f("beta2", betas.second);
    f("eps", eps);
    f("weight_decay", weight_decay);
  }
};

// AdamOptions with AdamW's default weight decay.
struct AdamWOptions {
  double lr = 1e-3;
  std::pair<double, double> betas = {0.9, 0.999};
  double eps = 1e-8;
  double weight_decay = 1e-2;

  void check(const std::string& optimizer) const;
  template <class F>
  void visit(F&& f) {
    f("lr", lr);
    f("beta1", betas.first);
    f("beta2", betas.second);
    f("eps", eps);
    f("weight_decay", weight_decay);
  }
};

class Adam : public OptimizerWithOptions<AdamOptions> {
 public:
  explicit Adam(const std::vector<Tensor>& params, const AdamOptions& options = {});
  explicit Adam(const std::vector<ParamGroup>& groups, const AdamOptions& options = {});

  std::string name() const override { return "Adam"; }
  void step() override;

 protected:
  std::vector<BufferSpec> state_buffers() const override { return {{"exp_avg"}, {"exp_avg_sq"}}; }
};

class AdamW : public OptimizerWithOptions<AdamWOptions> {
 public:
  explicit AdamW(const std::vector<Tensor>& params, const AdamWOptions& options = {});
  explicit AdamW(const std::vector<ParamGroup>& groups, const AdamWOptions& options = {});

  std::string name() const override { return "AdamW"; }
  void step() override;

 protected:
  std::vector<BufferSpec> state_buffers() const override { return {{"exp_avg"}, {"exp_avg_sq"}}; }
};

}  // namespace kiln::nn::optim
