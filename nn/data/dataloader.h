// DataLoader: batches a Dataset, optionally shuffled, optionally prepared ahead of time by
// one background thread, and resumable at any batch.
//
//   DataLoader loader(dataset, {.batch_size = 64, .shuffle = true, .seed = 1, .prefetch = 2});
//   for (int epoch = 0; epoch < 10; ++epoch)
//     for (const Batch& b : loader) train_step(b.input, b.target);
//
// Position. The loader remembers where it is as (epoch, batch): the next batch it will hand
// out. Iterating hands out the rest of the current epoch; once its last batch is handed
// out, the position moves to (epoch + 1, 0), so the loop above sees each epoch in turn.
// Leaving a loop early (break) keeps the position: the next loop continues from there.
// state() / load_state() save and restore the position, so training resumes exactly at
// the batch after the last one it trained on.
//
// Order. With shuffle, epoch e visits the indices in shuffled_indices(size, seed, e): a
// permutation that depends only on (seed, e) (Philox; the global generator is neither
// used nor advanced), so runs, restarts and prefetch settings all see the same batches.
// Without shuffle, the order is 0, 1, 2, ...
//
// Prefetch. With prefetch = k > 0, one background thread builds up to k batches ahead of
// the consumer (calling dataset.get_batch() there; see the thread-safety note in
// dataset.h). An exception thrown while building a batch reaches the consumer when it
// asks for that batch, as if the batch had been built in its own thread. The default, 0,
// builds each batch when asked, in the caller's thread, as PyTorch's num_workers = 0.
// Batches are built with grad mode off: they are plain data, never part of a graph.
#pragma once

#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <vector>

#include "kiln/nn/data/dataset.h"

namespace kiln::nn::data {

struct DataLoaderOptions {
  int64_t batch_size = 1;
  bool shuffle = false;
  bool drop_last = false;  // drop the last batch of an epoch when it is smaller than batch_size
  uint64_t seed = 0;       // for the shuffle order
  int64_t prefetch = 0;    // batches built ahead by a background thread; 0 = none
};

// The position of the next batch to hand out. Normalised: batch < batches per epoch.
struct DataLoaderState {
  int64_t epoch = 0;
  int64_t batch = 0;
  bool operator==(const DataLoaderState&) const = default;
};

// A permutation of [0, n) that depends only on (seed, epoch): Fisher-Yates driven by a
// Philox stream keyed by a hash of (seed, epoch).
std::vector<int64_t> shuffled_indices(int64_t n, uint64_t seed, int64_t epoch);

class DataLoader {
 public:
  DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options = {});
  ~DataLoader();  // stops the background thread (mid-epoch too) and joins it
  DataLoader(DataLoader&&) noexcept;
  DataLoader& operator=(DataLoader&&) noexcept;

  // An input iterator over the batches left in the current epoch. Starting a new iteration
  // (begin()), set_epoch() or load_state() ends any earlier one; its iterators are then void.
  class Iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Batch;
    using difference_type = std::ptrdiff_t;

    const Batch& operator*() const { return *current_; }
    const Batch* operator->() const { return &*current_; }
    Iterator& operator++();
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const { return !current_.has_value(); }

   private:
    friend class DataLoader;
    explicit Iterator(DataLoader* loader);
    DataLoader* loader_;
    std::optional<Batch> current_;
  };

  Iterator begin();
  std::default_sentinel_t end() const { return {}; }

  // Batches per epoch (the last one may be smaller unless drop_last).
  int64_t size() const;
  const Dataset& dataset() const { return *dataset_; }
  const DataLoaderOptions& options() const { return options_; }

  int64_t epoch() const { return position_.epoch; }
  // Moves to the start of epoch `epoch` (as PyTorch's DistributedSampler.set_epoch).
  void set_epoch(int64_t epoch);
  DataLoaderState state() const { return position_; }
  // Resumes at `state`. A batch index equal to size() means "the epoch is done" and is
  // normalised to the start of the next epoch; a larger one is an error.
  void load_state(DataLoaderState state);

 private:
  std::optional<Batch> next_batch();  // nullopt once the current run has no batch left
  void start_run();                   // begins handing out the batches left in this epoch
  void stop_run();

  std::shared_ptr<const Dataset> dataset_;
  DataLoaderOptions options_;
  DataLoaderState position_;

  // The current run: this epoch's order and, with prefetch, the thread filling it.
  struct Run;
  std::unique_ptr<Run> run_;
};

}  // namespace kiln::nn::data
