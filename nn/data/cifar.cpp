#include "kiln/nn/data/cifar.h"

#include <filesystem>

#include "kiln/core/factory.h"
#include "kiln/nn/data/binary_file.h"

namespace kiln::nn::data {

namespace {

constexpr int64_t kChannels = 3, kSide = 32;
constexpr int64_t kPixels = kChannels * kSide * kSide;  // 3072
constexpr int64_t kRecord = 1 + kPixels;                // label byte + pixels
constexpr int64_t kClasses = 10;
constexpr const char* kReader = "read_cifar10";

// The number of records in `path`, from its size alone; rejects what cannot be CIFAR-10.
int64_t count_records(const std::string& path) {
  const uint64_t size = detail::checked_file_size(path, kReader);
  KILN_CHECK(!detail::has_gzip_magic(detail::read_file_prefix(path, 2, kReader)), kReader, ": '", path,
             "' is gzip-compressed (it starts with 1f 8b); extract the binary version (tar xzf) first");
  KILN_CHECK(size % kRecord == 0, kReader, ": '", path, "' is truncated or not a CIFAR-10 binary file: its ", size,
             " bytes are not a whole number of ", kRecord, "-byte records (", size / kRecord, " records and ",
             size % kRecord, " bytes left over)");
  return static_cast<int64_t>(size / kRecord);
}

// Decodes the `count` records of `path` into images/labels, which have room for them.
void decode_file(const std::string& path, int64_t count, float* images, int64_t* labels) {
  const std::vector<uint8_t> bytes = detail::read_file_bytes(path, kReader);
  KILN_CHECK(static_cast<int64_t>(bytes.size()) == count * kRecord, kReader, ": '", path,
             "' changed size while being read (", count * kRecord, " bytes expected, ", bytes.size(), " read)");
  for (int64_t r = 0; r < count; ++r) {
    const uint8_t* record = bytes.data() + r * kRecord;
    KILN_CHECK(record[0] < kClasses, kReader, ": '", path, "' record ", r, " has label ", int{record[0]},
               "; CIFAR-10 labels are 0..9 (CIFAR-100 files have 3074-byte records and are not read here)");
    labels[r] = record[0];
    float* image = images + r * kPixels;
    for (int64_t i = 0; i < kPixels; ++i) image[i] = static_cast<float>(record[1 + i]) / 255.0f;
  }
}

}  // namespace

TensorDataset read_cifar10(const std::vector<std::string>& paths) {
  KILN_CHECK(!paths.empty(), kReader, ": expected at least one file");
  // Size everything from the files' sizes first, then decode each file into its slice.
  std::vector<int64_t> counts;
  int64_t total = 0;
  for (const std::string& path : paths) {
    counts.push_back(count_records(path));
    total += counts.back();
  }
  Tensor images = empty({total, kChannels, kSide, kSide});
  Tensor labels = empty({total}, {.dtype = i64});
  int64_t first = 0;
  for (size_t f = 0; f < paths.size(); ++f) {
    decode_file(paths[f], counts[f], images.data<float>() + first * kPixels, labels.data<int64_t>() + first);
    first += counts[f];
  }
  return TensorDataset(images, labels);
}

TensorDataset load_cifar10(const std::string& root, bool train) {
  const std::filesystem::path dir(root);
  std::vector<std::string> paths;
  if (train) {
    for (int i = 1; i <= 5; ++i) paths.push_back((dir / ("data_batch_" + std::to_string(i) + ".bin")).string());
  } else {
    paths.push_back((dir / "test_batch.bin").string());
  }
  return read_cifar10(paths);
}

}  // namespace kiln::nn::data
