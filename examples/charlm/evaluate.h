// Validation bits per character: how many bits the model needs, on average, to encode
// each next character of the validation split. bpc = mean cross-entropy (nats) / ln 2.
#pragma once

#include <cstdint>

#include <kiln/nn/data/corpus.h>
#include <kiln/nn/gpt.h>

namespace charlm {

struct Validation {
  double loss = 0;          // mean cross-entropy per predicted character, in nats
  double bpc = 0;           // the same in bits
  int64_t windows = 0;      // windows evaluated
  int64_t predictions = 0;  // characters predicted: windows x seq_len
};

// A fixed set of validation windows: the first `count` windows of seq_len characters at
// offsets 0, T, 2T, ... of the validation split (fewer when the split is shorter), the
// same at every eval so that numbers compare across steps and runs. Every position of a
// window is scored, the first ones with little context, as in nanoGPT's evaluation.
class ValidationSet {
 public:
  ValidationSet(const kiln::nn::data::ByteCorpus& corpus, int64_t seq_len, int64_t count, int64_t batch_size);

  int64_t windows() const { return count_; }
  int64_t seq_len() const { return seq_len_; }
  // Call under NoGradGuard with the model in eval mode (the Trainer's eval does both).
  Validation evaluate(const kiln::nn::GPT& model) const;

 private:
  kiln::nn::data::SequentialWindows windows_;
  int64_t seq_len_, count_;
};

}  // namespace charlm
