#include "kiln/nn/optim/optimizer.h"

#include <cmath>
#include <set>

#include "kiln/autograd/grad_mode.h"
#include "kiln/core/factory.h"

namespace kiln::nn::optim {

namespace {

std::string group_key(size_t group, const std::string& field) {
  return "group." + std::to_string(group) + "." + field;
}

std::string state_key(size_t index, const std::string& field) {
  return "state." + std::to_string(index) + "." + field;
}

Tensor f64_scalar(double value) { return scalar_tensor(value, {.dtype = f64}); }

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

// ---- grouping -----------------------------------------------------------------------------

std::vector<ParamGroup> weight_decay_groups(const Module& module) {
  ParamGroup decay, no_decay{.weight_decay = 0.0};
  for (const Tensor& p : module.parameters())
    if (p.requires_grad()) (p.dim() >= 2 ? decay : no_decay).params.push_back(p);
  return {decay, no_decay};
}

// ---- option checks ----------------------------------------------------------------------------

void check_non_negative(const std::string& optimizer, const char* option, double value) {
  KILN_CHECK(value >= 0, optimizer, ": invalid ", option, " ", value, " (must be >= 0)");
}

void check_beta(const std::string& optimizer, const char* option, double value) {
  KILN_CHECK(value >= 0 && value < 1, optimizer, ": invalid ", option, " ", value, " (must be in [0, 1))");
}

// ---- groups and options ---------------------------------------------------------------------

void Optimizer::check_new_param(const Tensor& p, size_t group, size_t index_in_group) const {
  const std::string where = name() + ": parameter " + std::to_string(index_in_group) + " of group " +
                            std::to_string(group);
  KILN_CHECK(p.defined(), where, " is undefined");
  KILN_CHECK(p.is_leaf(), where, " (", describe(p),
             ") is not a leaf tensor; optimizers update leaves (use detach().requires_grad_())");
  KILN_CHECK(p.dtype() == f32 || p.dtype() == f64, where, " is ", describe(p),
             "; only f32 and f64 parameters can be optimized");
}

void Optimizer::add_group_params(const std::vector<Tensor>& params, double lr) {
  const size_t group = groups_.size();
  std::set<const TensorImpl*> earlier_groups, this_group;
  for (const Tensor& p : parameters()) earlier_groups.insert(p.unsafe_impl());
  for (size_t i = 0; i < params.size(); ++i) {
    check_new_param(params[i], group, i);
    KILN_CHECK(!earlier_groups.count(params[i].unsafe_impl()), name(), ": parameter ", i, " of group ", group,
               " (", describe(params[i]), ") is already in a group");
    KILN_CHECK(this_group.insert(params[i].unsafe_impl()).second, name(), ": parameter ", i, " of group ", group,
               " appears twice in the group");
  }
  groups_.push_back(params);
  initial_lrs_.push_back(lr);
  states_.resize(states_.size() + params.size());
}

const std::vector<Tensor>& Optimizer::params(size_t group) const {
  KILN_CHECK(group < groups_.size(), name(), ": no parameter group ", group, " (it has ", groups_.size(), ")");
  return groups_[group];
}

std::vector<Tensor> Optimizer::parameters() const {
  std::vector<Tensor> out;
  for (const std::vector<Tensor>& g : groups_) out.insert(out.end(), g.begin(), g.end());
  return out;
}

void Optimizer::set_lr(double lr) {
  for (size_t g = 0; g < groups_.size(); ++g) set_lr(g, lr);
}

double Optimizer::initial_lr(size_t group) const {
  params(group);  // checks the index
  return initial_lrs_[group];
}

double Optimizer::option(size_t group, const std::string& option) const {
  params(group);
  std::vector<std::string> names;
  for (const auto& [n, value] : options_of(group)) {
    if (n == option) return value;
    names.push_back(n);
  }
  throw Error(detail::str(name(), ": no option '", option, "' (its options are ", join(names), ")"));
}

void Optimizer::set_option(size_t group, const std::string& option, double value) {
  this->option(group, option);  // checks the group and the name
  std::vector<OptionValues> all(groups_.size());
  for (size_t g = 0; g < groups_.size(); ++g)
    for (const auto& [n, v] : options_of(g)) all[g][n] = v;
  all[group][option] = value;
  replace_options(all);  // checks the new value
}

void Optimizer::zero_grad(bool set_to_none) {
  NoGradGuard no_grad;
  for (Tensor p : parameters()) {
    if (set_to_none) {
      p.zero_grad();
    } else if (Tensor g = p.grad(); g.defined()) {
      g.zero_();
    }
  }
}

// ---- the update loop ---------------------------------------------------------------------------

void Optimizer::check_update_inputs(size_t index, const Tensor& param, const Tensor& grad,
                                    const ParamState& state) const {
  // Runs for every parameter on every step: messages are only built on failure.
  KILN_CHECK(param.is_contiguous(), name(), ".step: parameter ", index, " (", describe(param),
             ") is not contiguous; the fused update needs contiguous parameters");
  KILN_CHECK(grad.device() == param.device(), name(), ".step: the gradient of parameter ", index, " is on ",
             grad.device().str(), " but the parameter is on ", param.device().str());
  KILN_CHECK(grad.dtype() == param.dtype() && grad.shape() == param.shape(), name(),
             ".step: the gradient of parameter ", index, " is ", describe(grad), " but the parameter is ",
             describe(param));
  for (const auto& [buffer, t] : state.buffers) {
    KILN_CHECK(t.dtype() == param.dtype() && t.shape() == param.shape(), name(), ".step: state '", buffer,
               "' of parameter ", index, " is ", describe(t), " but the parameter is ", describe(param),
               "; create the optimizer after converting the model (model.to(...))");
    KILN_CHECK(t.device() == param.device(), name(), ".step: state '", buffer, "' of parameter ", index, " is on ",
               t.device().str(), " but the parameter is on ", param.device().str(),
               "; create the optimizer after moving the model (model.to(...))");
  }
}

void Optimizer::for_each_update(const UpdateFn& update) {
  NoGradGuard no_grad;
  size_t index = 0;
  for (size_t g = 0; g < groups_.size(); ++g) {
    for (const Tensor& param : groups_[g]) {
      ParamState& state = states_[index];
      Tensor grad = param.grad();
      if (grad.defined()) {
        check_update_inputs(index, param, grad, state);
        if (!grad.is_contiguous()) grad = grad.contiguous();  // e.g. an expanded gradient
        ++state.step;
        update(g, param, grad, state);
        param.bump_version();
      }
      ++index;
    }
  }
}

// ---- state dict -----------------------------------------------------------------------------------

const ParamState& Optimizer::state(size_t index) const {
  KILN_CHECK(index < states_.size(), name(), ": no parameter ", index, " (it has ", states_.size(), ")");
  return states_[index];
}

StateDict Optimizer::state_dict() const {
  StateDict out;
  for (size_t g = 0; g < groups_.size(); ++g) {
    out.insert(group_key(g, "num_params"), f64_scalar(static_cast<double>(groups_[g].size())));
    out.insert(group_key(g, "initial_lr"), f64_scalar(initial_lrs_[g]));
    for (const auto& [option, value] : options_of(g)) out.insert(group_key(g, option), f64_scalar(value));
  }
  for (size_t i = 0; i < states_.size(); ++i) {
    if (states_[i].step == 0) continue;  // never updated: no state, as in PyTorch
    out.insert(state_key(i, "step"), f64_scalar(static_cast<double>(states_[i].step)));
    for (const auto& [buffer, t] : states_[i].buffers) out.insert(state_key(i, buffer), t);
  }
  return out;
}

void Optimizer::load_state_dict(const StateDict& dict) {
  const std::string op = name() + ".load_state_dict";
  // Every key read is marked, so whatever is left over can be reported as unexpected.
  std::set<std::string> used;
  auto take = [&](const std::string& key) {
    Tensor t = dict.find(key);
    if (t.defined()) used.insert(key);
    return t;
  };
  auto take_scalar = [&](const std::string& key) {
    const Tensor t = take(key);
    KILN_CHECK(t.defined(), op, ": missing key '", key, "' (was the state dict saved by another optimizer?)");
    KILN_CHECK(t.numel() == 1, op, ": '", key, "' should hold one value, got shape ", shape_str(t.shape()));
    return t.item<double>();
  };

  // Groups: the same count and sizes, then every option by name.
  size_t dict_groups = 0;
  while (dict.contains(group_key(dict_groups, "num_params"))) ++dict_groups;
  KILN_CHECK(dict_groups == groups_.size(), op, ": the state dict has ", dict_groups,
             " parameter group(s), this optimizer has ", groups_.size());
  std::vector<OptionValues> options(groups_.size());
  std::vector<double> initial_lrs;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const double count = take_scalar(group_key(g, "num_params"));
    KILN_CHECK(count == static_cast<double>(groups_[g].size()), op, ": parameter group ", g, " has ", count,
               " parameter(s) in the state dict, ", groups_[g].size(), " in this optimizer");
    initial_lrs.push_back(take_scalar(group_key(g, "initial_lr")));
    for (const auto& [option, value] : options_of(g)) options[g][option] = take_scalar(group_key(g, option));
  }

