// Helpers shared by the file readers (corpus, MNIST, CIFAR). Every reader treats its file
// as untrusted: it learns the file's size first, reads it whole, and checks each header
// field against that size before allocating anything derived from it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kiln::nn::data::detail {

// The whole of `path` as bytes. Throws kiln::Error naming `reader` and the file when it
// is missing, not a regular file, unreadable, empty, or changes size while being read.
std::vector<uint8_t> read_file_bytes(const std::string& path, const char* reader);

// The size of `path` in bytes, with the same checks as read_file_bytes (minus reading).
uint64_t checked_file_size(const std::string& path, const char* reader);

// The first min(n, size) bytes of `path` (to identify a file without reading all of it).
std::vector<uint8_t> read_file_prefix(const std::string& path, size_t n, const char* reader);

// True when `bytes` starts with the gzip magic 1f 8b (a downloaded file not yet unpacked).
bool has_gzip_magic(const std::vector<uint8_t>& bytes);

// The big-endian unsigned 32-bit integer at `p` (IDX headers are big-endian).
inline uint32_t read_big_endian_u32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

}  // namespace kiln::nn::data::detail
