// Regression tests from fuzzing the file readers (fuzz/, docs/reliability.md).
//
// 1. Every seed (fuzz/corpus/<reader>/) and every input that once crashed a fuzzer
//    (fuzz/regressions/<reader>/) is replayed through the same code the fuzzer runs
//    (fuzz/reader_inputs.h): it must load or throw kiln::Error, nothing else. In the
//    sanitizer build (make test-sanitize) ASan and UBSan watch these runs too.
// 2. Each bug found by the fuzzers, or while writing them, has a case of its own below,
//    with the input written out so the reader sees what was wrong, and the error it
//    gives now.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "../fuzz/reader_inputs.h"
#include "helpers.h"

using namespace kiln;
namespace fs = std::filesystem;

namespace {

const fs::path kFuzzDir = fs::path(KILN_TEST_DATA_DIR) / ".." / "fuzz";

using ReadFn = void (*)(const std::string&);

struct Reader {
  const char* name;  // fuzz/corpus/<name>/, fuzz/regressions/<name>/
  ReadFn read;
};
const Reader kReaders[] = {{"safetensors", fuzz::read_safetensors_file},
                           {"checkpoint", fuzz::read_checkpoint_file},
                           {"mnist", fuzz::read_mnist_file},
                           {"cifar", fuzz::read_cifar_file},
                           {"corpus", fuzz::read_corpus_file}};

std::vector<fs::path> files_in(const fs::path& dir) {
  std::vector<fs::path> files;
  if (!fs::is_directory(dir)) return files;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir))
    if (entry.is_regular_file()) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

// Reads `path` as the fuzzer would; returns "ok", or the kiln::Error's message. Any other
// exception escapes and fails the test case.
std::string replay(const Reader& reader, const fs::path& path) {
  try {
    reader.read(path.string());
    return "ok";
  } catch (const Error& e) {
    return e.what();
  }
}

}  // namespace

TEST_CASE("fuzz regressions: every seed and every saved crash input loads or throws kiln::Error") {
  for (const Reader& reader : kReaders) {
    const std::string name = reader.name;  // CAPTURE of a const char* prints the pointer
    CAPTURE(name);
    const std::vector<fs::path> seeds = files_in(kFuzzDir / "corpus" / name);
    CHECK_MESSAGE(!seeds.empty(), "no seeds in fuzz/corpus/", name);
    for (const fs::path& seed : seeds) {
      CAPTURE(seed.string());
      CHECK(replay(reader, seed) == "ok");  // seeds are valid files: they must load
    }
    for (const fs::path& crash : files_in(kFuzzDir / "regressions" / name)) {
      CAPTURE(crash.string());
      CHECK_NOTHROW(replay(reader, crash));  // a clear kiln::Error, or a load
    }
  }
}

// ---- one case per bug ------------------------------------------------------------------------

namespace {

// A file under the system temp folder holding given bytes, removed at scope exit.
class TempFile {
 public:
  explicit TempFile(const std::string& bytes) {
    static int counter = 0;
    path_ = (fs::temp_directory_path() /
             ("kiln_test_fuzz_" + std::to_string(::getpid()) + "_" + std::to_string(counter++)))
                .string();
    std::ofstream(path_, std::ios::binary) << bytes;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string u32_be(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}
std::string u64_le(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}
std::string safetensors_with_header(const std::string& json) { return u64_le(json.size()) + json; }

}  // namespace

TEST_CASE("fuzz regressions: MNIST header of 0 images of 2^32 x 2^32 pixels (found by fuzz_mnist)") {
  // No image, so no payload bounds rows * cols; the (0, 1, rows, cols) tensor's strides
  // overflowed int64 (UBSan: signed overflow in contiguous_strides).
  const TempFile file(u32_be(0x803) + u32_be(0) + u32_be(0xfeffffff) + u32_be(0xffffff7f));
  CHECK_THROWS_KILN(nn::data::read_mnist_images(file.path()),
                    "has images of 4278190079 x 4294967167 pixels, too many to index");
  // The largest images that do index still read, as an empty set.
  const TempFile fits(u32_be(0x803) + u32_be(0) + u32_be(1u << 31) + u32_be(1u << 31));
  CHECK(nn::data::read_mnist_images(fits.path()).shape() == Shape{0, 1, int64_t{1} << 31, int64_t{1} << 31});
}

TEST_CASE("fuzz regressions: safetensors shape [0, 2^62, 4] (found writing the fuzz targets)") {
  // No elements, so the element-count check passed, but the strides of the empty tensor
  // are 2^64 and 4: signed overflow in contiguous_strides.
  const TempFile file(safetensors_with_header(
      R"({"t":{"dtype":"F32","shape":[0,4611686018427387904,4],"data_offsets":[0,0]}})"));
  CHECK_THROWS_KILN(load_safetensors(file.path()), "tensor 't': shape [0,4611686018427387904,4] has sizes too large");
  // A zero-size tensor whose other sizes do fit still loads.
  const TempFile fits(safetensors_with_header(
      R"({"t":{"dtype":"F32","shape":[0,4611686018427387904,1],"data_offsets":[0,0]}})"));
  CHECK(load_safetensors(fits.path()).find("t").shape() == Shape{0, int64_t{1} << 62, 1});
}

TEST_CASE("fuzz regressions: corpus windows with seq_len or batch_size near 2^63 (found writing the fuzz targets)") {
  const nn::data::ByteCorpus corpus(std::vector<uint8_t>(100, 'x'), "x100");
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  // seq_len + 1 overflowed in the window-length check.
  CHECK_THROWS_KILN(nn::data::SequentialWindows(corpus, nn::data::Split::train, {.seq_len = kMax}),
                    "too short for one window of seq_len + 1 = 9223372036854775808 bytes");
  CHECK_THROWS_KILN(nn::data::RandomWindows(corpus, nn::data::Split::train, {.seq_len = kMax}),
                    "too short for one window");
  // A batch of batch_size x seq_len elements that int64 cannot count is refused up front.
  CHECK_THROWS_KILN(nn::data::RandomWindows(corpus, nn::data::Split::train, {.batch_size = kMax, .seq_len = 2}),
                    "batch_size 9223372036854775807 * seq_len 2 overflows int64");
  // size() computed num_windows + batch_size - 1, which overflowed; now it is one batch
  // holding every window.
  const nn::data::SequentialWindows all(corpus, nn::data::Split::train, {.batch_size = kMax, .seq_len = 1});
  REQUIRE(all.size() == 1);
  CHECK(all.batch(0).input.shape() == Shape{all.num_windows(), 1});
}

TEST_CASE("fuzz regressions: a checkpoint with a negative step or data position is corrupt") {
  // Not a crash: load_checkpoint returned step -5 and left the caller to notice.
  std::map<std::string, std::string> metadata = {{"kiln.format", "training_checkpoint/1"},
                                                 {"kiln.step", "-5"},
                                                 {"kiln.data_position", "0"},
                                                 {"kiln.rng_seed", "1"},
                                                 {"kiln.rng_offset", "0"}};
  const TempFile file("");
  save_safetensors(file.path(), {}, metadata);
  CHECK_THROWS_KILN(nn::load_checkpoint(file.path()), "metadata 'kiln.step' = '-5' is negative");
  metadata["kiln.step"] = "5";
  metadata["kiln.data_position"] = "-1";
  save_safetensors(file.path(), {}, metadata);
  CHECK_THROWS_KILN(nn::load_checkpoint(file.path()), "metadata 'kiln.data_position' = '-1' is negative");
}
