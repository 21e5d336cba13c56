#include "kiln/nn/optim/adam.h"

#include "kiln/core/dispatch.h"
#include "kiln/core/factory.h"
#include "kiln/cuda/optim.h"
#include "kiln/ops/common.h"
#include "kiln/ops/cpu/optim_kernels.h"

namespace kiln::nn::optim {

namespace {

// Both option structs hold the same fields; only their defaults differ.
template <class Options>
void check_adam_options(const Options& o, const std::string& optimizer) {
  check_non_negative(optimizer, "learning rate", o.lr);
  check_non_negative(optimizer, "epsilon", o.eps);
  check_beta(optimizer, "beta1", o.betas.first);
  check_beta(optimizer, "beta2", o.betas.second);
  check_non_negative(optimizer, "weight_decay", o.weight_decay);
}

// One Adam/AdamW update of one parameter, by the fused kernel of its device. The moments
// start at zero on its first step, on the parameter's device.
template <class Options>
void adam_update(const Tensor& param, const Tensor& grad, ParamState& state, const Options& o, bool decoupled,
                 const char* op) {
  Tensor& exp_avg = state.buffers["exp_avg"];
  Tensor& exp_avg_sq = state.buffers["exp_avg_sq"];
  if (!exp_avg.defined()) exp_avg = zeros_like(param);
  if (!exp_avg_sq.defined()) exp_avg_sq = zeros_like(param);
  const cpu::AdamHyperparameters h{.lr = o.lr, .beta1 = o.betas.first, .beta2 = o.betas.second, .eps = o.eps,
                                   .weight_decay = o.weight_decay, .decoupled_weight_decay = decoupled,
                                   .step = state.step};
  ops::check_same_device(op, {param, grad, exp_avg, exp_avg_sq});
  dispatch_floating(param.dtype(), op, [&]<class T>() {
    if (param.device().is_cuda())
      cuda::adam_update(param.data<T>(), grad.data<T>(), exp_avg.data<T>(), exp_avg_sq.data<T>(), param.numel(), h,
                        param.device().index);
    else
      cpu::adam_update(param.data<T>(), grad.data<T>(), exp_avg.data<T>(), exp_avg_sq.data<T>(), param.numel(), h);
  });
}

}  // namespace

void AdamOptions::check(const std::string& optimizer) const { check_adam_options(*this, optimizer); }
void AdamWOptions::check(const std::string& optimizer) const { check_adam_options(*this, optimizer); }

Adam::Adam(const std::vector<Tensor>& params, const AdamOptions& options)
    : Adam(std::vector<ParamGroup>{ParamGroup{.params = params}}, options) {}

Adam::Adam(const std::vector<ParamGroup>& groups, const AdamOptions& options) : OptimizerWithOptions(options) {
  init(groups);
}

void Adam::step() {
  for_each_update([&](size_t group, const Tensor& param, const Tensor& grad, ParamState& state) {
    adam_update(param, grad, state, options(group), /*decoupled=*/false, "Adam.step");
  });
}

AdamW::AdamW(const std::vector<Tensor>& params, const AdamWOptions& options)
    : AdamW(std::vector<ParamGroup>{ParamGroup{.params = params}}, options) {}

AdamW::AdamW(const std::vector<ParamGroup>& groups, const AdamWOptions& options) : OptimizerWithOptions(options) {
  init(groups);
}

void AdamW::step() {
  for_each_update([&](size_t group, const Tensor& param, const Tensor& grad, ParamState& state) {
    adam_update(param, grad, state, options(group), /*decoupled=*/true, "AdamW.step");
  });
}

}  // namespace kiln::nn::optim
