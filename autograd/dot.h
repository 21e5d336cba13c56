// to_dot: the autograd graph behind a tensor as Graphviz DOT text
// (render with `dot -Tsvg graph.dot -o graph.svg`).
#pragma once

#include <string>

#include "kiln/core/tensor.h"

namespace kiln {

std::string to_dot(const Tensor& root);

}  // namespace kiln
