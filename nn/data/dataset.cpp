#include "kiln/nn/data/dataset.h"

#include <string>

#include "kiln/core/factory.h"
#include "kiln/ops/index.h"
#include "kiln/ops/shape.h"

namespace kiln::nn::data {

namespace {

// Every example's `field` ("input" or "target") has the shape and dtype of example 0's.
void check_same_geometry(const std::vector<Example>& examples, Tensor Example::*field, const char* name) {
  const Tensor& first = examples[0].*field;
  for (size_t i = 1; i < examples.size(); ++i) {
    const Tensor& t = examples[i].*field;
    KILN_CHECK(t.defined() == first.defined(), "collate: example ", i, (t.defined() ? " has" : " has no"), " ", name,
               " but example 0", (first.defined() ? " has one" : " has none"));
    if (!t.defined()) continue;
    KILN_CHECK(t.shape() == first.shape() && t.dtype() == first.dtype(), "collate: example ", i, " ", name, " is ",
               describe(t), " but example 0 ", name, " is ", describe(first),
               "; examples in one batch must have the same shape and dtype");
  }
}

// The `field` of every example, stacked along a new dim 0 (undefined when they have none).
Tensor stack_field(const std::vector<Example>& examples, Tensor Example::*field) {
  if (!(examples[0].*field).defined()) return {};
  std::vector<Tensor> parts;
  parts.reserve(examples.size());
  for (const Example& e : examples) parts.push_back(e.*field);
  return stack(parts, 0);
}

}  // namespace

Batch collate(const std::vector<Example>& examples) {
  KILN_CHECK(!examples.empty(), "collate: expected at least one example");
  KILN_CHECK(examples[0].input.defined(), "collate: example 0 has no input");
  check_same_geometry(examples, &Example::input, "input");
  check_same_geometry(examples, &Example::target, "target");
  return {stack_field(examples, &Example::input), stack_field(examples, &Example::target)};
}

Batch Dataset::get_batch(const std::vector<int64_t>& indices) const {
  std::vector<Example> examples;
  examples.reserve(indices.size());
  for (int64_t i : indices) examples.push_back(get(i));
  return collate(examples);
}

// ---- TensorDataset ----------------------------------------------------------------------

TensorDataset::TensorDataset(Tensor inputs, Tensor targets) : inputs_(std::move(inputs)), targets_(std::move(targets)) {
  KILN_CHECK(inputs_.defined(), "TensorDataset: inputs are undefined");
  KILN_CHECK(inputs_.dim() >= 1, "TensorDataset: inputs must have a dim to index (dim 0), got ", describe(inputs_));
  if (!targets_.defined()) return;
  KILN_CHECK(targets_.dim() >= 1 && targets_.size(0) == inputs_.size(0), "TensorDataset: inputs ", describe(inputs_),
             " and targets ", describe(targets_), " must have the same size in dim 0");
}

void TensorDataset::check_index(int64_t index) const {
  KILN_CHECK(index >= 0 && index < size(), "TensorDataset: index ", index, " is out of range for a dataset of size ",
             size());
}

Example TensorDataset::get(int64_t index) const {
  check_index(index);
  return {inputs_.select(0, index), targets_.defined() ? targets_.select(0, index) : Tensor()};
}

// One index_select per tensor instead of B selects and a stack.
Batch TensorDataset::get_batch(const std::vector<int64_t>& indices) const {
  KILN_CHECK(!indices.empty(), "TensorDataset: get_batch needs at least one index");
  for (int64_t i : indices) check_index(i);
  const Tensor rows = from_vector(indices);  // on the CPU; each tensor gets it on its own device
  return {index_select(inputs_, 0, rows.to(inputs_.device())),
          targets_.defined() ? index_select(targets_, 0, rows.to(targets_.device())) : Tensor()};
}

}  // namespace kiln::nn::data
