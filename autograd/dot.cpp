#include "kiln/autograd/dot.h"

#include <sstream>
#include <unordered_map>
#include <vector>

#include "kiln/autograd/node.h"

namespace kiln {

std::string to_dot(const Tensor& root) {
  std::ostringstream os;
  os << "digraph autograd {\n  rankdir=BT;\n  node [fontname=\"Helvetica\", fontsize=10];\n";
  os << "  output [shape=box, style=filled, fillcolor=\"#cde4ff\", label=\"output " << describe(root) << "\"];\n";
  if (!root.defined() || !root.requires_grad()) return os.str() + "}\n";

  std::unordered_map<const autograd::Node*, int> ids;
  std::vector<const autograd::Node*> stack;
  auto id_of = [&](const autograd::Node* n) {
    auto [it, inserted] = ids.emplace(n, static_cast<int>(ids.size()));
    if (inserted) stack.push_back(n);
    return it->second;
  };
  const std::shared_ptr<autograd::Node> first = root.is_leaf() ? nullptr : root.grad_fn();
  if (!first) return os.str() + "}\n";  // a leaf: nothing recorded
  os << "  n" << id_of(first.get()) << " -> output;\n";
  while (!stack.empty()) {  // iterative: deep graphs must not overflow the stack
    const autograd::Node* n = stack.back();
    stack.pop_back();
    const int id = ids[n];
    if (auto* acc = dynamic_cast<const autograd::AccumulateGrad*>(n)) {
      auto leaf = acc->leaf();
      os << "  n" << id << " [shape=box, style=filled, fillcolor=\"#d7f5d0\", label=\"leaf "
         << (leaf ? describe(Tensor(leaf)) : "(freed)") << "\"];\n";
    } else {
      os << "  n" << id << " [shape=ellipse, label=\"" << n->name() << "\"];\n";
    }
    for (const auto& next : n->next)
      if (next) os << "  n" << id_of(next.get()) << " -> n" << id << ";\n";
  }
  os << "}\n";
  return os.str();
}

}  // namespace kiln