  // Per-parameter state: a step count and buffers shaped like the parameter, copied in.
  NoGradGuard no_grad;
  const std::vector<Tensor> params = parameters();
  std::vector<ParamState> states(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    if (!dict.contains(state_key(i, "step"))) continue;
    const double step = take_scalar(state_key(i, "step"));
    KILN_CHECK(step >= 1 && step == std::floor(step), op, ": '", state_key(i, "step"), "' should be a count >= 1, got ",
               step);
    states[i].step = static_cast<int64_t>(step);
    for (const BufferSpec& spec : state_buffers()) {
      const std::string key = state_key(i, spec.name);
      const Tensor saved = take(key);
      if (!saved.defined()) {
        KILN_CHECK(!spec.required, op, ": missing key '", key, "'");
        continue;
      }
      KILN_CHECK(saved.shape() == params[i].shape(), op, ": '", key, "' has shape ", shape_str(saved.shape()),
                 " but parameter ", i, " has shape ", shape_str(params[i].shape()));
      Tensor own = empty(params[i].shape(), {.dtype = params[i].dtype(), .device = params[i].device()});
      own.copy_(saved);  // a private copy in the parameter's dtype, on its device
      states[i].buffers[spec.name] = own;
    }
  }

  std::vector<std::string> unexpected;
  for (const auto& [key, t] : dict)
    if (!used.count(key)) unexpected.push_back(key);
  KILN_CHECK(unexpected.empty(), op, ": unexpected keys ", join(unexpected),
             " (was the state dict saved by another optimizer or for other parameters?)");

  replace_options(options);  // checks the values; throws before anything changed
  initial_lrs_ = std::move(initial_lrs);
  states_ = std::move(states);
}

}  // namespace kiln::nn::optim
