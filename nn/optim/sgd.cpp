#include "kiln/nn/optim/sgd.h"

#include "kiln/core/dispatch.h"
#include "kiln/core/factory.h"
#include "kiln/cuda/optim.h"
#include "kiln/ops/common.h"
#include "kiln/ops/cpu/optim_kernels.h"

namespace kiln::nn::optim {

void SGDOptions::check(const std::string& optimizer) const {
  check_non_negative(optimizer, "learning rate", lr);
  check_non_negative(optimizer, "momentum", momentum);
  check_non_negative(optimizer, "weight_decay", weight_decay);
  KILN_CHECK(!nesterov || (momentum > 0 && dampening == 0), optimizer,
             ": Nesterov momentum requires a momentum > 0 and zero dampening (got momentum ", momentum,
             ", dampening ", dampening, ")");
}

SGD::SGD(const std::vector<Tensor>& params, const SGDOptions& options)
    : SGD(std::vector<ParamGroup>{ParamGroup{.params = params}}, options) {}

SGD::SGD(const std::vector<ParamGroup>& groups, const SGDOptions& options) : OptimizerWithOptions(options) {
  init(groups);
}

void SGD::step() {
  for_each_update([&](size_t group, const Tensor& param, const Tensor& grad, ParamState& state) {
    const SGDOptions& o = options(group);
    cpu::SgdHyperparameters h{.lr = o.lr, .momentum = o.momentum, .dampening = o.dampening,
                              .weight_decay = o.weight_decay, .nesterov = o.nesterov};
    Tensor buffer;
    if (o.momentum != 0) {
      // PyTorch starts the buffer as a copy of the first (decayed) gradient; the kernel
      // writes it, so an uninitialised buffer will do.
      Tensor& slot = state.buffers["momentum_buffer"];
      h.first_step = !slot.defined();
      if (h.first_step) slot = empty_like(param);
      buffer = slot;
      ops::check_same_device("SGD.step", {param, buffer});
    }
    ops::check_same_device("SGD.step", {param, grad});
    // The fused kernel of the parameter's device: one pass, no temporaries.
    dispatch_floating(param.dtype(), "SGD.step", [&]<class T>() {
      T* buf = buffer.defined() ? buffer.data<T>() : nullptr;
      if (param.device().is_cuda())
        cuda::sgd_update(param.data<T>(), grad.data<T>(), buf, param.numel(), h, param.device().index);
      else
        cpu::sgd_update(param.data<T>(), grad.data<T>(), buf, param.numel(), h);
    });
  });
}

}  // namespace kiln::nn::optim
