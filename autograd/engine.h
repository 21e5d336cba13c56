// The backward engine: runs the recorded graph from outputs to leaves.
#pragma once

#include <vector>

#include "kiln/core/tensor.h"

namespace kiln {

struct GradOptions {
  bool retain_graph = false;  // keep saved tensors so backward can run again
  bool create_graph = false;  // record the backward itself (for higher-order gradients)
  bool allow_unused = false;  // grad(): an input the outputs do not depend on gets an undefined tensor
  std::vector<Tensor> grad_outputs = {};  // seeds; default 1 for scalar outputs
};

// Accumulates d(sum of outputs · grad_outputs)/d(leaf) into every leaf's .grad().
void backward(const std::vector<Tensor>& outputs, const GradOptions& opts = {});

// Returns d(outputs)/d(inputs) without touching any .grad().
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const GradOptions& opts = {});

}  // namespace kiln
