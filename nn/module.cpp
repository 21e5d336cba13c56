#include "kiln/nn/module.h"

#include <cxxabi.h>

#include <cstdlib>
#include <sstream>
#include <typeinfo>

#include "kiln/autograd/grad_mode.h"

namespace kiln::nn {

// ---- StateDict -----------------------------------------------------------------------

void StateDict::insert(const std::string& name, const Tensor& t) {
  if (auto it = index_.find(name); it != index_.end()) {
    items_[it->second].second = t;
    return;
  }
  index_.emplace(name, items_.size());
  items_.emplace_back(name, t);
}

Tensor StateDict::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? Tensor() : items_[it->second].second;
}

// ---- registration ---------------------------------------------------------------------

void Module::check_new_name(const std::string& name) const {
  KILN_CHECK(!name.empty() && name.find('.') == std::string::npos, type_name(), ": invalid name '", name,
             "' (names must be non-empty and contain no '.')");
  auto taken = [&](const auto& list) {
    for (const auto& entry : list)
      if (entry.first == name) return true;
    return false;
  };
  KILN_CHECK(!taken(parameters_) && !taken(buffers_) && !taken(children_), type_name(), ": name '", name,
             "' is already registered");
}

Tensor Module::register_parameter(const std::string& name, Tensor t, bool requires_grad) {
  check_new_name(name);
  KILN_CHECK(t.defined(), type_name(), ": parameter '", name, "' is undefined");
  KILN_CHECK(t.is_leaf(), type_name(), ": parameter '", name, "' must be a leaf tensor (detach() it first)");
  if (requires_grad) t.requires_grad_(true);
  parameters_.emplace_back(name, t);
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t) {
  check_new_name(name);
  KILN_CHECK(t.defined(), type_name(), ": buffer '", name, "' is undefined");
  buffers_.emplace_back(name, t);
  return t;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> child) {
  check_new_name(name);
  KILN_CHECK(child != nullptr, type_name(), ": child module '", name, "' is null");
  children_.emplace_back(name, std::move(child));
}

// ---- walking -----------------------------------------------------------------------------

std::vector<std::pair<std::string, Tensor>> Module::named_parameters(bool recurse) const {
  std::vector<std::pair<std::string, Tensor>> out = parameters_;
  if (recurse)
    for (const auto& [name, child] : children_)
      for (auto& [n, t] : child->named_parameters(true)) out.emplace_back(name + "." + n, t);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers(bool recurse) const {
  std::vector<std::pair<std::string, Tensor>> out = buffers_;
  if (recurse)
    for (const auto& [name, child] : children_)
      for (auto& [n, t] : child->named_buffers(true)) out.emplace_back(name + "." + n, t);
  return out;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters(recurse)) out.push_back(t);
  return out;
}

std::vector<std::shared_ptr<Module>> Module::children() const {
  std::vector<std::shared_ptr<Module>> out;
  for (const auto& [name, child] : children_) out.push_back(child);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const Tensor& p : parameters()) n += p.numel();
  return n;
}

// ---- modes and placement -------------------------------------------------------------------

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::apply_to_tensors(const std::function<Tensor(const Tensor&)>& fn) {
  NoGradGuard no_grad;
  for (auto& [name, p] : parameters_) {
    p.set_data(fn(p));
    if (p.grad().defined()) p.grad().set_data(fn(p.grad()));
  }
  for (auto& [name, b] : buffers_) b.set_data(fn(b));
  for (auto& [name, child] : children_) child->apply_to_tensors(fn);
}

void Module::to(Device device) {
  apply_to_tensors([&](const Tensor& t) { return t.to(device); });
}

void Module::to(DType dtype) {
  // Only floating tensors change dtype: integer buffers (indices, counters) stay.
  apply_to_tensors([&](const Tensor& t) { return is_floating(t.dtype()) ? t.to(dtype) : t; });
}

void Module::zero_grad() {
  for (Tensor& p : parameters()) p.zero_grad();
}

// ---- state ------------------------------------------------------------------------------------

StateDict Module::state_dict() const {
  StateDict out;
  for (auto& [name, t] : named_parameters()) out.insert(name, t);
  for (auto& [name, t] : named_buffers()) out.insert(name, t);
  return out;
}

void Module::load_state_dict(const StateDict& state, bool strict) {
  const StateDict own = state_dict();
  std::vector<std::string> missing, unexpected, mismatched;
  for (const auto& [name, t] : own)
    if (!state.contains(name)) missing.push_back(name);
  for (const auto& [name, t] : state) {
    const Tensor mine = own.find(name);
    if (!mine.defined()) unexpected.push_back(name);
    else if (mine.shape() != t.shape())
      mismatched.push_back(name + " (checkpoint " + shape_str(t.shape()) + ", model " + shape_str(mine.shape()) + ")");
  }
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
  };
  KILN_CHECK(mismatched.empty(), "load_state_dict: shape mismatch for ", join(mismatched));
  KILN_CHECK(!strict || (missing.empty() && unexpected.empty()), "load_state_dict: ",
             missing.empty() ? "" : "missing keys: " + join(missing),
             missing.empty() || unexpected.empty() ? "" : "; ",
             unexpected.empty() ? "" : "unexpected keys: " + join(unexpected));
  NoGradGuard no_grad;
  for (const auto& [name, mine] : own) {
    Tensor dst = mine;  // a handle to the module's own tensor
    if (Tensor src = state.find(name); src.defined()) dst.copy_(src.to(dst.device()));
  }
}

// ---- printing -----------------------------------------------------------------------------------

std::string Module::type_name() const {
  int status = 0;
  char* demangled = abi::__cxa_demangle(typeid(*this).name(), nullptr, nullptr, &status);
  std::string name = status == 0 && demangled ? demangled : typeid(*this).name();
  std::free(demangled);
  if (auto pos = name.rfind("::"); pos != std::string::npos) name = name.substr(pos + 2);
  return name;
}

void Module::summary_into(std::string& out, const std::string& name, int indent) const {
  const std::string pad(static_cast<size_t>(indent), ' ');
  const std::string head = pad + (name.empty() ? "" : "(" + name + "): ") + type_name() + "(";
  int64_t own = 0;
  for (const auto& [n, p] : parameters_) own += p.numel();
  if (children_.empty()) {
    out += head + extra_repr() + ")" + (own ? "  # " + std::to_string(own) + " params" : std::string()) + "\n";
    return;
  }
  // With children, settings go on their own line inside the parentheses, as PyTorch prints.
  out += head + "\n";
  if (!extra_repr().empty()) out += pad + "  " + extra_repr() + "\n";
  for (const auto& [n, child] : children_) child->summary_into(out, n, indent + 2);
  out += pad + ")\n";
}

std::string Module::summary() const {
  std::string out;
  summary_into(out, "", 0);
  int64_t trainable = 0;
  for (const Tensor& p : parameters())
    if (p.requires_grad()) trainable += p.numel();
  out += "Total params: " + std::to_string(num_parameters()) + " (trainable: " + std::to_string(trainable) + ")\n";
  return out;
}

}  // namespace kiln::nn
