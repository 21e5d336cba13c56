// Map-style datasets, as in PyTorch: a Dataset has a size and returns the example at an
// index; collate() stacks examples into a batch. The DataLoader asks for whole batches
// through get_batch(), which a dataset may override to gather a batch in one go.
//
//   auto ds = std::make_shared<TensorDataset>(images, labels);  // indexes dim 0
//   Example e = ds->get(3);                  // e.input = images[3], e.target = labels[3]
//   Batch b = ds->get_batch({0, 5, 2});      // b.input = images[[0, 5, 2]]
#pragma once

#include <cstdint>
#include <vector>

#include "kiln/core/tensor.h"

namespace kiln::nn::data {

// One example: an input and its target. The target is undefined for unlabelled data.
struct Example {
  Tensor input;
  Tensor target;
};

// A batch has the same two fields, with a leading batch dim: input (B, ...), target (B, ...).
// Structured bindings work on both: `for (auto& [x, y] : loader)`.
using Batch = Example;

// Stacks the examples' inputs (and targets) along a new dim 0. Every input must have the
// shape and dtype of the first, likewise every target; either all targets are defined or
// none is (then the batch's target is undefined too).
Batch collate(const std::vector<Example>& examples);

// The interface. A DataLoader with prefetch calls get()/get_batch() from its background
// thread while the caller's thread trains, so a dataset must not share unsynchronised
// mutable state with the training code (drawing from kiln's global generator, for
// example, would make a run depend on thread timing). Datasets that only read their data,
// like every one in nn/data/, are fine.
class Dataset {
 public:
  virtual ~Dataset() = default;

  virtual int64_t size() const = 0;
  // The example at `index`, 0 <= index < size().
  virtual Example get(int64_t index) const = 0;
  // The examples at `indices`, collated. The default calls get() for each index and
  // collate(); datasets that can gather a batch directly override it.
  virtual Batch get_batch(const std::vector<int64_t>& indices) const;
};

// Examples are slices along dim 0 of `inputs` and of `targets` (which must have as many
// rows as inputs; pass an undefined tensor for no targets). No copy is made at
// construction; get() returns views, get_batch() gathers the rows into fresh tensors.
class TensorDataset : public Dataset {
 public:
  explicit TensorDataset(Tensor inputs, Tensor targets = {});

  int64_t size() const override { return inputs_.size(0); }
  Example get(int64_t index) const override;
  Batch get_batch(const std::vector<int64_t>& indices) const override;

  const Tensor& inputs() const { return inputs_; }
  const Tensor& targets() const { return targets_; }

 private:
  void check_index(int64_t index) const;

  Tensor inputs_, targets_;
};

}  // namespace kiln::nn::data
