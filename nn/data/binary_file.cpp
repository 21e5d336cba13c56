#include "kiln/nn/data/binary_file.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "kiln/core/error.h"

namespace kiln::nn::data::detail {

namespace fs = std::filesystem;

uint64_t checked_file_size(const std::string& path, const char* reader) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  KILN_CHECK(fs::exists(status), reader, ": '", path, "' does not exist");
  KILN_CHECK(!fs::is_directory(status), reader, ": '", path, "' is a directory, expected a file");
  KILN_CHECK(fs::is_regular_file(status), reader, ": '", path, "' is not a regular file");
  const uintmax_t size = fs::file_size(path, ec);
  KILN_CHECK(!ec, reader, ": cannot get the size of '", path, "': ", ec.message());
  KILN_CHECK(size > 0, reader, ": '", path, "' is empty");
  return size;
}

std::vector<uint8_t> read_file_bytes(const std::string& path, const char* reader) {
  const uint64_t size = checked_file_size(path, reader);
  std::ifstream in(path, std::ios::binary);
  KILN_CHECK(in.is_open(), reader, ": cannot open '", path, "': ", std::strerror(errno));
  std::vector<uint8_t> bytes(size);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  const auto got = static_cast<uint64_t>(in.gcount());
  KILN_CHECK(got == size, reader, ": read ", got, " of the ", size, " bytes of '", path,
             "'; was it modified while being read?");
  // A file that grew after we measured it would silently lose its tail: refuse it too.
  KILN_CHECK(in.peek() == std::ifstream::traits_type::eof(), reader, ": '", path,
             "' grew while being read; read it again once it is complete");
  return bytes;
}

std::vector<uint8_t> read_file_prefix(const std::string& path, size_t n, const char* reader) {
  const uint64_t size = checked_file_size(path, reader);
  std::ifstream in(path, std::ios::binary);
  KILN_CHECK(in.is_open(), reader, ": cannot open '", path, "': ", std::strerror(errno));
  std::vector<uint8_t> bytes(static_cast<size_t>(std::min<uint64_t>(n, size)));
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  bytes.resize(static_cast<size_t>(in.gcount()));
  return bytes;
}

bool has_gzip_magic(const std::vector<uint8_t>& bytes) {
  return bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;
}

}  // namespace kiln::nn::data::detail
