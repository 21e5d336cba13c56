// safetensors I/O: the checkpoint format PyTorch / Hugging Face users already have.
//
// A .safetensors file is
//   [8 bytes]  N, the header length, little-endian uint64
//   [N bytes]  a JSON object: {"<name>": {"dtype": "F32", "shape": [2, 3],
//                                         "data_offsets": [begin, end]}, ...,
//                              "__metadata__": {"<key>": "<string value>", ...}}  (optional)
//   [rest]     the data section: every tensor's elements, row-major, little-endian;
//              offsets are relative to its start, and the tensors tile it exactly
//              (no gaps, no overlaps).
//
//   save_safetensors("model.safetensors", {{"weight", w}, {"bias", b}}, {{"step", "100"}});
//   SafetensorsFile f = load_safetensors("model.safetensors");
//   Tensor w = f.find("weight");
//
// Saving is atomic: the bytes go to a temporary file next to the target, which is
// flushed to disk and then renamed over it, so a crash leaves the old file or the new
// one, never a torn mix. Loading treats the file as hostile: every length, offset and
// field is checked before it is used, and a bad file is a kiln::Error naming the file
// and the problem (never a crash, never an allocation larger than the file).
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "kiln/core/tensor.h"

namespace kiln {

struct SafetensorsFile {
  std::vector<std::pair<std::string, Tensor>> tensors;  // in the header's order
  std::map<std::string, std::string> metadata;          // the "__metadata__" entry

  // The tensor called `name`, or an undefined tensor.
  Tensor find(const std::string& name) const;
};

// Writes `tensors` (any layout, any device: written contiguously, in the given order)
// and `metadata` to `path`, replacing it atomically. Names must be unique and not
// "__metadata__"; every tensor must be defined.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Reads every tensor of `path` into fresh contiguous CPU tensors. Understands the dtypes
// kiln has: F32, F64, I64, BF16, F16, BOOL.
SafetensorsFile load_safetensors(const std::string& path);

}  // namespace kiln
