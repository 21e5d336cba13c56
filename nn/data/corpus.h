// Byte-level corpora such as enwik8 and text8: the file's bytes are the tokens (vocab 256).
//
//   ByteCorpus corpus("enwik8");                       // read once, shared by copies
//   RandomWindows train(corpus, Split::train, {.batch_size = 32, .seq_len = 256, .seed = 1});
//   Batch b = train.next();                            // b.input, b.target: i64 (32, 256)
//   for (const Batch& v : SequentialWindows(corpus, Split::validation, {.batch_size = 32, .seq_len = 256}))
//     evaluate(v.input, v.target);
//
// Splits. The first 90% of the bytes are train, the next 5% validation, the rest test
// (train = floor(0.9 n), validation = floor(0.05 n)). For enwik8 and text8, exactly
// 100,000,000 bytes, this is the standard 90M / 5M / 5M split used in the literature.
//
// Windows. A window is seq_len + 1 consecutive bytes w; the input is w[:-1] and the target
// w[1:], so target[t] is the byte that follows input[t].
#pragma once

#include <cstdint>
#include <iterator>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kiln/nn/data/dataset.h"

namespace kiln::nn::data {

enum class Split { train, validation, test };
const char* split_name(Split split);  // "train", "validation", "test"

// The bytes of a corpus and its split points. Copies are cheap and share the bytes.
class ByteCorpus {
 public:
  static constexpr int64_t vocab_size = 256;

  // Reads the whole file (its size is checked first; a missing or empty file is an error).
  explicit ByteCorpus(const std::string& path);
  // A corpus over bytes already in memory; `name` stands for the path in error messages.
  ByteCorpus(std::vector<uint8_t> bytes, std::string name);

  const std::string& name() const { return name_; }  // the path, or the name given
  int64_t size() const { return static_cast<int64_t>(bytes_->size()); }
  std::span<const uint8_t> bytes() const { return {bytes_->data(), bytes_->size()}; }
  std::span<const uint8_t> split(Split split) const;

 private:
  std::shared_ptr<const std::vector<uint8_t>> bytes_;
  std::string name_;
  int64_t train_end_ = 0, validation_end_ = 0;  // split boundaries, in bytes
};

struct WindowOptions {
  int64_t batch_size = 1;
  int64_t seq_len = 1;  // T: each row holds T inputs and T targets
  uint64_t seed = 0;    // RandomWindows only
};

// Batches of windows starting at uniformly random offsets of a split, for training.
// Batch k depends only on (seed, k) (a Philox stream; the global generator is not used),
// so a run resumes exactly by restoring step().
class RandomWindows {
 public:
  RandomWindows(ByteCorpus corpus, Split split, WindowOptions options);

  Batch next();                     // batch(step()), then step() + 1
  Batch batch(int64_t step) const;  // i64 input and target, (batch_size, seq_len)
  int64_t step() const { return step_; }
  void set_step(int64_t step);

 private:
  ByteCorpus corpus_;
  std::span<const uint8_t> bytes_;  // the split, inside corpus_
  WindowOptions options_;
  int64_t step_ = 0;
};

// The windows starting at 0, T, 2T, ... of a split, batch_size per batch (the last batch
// may have fewer rows), for evaluation: every target byte of the split is predicted once,
// except the last (split size - 1) mod T, which do not fill a whole window.
class SequentialWindows {
 public:
  SequentialWindows(ByteCorpus corpus, Split split, WindowOptions options);

  int64_t num_windows() const { return num_windows_; }
  int64_t size() const;              // batches
  Batch batch(int64_t index) const;  // i64 input and target, (rows, seq_len)

  class Iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Batch;
    using difference_type = std::ptrdiff_t;

    Batch operator*() const { return windows_->batch(index_); }
    Iterator& operator++() {
      ++index_;
      return *this;
    }
    void operator++(int) { ++index_; }
    bool operator==(const Iterator& other) const { return index_ == other.index_; }

   private:
    friend class SequentialWindows;
    Iterator(const SequentialWindows* windows, int64_t index) : windows_(windows), index_(index) {}
    const SequentialWindows* windows_;
    int64_t index_;
  };
  Iterator begin() const { return {this, 0}; }
  Iterator end() const { return {this, size()}; }

 private:
  ByteCorpus corpus_;
  std::span<const uint8_t> bytes_;
  WindowOptions options_;
  int64_t num_windows_;
};

}  // namespace kiln::nn::data
