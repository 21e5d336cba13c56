// nn::optim::Optimizer: the base of SGD, Adam and AdamW, in the spirit of torch.optim.
//
//   nn::optim::AdamW opt(model->parameters(), {.lr = 1e-3, .weight_decay = 0.01});
//   for (...) { opt.zero_grad(); loss.backward(); opt.step(); }
//
// Parameters live in groups, and each group holds its own copy of the optimizer's
// options (lr, weight_decay, betas, ...): biases can skip weight decay, a pretrained trunk
// can train with a smaller lr. ParamGroup names what differs from the defaults:
//
//   nn::optim::AdamW opt(nn::optim::weight_decay_groups(*model), {.lr = 6e-4, .weight_decay = 0.1});
//   nn::optim::SGD opt({{.params = trunk->parameters(), .lr = 1e-3}, {.params = head->parameters()}},
//                      {.lr = 1e-2, .momentum = 0.9});
//
// Per-parameter state (momentum buffers, Adam's moments, a step count) is created on a
// parameter's first update. state_dict() flattens the optimizer into named tensors, so
// the checkpoint code stores it exactly like a model's state:
//
//   group.<g>.num_params  group.<g>.initial_lr  group.<g>.<option>   0-d f64 tensors
//   state.<i>.step                                                    0-d f64 tensor
//   state.<i>.<buffer>   (momentum_buffer, exp_avg, exp_avg_sq)       shaped like parameter i
//
// Options carry torch.optim's names (betas become beta1 and beta2, booleans 0 or 1), and
// i numbers the parameters across groups in order, as PyTorch does.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "kiln/core/tensor.h"
#include "kiln/nn/module.h"

namespace kiln::nn::optim {

// Parameters that share options. lr and weight_decay left unset take the optimizer's.
struct ParamGroup {
  std::vector<Tensor> params;
  std::optional<double> lr;
  std::optional<double> weight_decay;
};

// The GPT-2 / nanoGPT split of a model's parameters into two groups:
//   [0] "decay":    matrices and kernels (dim >= 2: Linear, Conv, Embedding weights),
//                   with the optimizer's weight decay;
//   [1] "no decay": biases and norm gains (dim < 2), with weight_decay = 0.
// Parameters that do not require grad are left out.
std::vector<ParamGroup> weight_decay_groups(const Module& module);

// What an optimizer remembers about one parameter.
struct ParamState {
  int64_t step = 0;                       // updates applied so far (0: no state yet)
  std::map<std::string, Tensor> buffers;  // e.g. exp_avg, exp_avg_sq; shaped like the parameter
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // "SGD", "Adam", "AdamW": the prefix of every error message.
  virtual std::string name() const = 0;

  // One update of every parameter that has a gradient; parameters without one are skipped.
  virtual void step() = 0;
  // Sets every parameter's gradient to none (PyTorch's default), or to zeros in place.
  void zero_grad(bool set_to_none = true);

  // ---- groups and options ----------------------------------------------------------------
  size_t num_param_groups() const { return groups_.size(); }
  const std::vector<Tensor>& params(size_t group) const;
  std::vector<Tensor> parameters() const;  // every group's, in order
  // The learning rate a group's next step uses; schedules set it.
  double lr(size_t group = 0) const { return option(group, "lr"); }
  void set_lr(size_t group, double lr) { set_option(group, "lr", lr); }
  void set_lr(double lr);  // every group
  // The lr the group was created with: schedules scale from it. Saved in the state dict.
  double initial_lr(size_t group) const;
  // Any option by its torch.optim name ("lr", "momentum", "beta1", ...), checked like the
  // constructor's options: code that treats every optimizer alike uses these.
  double option(size_t group, const std::string& name) const;
  void set_option(size_t group, const std::string& name, double value);

  // ---- state --------------------------------------------------------------------------------
  // The state of parameter `index` (numbered across groups in order).
  const ParamState& state(size_t index) const;
  // The options and state as named tensors (see the top of this file). Buffers share
  // storage with the optimizer, like Module::state_dict(): save it before the next step.
  StateDict state_dict() const;
  // Replaces options and state with a copy of `dict`. The dict must come from the same
  // optimizer type over parameters of the same shapes; otherwise a kiln::Error names
  // what differs and nothing is changed.
  void load_state_dict(const StateDict& dict);

 protected:
  Optimizer() = default;

