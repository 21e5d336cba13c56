#include "kiln/autograd/node.h"

#include <atomic>
#include <cmath>
#include <mutex>

#include "kiln/autograd/grad_mode.h"
#include "kiln/ops/elementwise.h"

namespace kiln::autograd {

namespace {

std::atomic<uint64_t> g_next_sequence_nr{0};

// Destroying a long graph must not recurse once per node (a 100k-op chain would overflow
// the stack). Dying nodes hand their children to a per-thread graveyard, and the
// outermost destructor empties it in a loop.
thread_local bool t_draining = false;
thread_local std::vector<std::shared_ptr<Node>> t_graveyard;

void bury(std::shared_ptr<Node>&& n) {
  if (n) t_graveyard.push_back(std::move(n));
}

void drain_graveyard() {
  if (t_draining) return;  // an outer destructor is already looping
  t_draining = true;
  while (!t_graveyard.empty()) {
    std::shared_ptr<Node> n = std::move(t_graveyard.back());
    t_graveyard.pop_back();
    n.reset();  // may bury more nodes; never recurses deeper than one level
  }
  t_draining = false;
}

// A tensor kept for backward, with the storage version it had when saved. The op's
// own output is kept as a history-free alias (holding it with its grad_fn would make
// a reference cycle node -> output -> node) and re-attached to the node on unpack.
struct SavedTensor {
  Tensor data;
  bool is_output = false;
  uint64_t version = 0;
};

class FunctionNode : public Node {
 public:
  FunctionNode(std::string name, BackwardFn fn) : Node(std::move(name)), fn_(std::move(fn)) {}
  ~FunctionNode() override {
    // Saved inputs can be the last owners of upstream nodes: detach those first.
    for (SavedTensor& s : saved_)
      if (s.data.defined() && s.data.impl_ptr().use_count() == 1) bury(std::move(s.data.unsafe_impl()->grad_fn));
  }

  Grads apply(const Tensor& grad_output) override {
    KILN_CHECK(!released_, "autograd: trying to backward through the graph of '", name(),
               "' a second time (its saved tensors were freed); pass retain_graph=true to the "
               "first backward() if you need to call it twice");
    std::vector<Tensor> unpacked;
    unpacked.reserve(saved_.size());
    for (const SavedTensor& s : saved_) {
      if (!s.data.defined()) {
        unpacked.emplace_back();
        continue;
      }
      KILN_CHECK(s.data.version() == s.version, "autograd: a tensor (", describe(s.data),
                 ") saved by '", name(), "' for backward was modified in place (version ",
                 s.data.version(), ", expected ", s.version,
                 "); clone() it before modifying, or modify it under NoGradGuard before the forward");
      if (s.is_output) {
        Tensor alias = make_tensor(s.data.storage(), s.data.shape(), s.data.strides(),
                                   s.data.offset(), s.data.dtype());
        alias.unsafe_impl()->requires_grad = true;
        alias.unsafe_impl()->grad_fn = shared_from_this();
        unpacked.push_back(std::move(alias));
      } else {
        unpacked.push_back(s.data);
      }
    }
    std::vector<bool> needs(next.size());
    for (size_t i = 0; i < next.size(); ++i) needs[i] = next[i] != nullptr;
    Grads grads = fn_(grad_output, Saved(std::move(unpacked), std::move(needs)));
    KILN_CHECK(grads.size() == next.size(), "autograd: backward of '", name(), "' returned ",
               grads.size(), " gradients for ", next.size(), " inputs");
    // A rule that forgets to un-broadcast would silently corrupt training: refuse it.
    for (size_t i = 0; i < grads.size(); ++i)
      KILN_CHECK(!next[i] || !grads[i].defined() || grads[i].shape() == input_shapes_[i],
                 "autograd: backward of '", name(), "' returned a gradient of shape ",
                 shape_str(grads[i].shape()), " for input ", i, " of shape ",
                 shape_str(input_shapes_[i]));
    return grads;
  }

  void release() override {
    saved_.clear();
    saved_.shrink_to_fit();
    fn_ = nullptr;  // lambdas may capture tensors too
    released_ = true;
  }

  std::vector<SavedTensor> saved_;
  std::vector<Shape> input_shapes_;

