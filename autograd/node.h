// The autograd graph. Every differentiable op that runs with grad mode on records one
// Node for its (single) output. A Node knows the nodes of its inputs (`next`) and how
// to turn the gradient of its output into gradients of its inputs (`apply`).
//
// Ops record nodes with autograd::record(), which keeps the forward and the backward
// of an op side by side:
//
//   Tensor mul(const Tensor& a, const Tensor& b) {
//     Tensor out = ...forward kernel...;
//     autograd::record("mul", out, {a, b}, /*saved=*/{a, b},
//         [](const Tensor& grad, const autograd::Saved& s) -> autograd::Grads {
//           return {grad * s[1], grad * s[0]};   // one entry per input
//         });
//     return out;
//   }
//
// Backward rules are written with Tensor ops, so they run on every backend and, when
// backward runs with create_graph, are themselves recorded (double backward).
#pragma once

#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "kiln/core/tensor.h"

namespace kiln::autograd {

using Grads = std::vector<Tensor>;

class Node : public std::enable_shared_from_this<Node> {
 public:
  explicit Node(std::string name);
  virtual ~Node();  // iterative: see node.cpp

  // Gradients w.r.t. each input, given the gradient of the output. An undefined entry
  // means "no gradient" (the input does not need one, or it is zero).
  virtual Grads apply(const Tensor& grad_output) = 0;
  // Frees saved tensors after backward (unless retain_graph); apply() then throws.
  virtual void release() {}

  const std::string& name() const { return name_; }
  uint64_t sequence_nr() const { return sequence_nr_; }

  // One entry per input of the forward op; null where that input needs no gradient.
  std::vector<std::shared_ptr<Node>> next;
  // Run on the incoming gradient before apply() (from Tensor::register_hook on a non-leaf).
  std::vector<TensorHook> pre_hooks;
  // Run after pre_hooks with the final gradient (Tensor::retain_grad), as PyTorch does.
  std::vector<TensorHook> retain_grad_hooks;

 private:
  std::string name_;
  uint64_t sequence_nr_;  // creation order: the engine runs later nodes first
};

// The sink at a leaf tensor: adds the incoming gradient into leaf.grad().
class AccumulateGrad : public Node {
 public:
  explicit AccumulateGrad(const std::shared_ptr<TensorImpl>& leaf);
  Grads apply(const Tensor& grad_output) override;
  std::shared_ptr<TensorImpl> leaf() const { return leaf_.lock(); }

 private:
  std::weak_ptr<TensorImpl> leaf_;  // weak: the graph must not keep parameters alive
};

// Tensors a backward rule needs, unpacked and checked against in-place modification.
class Saved {
 public:
  Saved(std::vector<Tensor> tensors, std::vector<bool> needs_grad)
      : tensors_(std::move(tensors)), needs_grad_(std::move(needs_grad)) {}
  const Tensor& operator[](size_t i) const { return tensors_.at(i); }
  // Whether input i needs a gradient: rules may skip work for inputs that do not.
  bool needs_grad(size_t input) const { return needs_grad_.at(input); }

 private:
  std::vector<Tensor> tensors_;
  std::vector<bool> needs_grad_;
};

using BackwardFn = std::function<Grads(const Tensor& grad_output, const Saved& saved)>;

// True when grad mode is on and any of `inputs` requires grad: an op records a node
// exactly then. Use it to skip preparing backward-only data.
bool needs_grad(std::initializer_list<Tensor> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);

// Records the node of `out` (see the file comment). `saved` may include `out` itself.
// Does nothing when needs_grad(inputs) is false. In anomaly mode, first checks `out`
// for NaN/Inf and throws naming `op`.
void record(const char* op, Tensor& out, const std::vector<Tensor>& inputs,
            const std::vector<Tensor>& saved, BackwardFn backward);

// The node whose gradient flows into `t`: its grad_fn, or its leaf accumulator.
std::shared_ptr<Node> gradient_edge(const Tensor& t);

// Marks the node whose backward is running in this thread, so anomaly mode can say
// which backward an op belongs to.
class BackwardScope {
 public:
  explicit BackwardScope(const Node* node);
  ~BackwardScope();
  static const Node* current();

 private:
  const Node* prev_;
};

// Throws "<where>: '<op>' produced NaN/Inf" if `t` holds a non-finite value.
void check_finite(const Tensor& t, const std::string& what);

}  // namespace kiln::autograd
