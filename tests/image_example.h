// Helpers of the vit and convnet smoke tests: small data files in the formats they read,
// MNIST IDX (28 x 28 grayscale) and CIFAR-10 binary (32 x 32 RGB), whose pixels and labels
// follow a fixed pattern (what matters is that the files are well formed); and the
// numbers of their report, read back from what they printed.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "example_runner.h"

namespace kiln::testing {

using Bytes = std::vector<uint8_t>;

inline void write_bytes(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

inline void append_big_endian(Bytes& b, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<uint8_t>(v >> shift));
}

inline uint8_t pattern_pixel(int64_t k) { return static_cast<uint8_t>((k * 37 + 11) % 256); }

// The four MNIST files in `folder`: `train` and `test` images of 28 x 28, labels i % 10.
inline void write_mnist_files(const std::string& folder, uint32_t train, uint32_t test) {
  auto write_split = [&](const std::string& prefix, uint32_t count) {
    Bytes images, labels;
    append_big_endian(images, 0x00000803);
    for (uint32_t v : {count, 28u, 28u}) append_big_endian(images, v);
    for (int64_t k = 0; k < int64_t{count} * 28 * 28; ++k) images.push_back(pattern_pixel(k));
    append_big_endian(labels, 0x00000801);
    append_big_endian(labels, count);
    for (uint32_t i = 0; i < count; ++i) labels.push_back(static_cast<uint8_t>(i % 10));
    write_bytes(folder + "/" + prefix + "-images-idx3-ubyte", images);
    write_bytes(folder + "/" + prefix + "-labels-idx1-ubyte", labels);
  };
  write_split("train", train);
  write_split("t10k", test);
}

// data_batch_1.bin .. data_batch_5.bin with `per_batch` records each, and test_batch.bin
// with `test` records, in `folder`; labels r % 10.
inline void write_cifar_files(const std::string& folder, int64_t per_batch, int64_t test) {
  auto records = [](int64_t count, int64_t first) {
    Bytes b;
    for (int64_t r = 0; r < count; ++r) {
      b.push_back(static_cast<uint8_t>((first + r) % 10));
      for (int64_t i = 0; i < 3072; ++i) b.push_back(pattern_pixel(1000 * (first + r) + i));
    }
    return b;
  };
  for (int64_t batch = 1; batch <= 5; ++batch)
    write_bytes(folder + "/data_batch_" + std::to_string(batch) + ".bin", records(per_batch, batch * per_batch));
  write_bytes(folder + "/test_batch.bin", records(test, 0));
}

// The number printed right after `label`, e.g. "test accuracy " -> 0.4375; -1 if absent.
inline double number_after(const std::string& output, const std::string& label) {
  const size_t at = output.find(label);
  if (at == std::string::npos) return -1;
  return std::stod(output.substr(at + label.size()));
}

// The model size from the report line "<program>: 12,345 parameters, ..."; -1 if absent.
inline int64_t parameters(const std::string& output) {
  const size_t end = output.find(" parameters, ");
  if (end == std::string::npos) return -1;
  const size_t start = output.rfind(' ', end - 1) + 1;
  std::string digits;
  for (char c : output.substr(start, end - start))
    if (c != ',') digits += c;
  return std::stoll(digits);
}

}  // namespace kiln::testing
