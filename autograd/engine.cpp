#include "kiln/autograd/engine.h"

#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"
#include "kiln/core/factory.h"
#include "kiln/core/profiler.h"
#include "kiln/ops/elementwise.h"

namespace kiln {

namespace {

using autograd::Node;
using NodePtr = std::shared_ptr<Node>;

// A node reached along several edges gets the sum of their gradients.
Tensor sum_incoming(const Tensor& so_far, const Tensor& more) {
  profiler::Scope profile("(sum of incoming grads)", profiler::Pass::backward);
  return so_far + more;
}

struct LaterFirst {  // max-heap on creation order: a node runs after all nodes created after it
  bool operator()(const NodePtr& a, const NodePtr& b) const { return a->sequence_nr() < b->sequence_nr(); }
};

// Seeds: one gradient per output (ones for scalars when not given).
std::vector<Tensor> make_seeds(const std::vector<Tensor>& outputs, const GradOptions& opts,
                               const char* api) {
  KILN_CHECK(opts.grad_outputs.empty() || opts.grad_outputs.size() == outputs.size(), api, ": got ",
             opts.grad_outputs.size(), " grad_outputs for ", outputs.size(), " outputs");
  std::vector<Tensor> seeds;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Tensor& out = outputs[i];
    KILN_CHECK(out.defined(), api, ": output ", i, " is undefined");
    KILN_CHECK(out.requires_grad(), api, ": output ", i, " (", describe(out),
               ") does not require grad and has no grad_fn; did you run the forward under "
               "NoGradGuard or forget requires_grad_()?");
    if (!opts.grad_outputs.empty() && opts.grad_outputs[i].defined()) {
      const Tensor& g = opts.grad_outputs[i];
      KILN_CHECK(g.shape() == out.shape(), api, ": grad_output ", i, " has shape ", shape_str(g.shape()),
                 " but the output has shape ", shape_str(out.shape()));
      KILN_CHECK(g.dtype() == out.dtype() && g.device() == out.device(), api, ": grad_output ", i, " is ",
                 describe(g), " but the output is ", describe(out), "; the gradient must match its dtype and device");
      seeds.push_back(opts.grad_outputs[i]);
    } else {
      KILN_CHECK(out.numel() == 1, api, ": a gradient can be implied only for scalar outputs; output ",
                 i, " has shape ", shape_str(out.shape()), ", pass grad_outputs");
      seeds.push_back(ones_like(out));
    }
  }
  return seeds;
}

// Runs the graph. `captures` are nodes whose incoming gradient is returned (grad());
// when `accumulate` is false, leaves' .grad() is left untouched.
std::vector<Tensor> run(const std::vector<Tensor>& outputs, const std::vector<Tensor>& seeds,
                        const GradOptions& opts, const std::vector<NodePtr>& captures, bool accumulate) {
  // 1. Discover the graph (iteratively: a 100k-op chain must not overflow the stack)
  //    and count, for every node, how many edges point into it.
  std::unordered_map<Node*, int> dependencies;
  std::vector<NodePtr> nodes;  // keeps everything alive until the end
  std::vector<Node*> stack;
  std::unordered_set<Node*> seen;
  std::unordered_map<Node*, Tensor> buffers;
  for (size_t i = 0; i < outputs.size(); ++i) {
    NodePtr root = autograd::gradient_edge(outputs[i]);
    Tensor& buf = buffers[root.get()];
    buf = buf.defined() ? buf + seeds[i] : seeds[i];
    if (seen.insert(root.get()).second) {
      nodes.push_back(root);
      stack.push_back(root.get());
    }
  }
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const NodePtr& next : n->next) {
      if (!next) continue;
      ++dependencies[next.get()];
      if (seen.insert(next.get()).second) {
        nodes.push_back(next);
        stack.push_back(next.get());
      }
    }
  }

  std::unordered_map<Node*, size_t> capture_index;
  for (size_t i = 0; i < captures.size(); ++i)
    if (captures[i]) capture_index[captures[i].get()] = i;
  std::vector<Tensor> captured(captures.size());

  // 2. Run nodes in dependency order (Kahn); ties go to the most recently created node.
  std::priority_queue<NodePtr, std::vector<NodePtr>, LaterFirst> ready;
  for (const NodePtr& n : nodes)
    if (dependencies[n.get()] == 0) ready.push(n);

  GradModeGuard grad_mode(opts.create_graph);
  while (!ready.empty()) {
    NodePtr node = ready.top();
    ready.pop();
    Tensor grad;
    if (auto it = buffers.find(node.get()); it != buffers.end()) {
      grad = std::move(it->second);
      buffers.erase(it);
    }
    autograd::Grads input_grads;
    if (grad.defined()) {
      for (const TensorHook& hook : node->pre_hooks)
        if (Tensor replaced = hook(grad); replaced.defined()) {
          KILN_CHECK(replaced.shape() == grad.shape() && replaced.dtype() == grad.dtype() &&
                         replaced.device() == grad.device(),
                     "a gradient hook on the output of '", node->name(), "' returned ", describe(replaced),
                     " in place of ", describe(grad), "; a replacement must keep the shape, dtype and device");
          grad = replaced;
        }
      for (const TensorHook& hook : node->retain_grad_hooks) hook(grad);  // see the final gradient
      if (auto c = capture_index.find(node.get()); c != capture_index.end()) captured[c->second] = grad;
      const bool is_leaf_sink = dynamic_cast<autograd::AccumulateGrad*>(node.get()) != nullptr;
      if (!is_leaf_sink || accumulate) {
        autograd::BackwardScope scope(node.get());
        profiler::Scope profile(node->name(), profiler::Pass::backward);
        input_grads = node->apply(grad);
        if (profiler::enabled()) profile.add_bytes(profiler::bytes_of(input_grads));
      }
      if (AnomalyMode::is_enabled())
        for (size_t i = 0; i < input_grads.size(); ++i)
          autograd::check_finite(input_grads[i], "the backward of '" + node->name() + "' (gradient for input " +
                                                     std::to_string(i) + ")");
    }
    for (size_t i = 0; i < node->next.size(); ++i) {
      Node* next = node->next[i].get();
      if (!next) continue;
      if (i < input_grads.size() && input_grads[i].defined()) {
        Tensor& buf = buffers[next];
        buf = buf.defined() ? sum_incoming(buf, input_grads[i]) : input_grads[i];
      }
      if (--dependencies[next] == 0) ready.push(node->next[i]);
    }
  }

  // 3. Free saved tensors: the graph cannot be run again unless retained. A graph built
  //    with create_graph refers back to these saved tensors, so it retains them too.
  if (!opts.retain_graph && !opts.create_graph)
    for (const NodePtr& n : nodes) n->release();
  return captured;
}

}  // namespace

void backward(const std::vector<Tensor>& outputs, const GradOptions& opts) {
  run(outputs, make_seeds(outputs, opts, "backward"), opts, {}, /*accumulate=*/true);
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const GradOptions& opts) {
  std::vector<NodePtr> captures;
  for (size_t i = 0; i < inputs.size(); ++i) {
    KILN_CHECK(inputs[i].defined() && inputs[i].requires_grad(), "grad: input ", i,
               " does not require grad");
    captures.push_back(autograd::gradient_edge(inputs[i]));
  }
  std::vector<Tensor> result = run(outputs, make_seeds(outputs, opts, "grad"), opts, captures,
                                   /*accumulate=*/false);
  for (size_t i = 0; i < result.size(); ++i)
    KILN_CHECK(result[i].defined() || opts.allow_unused, "grad: input ", i, " (", describe(inputs[i]),
               ") was not used to compute the outputs; pass allow_unused=true to get an undefined "
               "gradient instead");
  return result;
}

}  // namespace kiln
