// nn::Module: the base of every layer and model, in the spirit of PyTorch's C++
// frontend. A module owns named parameters (tensors trained by the optimizer),
// buffers (state that is saved but not trained) and child modules; everything that
// walks the model (parameters(), state_dict(), to(), train()) recurses through them.
//
//   struct Mlp : nn::Module {
//     std::shared_ptr<nn::Linear> fc1, fc2;
//     Mlp() {
//       fc1 = register_module("fc1", std::make_shared<nn::Linear>(784, 256));
//       fc2 = register_module("fc2", std::make_shared<nn::Linear>(256, 10));
//     }
//     Tensor forward(const Tensor& x) { return fc2->forward(relu(fc1->forward(x))); }
//   };
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kiln/core/tensor.h"

namespace kiln::nn {

// Name -> tensor in insertion order (the order parameters were registered).
class StateDict {
 public:
  void insert(const std::string& name, const Tensor& t);
  // The tensor for `name`, or an undefined tensor.
  Tensor find(const std::string& name) const;
  bool contains(const std::string& name) const { return find(name).defined(); }
  size_t size() const { return items_.size(); }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }

 private:
  std::vector<std::pair<std::string, Tensor>> items_;
  std::unordered_map<std::string, size_t> index_;  // name -> position in items_
};

class Module {
 public:
  virtual ~Module() = default;

  // ---- registration (call from the constructor) ------------------------------------
  // Registers a trainable tensor (a leaf; requires_grad is set unless told otherwise)
  // and returns the same handle, so a layer can keep it as a member.
  Tensor register_parameter(const std::string& name, Tensor t, bool requires_grad = true);
  // Registers saved, non-trained state (running statistics, masks, ...).
  Tensor register_buffer(const std::string& name, Tensor t);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }

  // ---- walking the tree -------------------------------------------------------------
  // Dotted names ("blocks.0.attn.qkv.weight"), depth first in registration order.
  std::vector<std::pair<std::string, Tensor>> named_parameters(bool recurse = true) const;
  std::vector<Tensor> parameters(bool recurse = true) const;
  std::vector<std::pair<std::string, Tensor>> named_buffers(bool recurse = true) const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const { return children_; }
  std::vector<std::shared_ptr<Module>> children() const;
  int64_t num_parameters() const;

  // ---- modes and placement ------------------------------------------------------------
  virtual void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  // Moves/converts every parameter and buffer in place: existing handles see the change.
  void to(Device device);
  void to(DType dtype);
  // Drops every parameter's .grad() (set to none, as PyTorch does by default).
  void zero_grad();

  // ---- state --------------------------------------------------------------------------
  // Parameters and buffers by dotted name. The tensors share storage with the module.
  StateDict state_dict() const;
  // Copies values in (converting dtype if needed). strict: every key must match,
  // missing/unexpected/mis-shaped keys are a kiln::Error listing them.
  void load_state_dict(const StateDict& state, bool strict = true);

  // ---- printing -----------------------------------------------------------------------
  // The class name shown in summaries (defaults to the demangled C++ type).
  virtual std::string type_name() const;
  // Layer settings shown after the name, e.g. "in_features=784, out_features=256".
  virtual std::string extra_repr() const { return ""; }
  // A PyTorch-style tree with parameter counts.
  std::string summary() const;

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> child);
  void check_new_name(const std::string& name) const;
  void summary_into(std::string& out, const std::string& name, int indent) const;
  void apply_to_tensors(const std::function<Tensor(const Tensor&)>& fn);

  std::vector<std::pair<std::string, Tensor>> parameters_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

}  // namespace kiln::nn
