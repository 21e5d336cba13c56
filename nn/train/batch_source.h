// BatchSource: where the Trainer gets its training batches, and how it resumes there.
//
// A checkpoint stores one integer for the data, the source's position(); resuming calls
// set_position() with it, and the next batch must then be the one that would have come
// next in the uninterrupted run. The two sources kiln has come with adapters:
//
//   DataLoaderSource    position = batches handed out since epoch 0 began
//                       (epoch * batches_per_epoch + batch); epochs roll over by themselves
//   RandomWindowsSource position = RandomWindows::step()
//
// Trainer::fit() accepts a DataLoader or RandomWindows directly and wraps it; write a
// BatchSource of your own for anything else (a stream, several datasets mixed, ...).
#pragma once

#include <cstdint>
#include <optional>

#include "kiln/nn/data/corpus.h"
#include "kiln/nn/data/dataloader.h"

namespace kiln::nn {

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  // The next training batch; sources used by the Trainer never run out.
  virtual data::Batch next() = 0;
  // How far the source has moved, as one number a checkpoint can keep.
  virtual int64_t position() const = 0;
  // Moves to `position` (a value position() returned, possibly in another process).
  virtual void set_position(int64_t position) = 0;
};

// Batches of a DataLoader, epoch after epoch. The loader keeps its own position, so
// training can also go on with a plain `for (auto& b : loader)` loop afterwards.
class DataLoaderSource : public BatchSource {
 public:
  explicit DataLoaderSource(data::DataLoader& loader) : loader_(loader) {}

  data::Batch next() override;
  int64_t position() const override;
  void set_position(int64_t position) override;

 private:
  data::DataLoader& loader_;
  // The loader's iteration over the current epoch; its current batch is the one handed
  // out last (the loader's position already counts it). Empty before the first batch
  // and after set_position().
  std::optional<data::DataLoader::Iterator> iterator_;
};

class RandomWindowsSource : public BatchSource {
 public:
  explicit RandomWindowsSource(data::RandomWindows& windows) : windows_(windows) {}

  data::Batch next() override { return windows_.next(); }
  int64_t position() const override { return windows_.step(); }
  void set_position(int64_t position) override { windows_.set_step(position); }

 private:
  data::RandomWindows& windows_;
};

}  // namespace kiln::nn
