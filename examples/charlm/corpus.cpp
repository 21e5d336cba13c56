#include "corpus.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <vector>

#include <kiln/core/error.h>

namespace charlm {

namespace fs = std::filesystem;
using kiln::nn::data::ByteCorpus;

namespace {

std::vector<uint8_t> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  KILN_CHECK(in, "cannot read '", path.string(), "'");
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A zip archive (enwik8 is distributed as enwik8.zip) is not text: say so instead of
// training on compressed bytes.
void refuse_archive(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  const bool zip = in.gcount() == 4 && magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 && magic[3] == 4;
  const bool gzip = in.gcount() >= 2 && static_cast<uint8_t>(magic[0]) == 0x1f && static_cast<uint8_t>(magic[1]) == 0x8b;
  KILN_CHECK(!zip && !gzip, "'", path, "' is a ", zip ? "zip" : "gzip",
             " archive; unpack it first (e.g. unzip enwik8.zip) and pass the unpacked file");
}

}  // namespace

ByteCorpus load_text_directory(const std::string& dir) {
  std::error_code error;
  KILN_CHECK(fs::is_directory(dir, error), "no --data file was given and the default corpus '", dir,
             "' does not exist (it ships with Debian and Ubuntu). Pass a text file: --data PATH "
             "(enwik8, text8 or any text)");
  std::vector<fs::path> names;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir)) names.push_back(entry.path());
  std::sort(names.begin(), names.end());

  std::vector<uint8_t> bytes;
  std::set<fs::path> seen;  // canonical paths: a symlink and its target are read once
  for (const fs::path& name : names) {
    if (!fs::is_regular_file(name, error)) continue;  // follows symlinks; skips broken ones
    if (!seen.insert(fs::canonical(name, error)).second) continue;
    const std::vector<uint8_t> text = read_bytes(name);
    bytes.insert(bytes.end(), text.begin(), text.end());
  }
  KILN_CHECK(!bytes.empty(), "the default corpus '", dir, "' holds no readable text. Pass a text file: ",
             "--data PATH (enwik8, text8 or any text)");
  return ByteCorpus(std::move(bytes), dir);
}

ByteCorpus load_corpus(const std::string& path) {
  if (path.empty()) return load_text_directory(kDefaultCorpusDir);
  std::error_code error;
  KILN_CHECK(fs::exists(path, error), "data file '", path, "' does not exist (--data expects a text file, ",
             "e.g. enwik8 or text8 unpacked; leave --data out to use ", kDefaultCorpusDir, ")");
  refuse_archive(path);
  return ByteCorpus(path);
}

}  // namespace charlm