  // A state buffer an optimizer keeps per parameter. A required one exists as soon as
  // the parameter has been stepped; an optional one (SGD's momentum_buffer when momentum
  // is 0) may be missing.
  struct BufferSpec {
    std::string name;
    bool required = true;
  };
  virtual std::vector<BufferSpec> state_buffers() const = 0;

  // Options of a group as (name, value) pairs, and a replacement of all groups' options
  // that checks every value first and changes nothing when one is invalid. Implemented
  // by OptimizerWithOptions.
  using OptionValues = std::map<std::string, double>;
  virtual std::vector<std::pair<std::string, double>> options_of(size_t group) const = 0;
  virtual void replace_options(const std::vector<OptionValues>& groups) = 0;

  // Appends a group's parameters after checking them (defined leaves, f32/f64, on the CPU,
  // not already in a group). `lr` becomes the group's initial_lr.
  void add_group_params(const std::vector<Tensor>& params, double lr);
  // Calls update(group, param, grad, state) for each parameter that has a gradient, under
  // NoGradGuard, with state.step already counting this update; then bumps the parameter's
  // version (the update writes in place). Checks that the parameter is contiguous, and
  // that its gradient and state buffers match it; hands over a contiguous gradient.
  using UpdateFn = std::function<void(size_t group, const Tensor& param, const Tensor& grad, ParamState& state)>;
  void for_each_update(const UpdateFn& update);

 private:
  void check_new_param(const Tensor& p, size_t group, size_t index_in_group) const;
  void check_update_inputs(size_t index, const Tensor& param, const Tensor& grad, const ParamState& state) const;

  std::vector<std::vector<Tensor>> groups_;
  std::vector<double> initial_lrs_;  // per group
  std::vector<ParamState> states_;   // per parameter, across groups in order
};

// The part of an optimizer that depends on its Options struct (SGDOptions, AdamOptions, ...).
// Options is an aggregate with `double lr` and `double weight_decay`, a member
// `void check(const std::string& optimizer) const` that throws kiln::Error on invalid
// values, and `visit(f)` calling f("name", member) for every option (double or bool).
template <class Options>
class OptimizerWithOptions : public Optimizer {
 public:
  const Options& defaults() const { return defaults_; }
  // A group's options. Edits take effect at the next step; unlike set_option() they are
  // not checked, so prefer set_option() or options(g).check(name()) after editing.
  Options& options(size_t group) { return options_.at(group); }
  const Options& options(size_t group) const { return options_.at(group); }

  // Adds a group (PyTorch's add_param_group); unset lr/weight_decay come from defaults().
  void add_param_group(const ParamGroup& group) {
    Options o = defaults_;
    if (group.lr) o.lr = *group.lr;
    if (group.weight_decay) o.weight_decay = *group.weight_decay;
    o.check(name());
    add_group_params(group.params, o.lr);
    options_.push_back(o);
  }

 protected:
  explicit OptimizerWithOptions(const Options& defaults) : defaults_(defaults) {}

  // Derived constructors call this: checks the defaults, adds the groups, and refuses an
  // optimizer with nothing to optimize.
  void init(const std::vector<ParamGroup>& groups) {
    defaults_.check(name());
    for (const ParamGroup& g : groups) add_param_group(g);
    KILN_CHECK(!parameters().empty(), name(), ": got an empty parameter list");
  }

  std::vector<std::pair<std::string, double>> options_of(size_t group) const override {
    std::vector<std::pair<std::string, double>> out;
    Options o = options_.at(group);
    o.visit([&](const char* option, auto& value) { out.emplace_back(option, static_cast<double>(value)); });
    return out;
  }

  void replace_options(const std::vector<OptionValues>& groups) override {
    std::vector<Options> next = options_;  // every group is checked before any changes
    for (size_t g = 0; g < next.size(); ++g) {
      next[g].visit([&](const char* option, auto& value) {
        const double v = groups.at(g).at(option);
        if constexpr (std::is_same_v<std::decay_t<decltype(value)>, bool>)
          KILN_CHECK(v == 0 || v == 1, name(), ": option '", option, "' is a flag (0 or 1), got ", v);
        value = static_cast<std::decay_t<decltype(value)>>(v);
      });
      next[g].check(name());
    }
    options_ = std::move(next);
  }

 private:
  Options defaults_;
  std::vector<Options> options_;  // per group
};

// Checks shared by the optimizers' Options::check(); each throws a kiln::Error that names
// the optimizer, the option and the value.
void check_non_negative(const std::string& optimizer, const char* option, double value);
void check_beta(const std::string& optimizer, const char* option, double value);  // in [0, 1)

}  // namespace kiln::nn::optim
