// What each fuzzer does with one input file: read it with one of kiln's file readers the
// way a program would, then check that what came back agrees with the file. Shared by the
// libFuzzer targets (fuzz/fuzz_*.cpp) and by tests/test_fuzz_regressions.cpp, which
// replays the seed corpora and every input that once crashed a reader.
//
// The contract under test (DESIGN.md section 7): a reader either returns data consistent
// with the file or throws kiln::Error. So kiln::Error is the caller's to catch; anything
// else that escapes (std::bad_alloc, std::length_error, the std::logic_error an invariant
// below throws) is a finding, and so is every sanitizer report or allocation far larger
// than the file.
#pragma once

#include <kiln/core/safetensors.h>
#include <kiln/nn/data/cifar.h>
#include <kiln/nn/data/corpus.h>
#include <kiln/nn/data/mnist.h>
#include <kiln/nn/serialize.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>

namespace kiln::fuzz {

// An invariant of a reader's result; breaking it is a bug, not a bad file.
inline void expect(bool ok, const char* what) {
  if (!ok) throw std::logic_error(std::string("fuzz invariant broken: ") + what);
}

// Reads every byte of t's buffer (ASan checks the buffer really is that large) and
// returns a checksum so the reads cannot be optimised away.
inline uint64_t touch_bytes(const Tensor& t) {
  expect(t.is_contiguous(), "readers return contiguous tensors");
  const auto* p = static_cast<const uint8_t*>(t.raw_data());
  const uint64_t n = static_cast<uint64_t>(t.numel()) * element_size(t.dtype());
  uint64_t sum = 0;
  for (uint64_t i = 0; i < n; ++i) sum = sum * 31 + p[i];
  return sum;
}

inline uint64_t file_size(const std::string& path) { return std::filesystem::file_size(path); }

// ---- safetensors and training checkpoints -----------------------------------------------

inline void read_safetensors_file(const std::string& path) {
  const SafetensorsFile file = load_safetensors(path);
  uint64_t tensor_bytes = 0;
  for (const auto& [name, t] : file.tensors) {
    touch_bytes(t);
    tensor_bytes += static_cast<uint64_t>(t.numel()) * element_size(t.dtype());
  }
  // The data section holds every tensor's bytes exactly once.
  expect(tensor_bytes <= file_size(path), "tensors hold no more bytes than the file");
}

inline void read_checkpoint_file(const std::string& path) {
  const nn::TrainingCheckpoint checkpoint = nn::load_checkpoint(path);
  for (const auto& [name, t] : checkpoint.model) touch_bytes(t);
  for (const auto& [name, t] : checkpoint.optimizer) touch_bytes(t);
}

// ---- MNIST IDX: the same bytes as an images file and as a labels file ---------------------

inline void read_mnist_images_file(const std::string& path) {
  const Tensor images = nn::data::read_mnist_images(path);
  expect(images.dim() == 4 && images.size(1) == 1, "images are (N, 1, rows, cols)");
  expect(static_cast<uint64_t>(images.numel()) == file_size(path) - 16, "one pixel per byte after the 16-byte header");
  for (float v : images.to_vector<float>()) expect(v >= 0.0f && v <= 1.0f, "pixels are in [0, 1]");
}

inline void read_mnist_labels_file(const std::string& path) {
  const Tensor labels = nn::data::read_mnist_labels(path);
  expect(labels.dim() == 1 && static_cast<uint64_t>(labels.numel()) == file_size(path) - 8,
         "one label per byte after the 8-byte header");
  for (int64_t v : labels.to_vector<int64_t>()) expect(v >= 0 && v < 10, "labels are in [0, 10)");
}

// Both readers see every input (the fuzzer learns either magic number); the file is good
// when one of them accepts it, else the labels reader's error stands.
inline void read_mnist_file(const std::string& path) {
  bool read_as_images = false;
  try {
    read_mnist_images_file(path);
    read_as_images = true;
  } catch (const Error&) {
  }
  try {
    read_mnist_labels_file(path);
  } catch (const Error&) {
    if (!read_as_images) throw;
  }
}

// ---- CIFAR-10 binary ---------------------------------------------------------------------

inline void read_cifar_file(const std::string& path) {
  const nn::data::TensorDataset data = nn::data::read_cifar10({path});
  const int64_t n = data.size();
  expect(static_cast<uint64_t>(n) * 3073 == file_size(path), "one record per 3073 bytes");
  expect(data.inputs().shape() == Shape{n, 3, 32, 32}, "images are (N, 3, 32, 32)");
  for (int64_t v : data.targets().to_vector<int64_t>()) expect(v >= 0 && v < 10, "labels are in [0, 10)");
  touch_bytes(data.inputs());
}

// ---- byte corpora ------------------------------------------------------------------------

// The int64 stored little-endian in bytes [at, at + 8) of the corpus, or `fallback`.
inline int64_t option_from_bytes(std::span<const uint8_t> bytes, size_t at, int64_t fallback) {
  if (bytes.size() < at + 8) return fallback;
  int64_t v = 0;
  std::memcpy(&v, bytes.data() + at, 8);
  return v;
}

// Every row of a batch is a window of the split: target[t] follows input[t], and
// input[t + 1] == target[t].
inline void check_windows(const nn::data::Batch& b, std::span<const uint8_t> split, int64_t seq_len) {
  expect(b.input.dim() == 2 && b.input.size(1) == seq_len && b.target.shape() == b.input.shape(),
         "windows are (rows, seq_len)");
  const std::vector<int64_t> x = b.input.to_vector<int64_t>(), y = b.target.to_vector<int64_t>();
  for (size_t i = 0; i < x.size(); ++i) {
    expect(x[i] >= 0 && x[i] < 256 && y[i] >= 0 && y[i] < 256, "tokens are bytes");
    if ((i + 1) % static_cast<size_t>(seq_len) != 0) expect(x[i + 1] == y[i], "target t is input t + 1");
  }
  expect(split.size() >= static_cast<size_t>(seq_len) + 1, "a window fits in its split");
}

// The corpus's own first 16 bytes choose batch_size and seq_len (any int64: the options'
// checks are under test too); every split is then read in both orders.
inline void read_corpus_file(const std::string& path) {
  const nn::data::ByteCorpus corpus(path);
  const int64_t batch_size = option_from_bytes(corpus.bytes(), 0, 2);
  const int64_t seq_len = option_from_bytes(corpus.bytes(), 8, 4);
  for (nn::data::Split split : {nn::data::Split::train, nn::data::Split::validation, nn::data::Split::test}) {
    const std::span<const uint8_t> bytes = corpus.split(split);
    try {
      const nn::data::SequentialWindows windows(corpus, split, {.batch_size = batch_size, .seq_len = seq_len});
      // Rows are capped by the windows there are, so any batch_size is safe to read.
      for (const nn::data::Batch& b : windows) check_windows(b, bytes, seq_len);
    } catch (const Error&) {
    }
    try {
      nn::data::RandomWindows windows(corpus, split, {.batch_size = batch_size, .seq_len = seq_len, .seed = 1});
      // batch_size rows are allocated as asked: a caller's choice, so keep it small here.
      if (batch_size <= 64)
        for (int i = 0; i < 3; ++i) check_windows(windows.next(), bytes, seq_len);
    } catch (const Error&) {
    }
  }
}

}  // namespace kiln::fuzz
