// MNIST in its IDX files (the format of train-images-idx3-ubyte etc., already gunzipped).
//
//   images file: magic 0x00000803, then big-endian uint32 count, rows, cols, then
//                count * rows * cols pixel bytes (row-major);
//   labels file: magic 0x00000801, then big-endian uint32 count, then count label bytes.
//
//   TensorDataset train = load_mnist("data/mnist");          // the train-* pair
//   train.inputs(): f32 (60000, 1, 28, 28) in [0, 1]; train.targets(): i64 (60000)
//
// Files are untrusted: a wrong magic, a gzip-compressed file, a header that does not match
// the file's size (truncated, trailing bytes, or absurd counts) or a label out of range is
// a kiln::Error naming the file and the problem; nothing is allocated from a header value
// before it has been checked against the file's size. Other IDX image sets (Fashion-MNIST,
// EMNIST) read the same way; images of any rows x cols give (N, 1, rows, cols).
#pragma once

#include <string>

#include "kiln/nn/data/dataset.h"

namespace kiln::nn::data {

// f32 (N, 1, rows, cols), each pixel byte / 255.
Tensor read_mnist_images(const std::string& path);
// i64 (N); every label must be in [0, num_classes).
Tensor read_mnist_labels(const std::string& path, int64_t num_classes = 10);
// root/train-images-idx3-ubyte and root/train-labels-idx1-ubyte (train), or the t10k-*
// pair (test), as a dataset of (image (1, 28, 28), label) examples.
TensorDataset load_mnist(const std::string& root, bool train = true);

}  // namespace kiln::nn::data