 private:
  BackwardFn fn_;
  bool released_ = false;
};

}  // namespace

Node::Node(std::string name) : name_(std::move(name)), sequence_nr_(g_next_sequence_nr++) {}

Node::~Node() {
  for (std::shared_ptr<Node>& n : next) bury(std::move(n));
  drain_graveyard();
}

AccumulateGrad::AccumulateGrad(const std::shared_ptr<TensorImpl>& leaf)
    : Node("AccumulateGrad"), leaf_(leaf) {}

Grads AccumulateGrad::apply(const Tensor& grad_output) {
  std::shared_ptr<TensorImpl> leaf = leaf_.lock();
  if (!leaf || !grad_output.defined()) return {};
  if (!leaf->grad) {
    if (GradMode::is_enabled()) {  // create_graph: keep the gradient's history
      leaf->grad = grad_output.impl_ptr();
    } else if (grad_output.impl_ptr().use_count() == 1 && grad_output.storage().use_count() == 1 &&
               !grad_output.grad_fn() && grad_output.is_contiguous()) {
      // Nobody else can see this buffer (the engine handed over its only reference):
      // adopt it instead of copying, which matters for large embeddings. Only when each
      // element has its own memory: sum's gradient is an expand (stride 0), whose one
      // element every later in-place write (accumulation, clipping) would hit n times.
      leaf->grad = grad_output.impl_ptr();
    } else {
      // The gradient may alias another tensor (e.g. a view of the seed) or itself (an
      // expand), and later accumulation writes into .grad in place: own a dense copy.
      leaf->grad = grad_output.detach().clone().impl_ptr();
    }
    return {};
  }
  Tensor g = GradMode::is_enabled() ? grad_output : grad_output.detach();
  if (GradMode::is_enabled()) {  // create_graph: keep the sum differentiable
    leaf->grad = (Tensor(leaf->grad) + g).impl_ptr();
  } else {
    Tensor(leaf->grad).add_(g);
  }
  return {};
}

namespace {
thread_local const Node* t_current_backward = nullptr;
}

BackwardScope::BackwardScope(const Node* node) : prev_(t_current_backward) { t_current_backward = node; }
BackwardScope::~BackwardScope() { t_current_backward = prev_; }
const Node* BackwardScope::current() { return t_current_backward; }

bool needs_grad(std::initializer_list<Tensor> inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

std::shared_ptr<Node> gradient_edge(const Tensor& t) {
  TensorImpl* impl = t.unsafe_impl();
  if (impl->grad_fn) return impl->grad_fn;
  // A leaf's accumulator is created on first use. Threads that share a model and record
  // graphs at once (inference with grad mode on) can make that first use together; a
  // race here gave each thread its own accumulator (one thread's gradient lost) and
  // corrupted the shared_ptr. An uncontended lock costs nothing next to an op.
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  if (!impl->grad_accumulator) impl->grad_accumulator = std::make_shared<AccumulateGrad>(t.impl_ptr());
  return impl->grad_accumulator;
}

namespace {

bool holds_non_finite(const Tensor& t) {
  if (!t.defined() || !is_floating(t.dtype())) return false;
  for (double v : t.to(Device::cpu()).to_vector<double>())
    if (!std::isfinite(v)) return true;
  return false;
}

// Anomaly mode's check of an op's output. The output can hold NaN/Inf because the op made
// it or because an input brought it in (a NaN parameter, data holding NaN, a tensor made
// before anomaly mode was on): the message says which, so that a NaN weight is not
// blamed on the first op that reads it (typically a view). Inputs are scanned only once
// the output has failed.
void check_output_finite(const char* op, const Tensor& out, const std::vector<Tensor>& inputs) {
  if (!holds_non_finite(out)) return;
  const Node* in_backward = BackwardScope::current();
  const std::string what = in_backward ? "the backward of '" + in_backward->name() + "' (in its '" + op + "')"
                                       : std::string("the forward of '") + op + "'";
  for (size_t i = 0; i < inputs.size(); ++i)
    KILN_CHECK(!holds_non_finite(inputs[i]), "anomaly detected: ", what, " produced NaN/Inf (", describe(out),
               "), which came in through its input ", i, " (", describe(inputs[i]),
               !in_backward && inputs[i].is_leaf() ? ", a leaf tensor such as a parameter or the data" : "", ")");
  throw Error(detail::str("anomaly detected: ", what, " produced NaN/Inf (", describe(out), ")"));
}

}  // namespace

void check_finite(const Tensor& t, const std::string& what) {
  KILN_CHECK(!holds_non_finite(t), "anomaly detected: ", what, " produced NaN/Inf (", describe(t), ")");
}

void record(const char* op, Tensor& out, const std::vector<Tensor>& inputs,
            const std::vector<Tensor>& saved, BackwardFn backward) {
  if (AnomalyMode::is_enabled()) check_output_finite(op, out, inputs);
  if (!needs_grad(inputs)) return;
  auto node = std::make_shared<FunctionNode>(op, std::move(backward));
  node->next.reserve(inputs.size());
  for (const Tensor& in : inputs) {
    const bool edge = in.defined() && in.requires_grad();
    node->next.push_back(edge ? gradient_edge(in) : nullptr);
    node->input_shapes_.push_back(edge ? in.shape() : Shape{});
  }
  node->saved_.reserve(saved.size());
  for (const Tensor& s : saved) {
    SavedTensor entry;
    if (s.defined()) {
      entry.is_output = s.is_same(out);
      entry.data = entry.is_output ? make_tensor(s.storage(), s.shape(), s.strides(), s.offset(), s.dtype())
                                   : s;
      entry.version = s.version();
    }
    node->saved_.push_back(std::move(entry));
  }
  out.unsafe_impl()->requires_grad = true;
  out.unsafe_impl()->grad_fn = std::move(node);
}

}  // namespace kiln::autograd
