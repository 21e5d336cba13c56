// CIFAR-10 in its binary version (cifar-10-binary.tar.gz, extracted to cifar-10-batches-bin/).
// Each file is a sequence of 3073-byte records: one label byte (0..9), then 3072 pixel
// bytes: the 32x32 red plane, then green, then blue, each row-major; that is exactly
// the (3, 32, 32) channels-first layout.
//
//   TensorDataset train = load_cifar10("data/cifar-10-batches-bin");     // data_batch_1..5
//   train.inputs(): f32 (50000, 3, 32, 32) in [0, 1]; train.targets(): i64 (50000)
//
// Files are untrusted: a size that is not a whole number of records, a label outside
// 0..9 or a gzip-compressed file is a kiln::Error naming the file and the problem. The
// output is sized from the files' sizes, so nothing larger than the data is allocated.
#pragma once

#include <string>
#include <vector>

#include "kiln/nn/data/dataset.h"

namespace kiln::nn::data {

// The records of every file in `paths`, in order: images f32 (N, 3, 32, 32) with each
// pixel byte / 255, labels i64 (N).
TensorDataset read_cifar10(const std::vector<std::string>& paths);
// root/data_batch_1.bin .. root/data_batch_5.bin (train) or root/test_batch.bin (test).
TensorDataset load_cifar10(const std::string& root, bool train = true);

}  // namespace kiln::nn::data
