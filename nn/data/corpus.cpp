#include "kiln/nn/data/corpus.h"

#include <algorithm>
#include <limits>

#include "kiln/core/factory.h"
#include "kiln/nn/data/binary_file.h"
#include "kiln/nn/data/philox_stream.h"

namespace kiln::nn::data {

const char* split_name(Split split) {
  switch (split) {
    case Split::train:
      return "train";
    case Split::validation:
      return "validation";
    case Split::test:
      return "test";
  }
  return "unknown";
}

// ---- ByteCorpus ---------------------------------------------------------------------------

ByteCorpus::ByteCorpus(const std::string& path) : ByteCorpus(detail::read_file_bytes(path, "ByteCorpus"), path) {}

ByteCorpus::ByteCorpus(std::vector<uint8_t> bytes, std::string name)
    : bytes_(std::make_shared<const std::vector<uint8_t>>(std::move(bytes))), name_(std::move(name)) {
  KILN_CHECK(!bytes_->empty(), "ByteCorpus: '", name_, "' is empty");
  const int64_t n = size();
  // floor(0.9 n) and floor(0.05 n) in integers, without overflowing n * 9.
  train_end_ = n / 10 * 9 + n % 10 * 9 / 10;
  validation_end_ = train_end_ + (n / 20);
}

std::span<const uint8_t> ByteCorpus::split(Split split) const {
  const std::span<const uint8_t> all = bytes();
  switch (split) {
    case Split::train:
      return all.subspan(0, train_end_);
    case Split::validation:
      return all.subspan(train_end_, validation_end_ - train_end_);
    case Split::test:
      return all.subspan(validation_end_);
  }
  return {};
}

// ---- windows --------------------------------------------------------------------------------

namespace {

void check_window_options(const char* sampler, const ByteCorpus& corpus, Split split, const WindowOptions& options) {
  KILN_CHECK(options.batch_size > 0, sampler, ": batch_size must be positive, got ", options.batch_size);
  KILN_CHECK(options.seq_len > 0, sampler, ": seq_len must be positive, got ", options.seq_len);
  const auto split_size = static_cast<int64_t>(corpus.split(split).size());
  // Written so that no seq_len, however large, overflows: seq_len + 1 <= split_size.
  KILN_CHECK(options.seq_len < split_size, sampler, ": the ", split_name(split), " split of '", corpus.name(),
             "' has ", split_size, " bytes, too short for one window of seq_len + 1 = ",
             static_cast<uint64_t>(options.seq_len) + 1, " bytes");
  // A batch is a (batch_size, seq_len) tensor: its element count must be an int64.
  KILN_CHECK(options.batch_size <= std::numeric_limits<int64_t>::max() / options.seq_len, sampler, ": batch_size ",
             options.batch_size, " * seq_len ", options.seq_len, " overflows int64");
}

// An (rows, T) input/target pair from windows starting at starts[r]: input[r][t] =
// bytes[starts[r] + t], target[r][t] = bytes[starts[r] + t + 1].
Batch windows_at(std::span<const uint8_t> bytes, const std::vector<int64_t>& starts, int64_t seq_len) {
  const auto rows = static_cast<int64_t>(starts.size());
  Tensor input = empty({rows, seq_len}, {.dtype = i64}), target = empty({rows, seq_len}, {.dtype = i64});
  int64_t* x = input.data<int64_t>();
  int64_t* y = target.data<int64_t>();
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* w = bytes.data() + starts[r];
    for (int64_t t = 0; t < seq_len; ++t) {
      x[r * seq_len + t] = w[t];
      y[r * seq_len + t] = w[t + 1];
    }
  }
  return {input, target};
}

}  // namespace

RandomWindows::RandomWindows(ByteCorpus corpus, Split split, WindowOptions options)
    : corpus_(std::move(corpus)), bytes_(corpus_.split(split)), options_(options) {
  check_window_options("RandomWindows", corpus_, split, options_);
}

Batch RandomWindows::next() { return batch(step_++); }

Batch RandomWindows::batch(int64_t step) const {
  KILN_CHECK(step >= 0, "RandomWindows: step must be >= 0, got ", step);
  // A window of T + 1 bytes can start at 0 .. size - T - 1.
  const auto num_starts = static_cast<uint64_t>(static_cast<int64_t>(bytes_.size()) - options_.seq_len);
  detail::PhiloxStream random(options_.seed, static_cast<uint64_t>(step));
  std::vector<int64_t> starts(static_cast<size_t>(options_.batch_size));
  for (int64_t& s : starts) s = static_cast<int64_t>(random.below(num_starts));
  return windows_at(bytes_, starts, options_.seq_len);
}

void RandomWindows::set_step(int64_t step) {
  KILN_CHECK(step >= 0, "RandomWindows: step must be >= 0, got ", step);
  step_ = step;
}

SequentialWindows::SequentialWindows(ByteCorpus corpus, Split split, WindowOptions options)
    : corpus_(std::move(corpus)), bytes_(corpus_.split(split)), options_(options) {
  check_window_options("SequentialWindows", corpus_, split, options_);
  // Window i covers bytes [i T, i T + T]: it needs i T + T + 1 <= size.
  num_windows_ = (static_cast<int64_t>(bytes_.size()) - 1) / options_.seq_len;
}

// ceil(num_windows / batch_size), without the overflow of num_windows + batch_size - 1.
int64_t SequentialWindows::size() const {
  return num_windows_ / options_.batch_size + (num_windows_ % options_.batch_size != 0 ? 1 : 0);
}

Batch SequentialWindows::batch(int64_t index) const {
  KILN_CHECK(index >= 0 && index < size(), "SequentialWindows: batch ", index, " is out of range (", size(),
             " batches)");
  const int64_t first = index * options_.batch_size;
  const int64_t rows = std::min(options_.batch_size, num_windows_ - first);
  std::vector<int64_t> starts(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) starts[r] = (first + r) * options_.seq_len;
  return windows_at(bytes_, starts, options_.seq_len);
}

}  // namespace kiln::nn::data
