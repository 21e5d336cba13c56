#include "kiln/nn/data/mnist.h"

#include <cstdio>
#include <filesystem>
#include <limits>

#include "kiln/core/factory.h"
#include "kiln/nn/data/binary_file.h"

namespace kiln::nn::data {

namespace {

constexpr uint32_t kImagesMagic = 0x00000803;  // IDX: unsigned bytes, 3 dims
constexpr uint32_t kLabelsMagic = 0x00000801;  // IDX: unsigned bytes, 1 dim
constexpr uint64_t kImagesHeader = 16, kLabelsHeader = 8;

std::string hex32(uint32_t v) {
  char s[11];
  std::snprintf(s, sizeof s, "0x%08x", v);
  return s;
}

// Checks what every IDX file starts with: not gzip, the expected magic, a whole header.
// `kind` is "IDX images" or "IDX labels", `layout` what the magic number encodes.
void check_idx_header(const std::vector<uint8_t>& bytes, const std::string& path, const char* reader,
                      uint64_t header_size, uint32_t magic, const char* kind, const char* layout) {
  KILN_CHECK(!detail::has_gzip_magic(bytes), reader, ": '", path,
             "' is gzip-compressed (it starts with 1f 8b); only plain IDX files are read: gunzip it first");
  // The magic first (when there are 4 bytes for it): a file of the wrong kind is named as such.
  const uint32_t found = bytes.size() >= 4 ? detail::read_big_endian_u32(bytes.data()) : magic;
  KILN_CHECK(found == magic, reader, ": '", path, "' has magic number ", hex32(found), ", expected ", hex32(magic),
             " (", kind, ": ", layout, ")",
             found == kLabelsMagic   ? "; it looks like an IDX labels file"
             : found == kImagesMagic ? "; it looks like an IDX images file"
                                     : "");
  KILN_CHECK(bytes.size() >= header_size, reader, ": '", path, "' is truncated: an ", kind, " header is ", header_size,
             " bytes, the file has ", bytes.size());
}

// The payload after the header must hold exactly `count` items of `item_size` bytes. Checked
// by division, so an absurd count cannot overflow.
void check_payload(uint64_t payload, uint64_t count, uint64_t item_size, const std::string& path, const char* reader,
                   const char* items) {
  KILN_CHECK(count <= payload / item_size, reader, ": '", path,
             "' is truncated or its header is corrupt: the header says ", count, " ", items, " of ", item_size,
             " bytes, but the file holds ", payload, " bytes after the header (", payload / item_size, " ", items, ")");
  KILN_CHECK(count * item_size == payload, reader, ": '", path, "' has ", payload - count * item_size,
             " unexpected bytes after its ", count, " ", items);
}

}  // namespace

Tensor read_mnist_images(const std::string& path) {
  const char* reader = "read_mnist_images";
  const std::vector<uint8_t> bytes = detail::read_file_bytes(path, reader);
  check_idx_header(bytes, path, reader, kImagesHeader, kImagesMagic, "IDX images", "unsigned bytes, 3 dims");
  const uint64_t count = detail::read_big_endian_u32(bytes.data() + 4);
  const uint64_t rows = detail::read_big_endian_u32(bytes.data() + 8);
  const uint64_t cols = detail::read_big_endian_u32(bytes.data() + 12);
  KILN_CHECK(rows > 0 && cols > 0, reader, ": '", path, "' has images of ", rows, " rows and ", cols,
             " columns; both must be positive");
  check_payload(bytes.size() - kImagesHeader, count, rows * cols, path, reader, "images");  // rows * cols < 2^64
  // rows * cols is also a stride of the (N, 1, rows, cols) tensor, an int64. The payload
  // bounds it only when there is an image: a header of 0 images of 2^32 x 2^32 pixels
  // would overflow the strides (found by fuzz/fuzz_mnist).
  KILN_CHECK(rows * cols <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), reader, ": '", path,
             "' has images of ", rows, " x ", cols, " pixels, too many to index (corrupt header?)");

  Tensor images = empty({static_cast<int64_t>(count), 1, static_cast<int64_t>(rows), static_cast<int64_t>(cols)});
  float* out = images.data<float>();
  const uint8_t* pixels = bytes.data() + kImagesHeader;
  const uint64_t num_pixels = bytes.size() - kImagesHeader;  // == count * rows * cols, checked above
  for (uint64_t i = 0; i < num_pixels; ++i) out[i] = static_cast<float>(pixels[i]) / 255.0f;
  return images;
}

Tensor read_mnist_labels(const std::string& path, int64_t num_classes) {
  const char* reader = "read_mnist_labels";
  KILN_CHECK(num_classes > 0 && num_classes <= 256, reader, ": num_classes must be in [1, 256], got ", num_classes);
  const std::vector<uint8_t> bytes = detail::read_file_bytes(path, reader);
  check_idx_header(bytes, path, reader, kLabelsHeader, kLabelsMagic, "IDX labels", "unsigned bytes, 1 dim");
  const uint64_t count = detail::read_big_endian_u32(bytes.data() + 4);
  check_payload(bytes.size() - kLabelsHeader, count, 1, path, reader, "labels");

  Tensor labels = empty({static_cast<int64_t>(count)}, {.dtype = i64});
  int64_t* out = labels.data<int64_t>();
  const uint8_t* values = bytes.data() + kLabelsHeader;
  for (uint64_t i = 0; i < count; ++i) {
    KILN_CHECK(values[i] < num_classes, reader, ": '", path, "' has label ", int{values[i]}, " at index ", i,
               ", outside [0, ", num_classes, ")");
    out[i] = values[i];
  }
  return labels;
}

TensorDataset load_mnist(const std::string& root, bool train) {
  const std::filesystem::path dir(root);
  const std::string prefix = train ? "train" : "t10k";
  const std::string images_path = (dir / (prefix + "-images-idx3-ubyte")).string();
  const std::string labels_path = (dir / (prefix + "-labels-idx1-ubyte")).string();
  Tensor images = read_mnist_images(images_path);
  Tensor labels = read_mnist_labels(labels_path);
  KILN_CHECK(images.size(0) == labels.size(0), "load_mnist: '", images_path, "' has ", images.size(0), " images but '",
             labels_path, "' has ", labels.size(0), " labels");
  return TensorDataset(images, labels);
}

}  // namespace kiln::nn::data
