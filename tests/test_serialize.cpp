// safetensors I/O and nn checkpoints: round trips of every dtype, atomic replacement,
// hostile files (each one a clear kiln::Error), interop with a file PyTorch wrote, and
// saving/loading models and training checkpoints (resuming must be bit-identical).
#include <kiln/core/safetensors.h>
#include <kiln/nn/linear.h>
#include <kiln/nn/serialize.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>

#include <nlohmann/json.hpp>

#include "golden/safetensors_golden.h"
#include "helpers.h"
#include "temp_dir.h"

using namespace kiln;
using namespace kiln::testing;
namespace fs = std::filesystem;

namespace {

// Limits the size of files this process writes, for its lifetime. SIGXFSZ is ignored so
// that an oversized write() fails with EFBIG instead of killing the process.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &saved_limit_);
    saved_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit limit = saved_limit_;
    limit.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &limit);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &saved_limit_);
    std::signal(SIGXFSZ, saved_handler_);
  }

 private:
  rlimit saved_limit_{};
  void (*saved_handler_)(int) = nullptr;
};

void write_bytes(const std::string& path, const std::string& bytes) {
  // Remove, then create: truncating a file in place makes ext4 flush it to disk on
  // close (its auto_da_alloc heuristic), which slows the fuzz loop below 100x.
  fs::remove(path);
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(f.good());
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

std::string u64_le(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[static_cast<size_t>(i)] = static_cast<char>(v >> (8 * i));
  return s;
}

// A safetensors file from its header text and data section.
std::string safetensors_bytes(const std::string& header, const std::string& data) {
  return u64_le(header.size()) + header + data;
}

// Same dtype, shape and bytes (NaN payloads and -0.0 included).
void check_same_bits(const Tensor& got, const Tensor& expected) {
  REQUIRE(got.defined());
  CHECK(got.dtype() == expected.dtype());
  REQUIRE(got.shape() == expected.shape());
  const Tensor a = got.contiguous(), b = expected.contiguous();
  const size_t nbytes = static_cast<size_t>(a.numel()) * element_size(a.dtype());
  if (nbytes > 0) CHECK(std::memcmp(a.raw_data(), b.raw_data(), nbytes) == 0);
}

std::vector<std::string> names_of(const std::vector<std::pair<std::string, Tensor>>& tensors) {
  std::vector<std::string> names;
  for (const auto& [name, t] : tensors) names.push_back(name);
  return names;
}

// Tensors of every dtype kiln has, including a 0-d tensor and empty ones.
std::vector<std::pair<std::string, Tensor>> tensors_of_every_dtype() {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  const int64_t lowest = std::numeric_limits<int64_t>::min(), highest = std::numeric_limits<int64_t>::max();
  return {
      {"f32", randn({2, 3})},
      {"f64", from_vector<double>({1.0 / 3.0, -0.0, nan, inf, -1e-310}, {5})},
      {"i64", from_vector<int64_t>({lowest, -1, 0, (int64_t{1} << 53) + 1, highest}, {5})},
      {"bf16", randn({3, 2}).to(bf16)},
      {"f16", from_vector<float>({1.5f, -0.0f, 65504.0f, 5.9604645e-8f}, {2, 2}).to(f16)},
      {"bool", from_vector<uint8_t>({1, 0, 0, 1, 1, 0}, {2, 3}, {.dtype = b8})},
      {"scalar", scalar_tensor(2.5, {.dtype = f64})},
      {"empty", zeros({0, 4})},
      {"empty_i64", zeros({3, 0, 2}, {.dtype = i64})},
  };
}

}  // namespace

// ---- round trips ---------------------------------------------------------------------------

TEST_CASE("save_safetensors/load_safetensors round-trip every dtype bit for bit, in order") {
  TempDir dir;
  const std::string path = dir.file("all.safetensors");
  const auto tensors = tensors_of_every_dtype();
  save_safetensors(path, tensors);

  const SafetensorsFile loaded = load_safetensors(path);
  CHECK(names_of(loaded.tensors) == names_of(tensors));
  CHECK(loaded.metadata.empty());
  for (const auto& [name, t] : tensors) {
    CAPTURE(name);
    check_same_bits(loaded.find(name), t);
    if (t.numel() > 0) CHECK(loaded.find(name).is_contiguous());
  }
  CHECK_FALSE(loaded.find("missing").defined());
  CHECK(loaded.find("scalar").dim() == 0);
  CHECK(loaded.find("bool").dtype() == b8);
  // The data section starts 8-byte aligned (the header is padded with spaces) and every
  // tensor at a multiple of its element size, so readers that map the file can use it.
  const std::string bytes = read_bytes(path);
  uint64_t header_length = 0;
  std::memcpy(&header_length, bytes.data(), 8);
  CHECK(header_length % 8 == 0);
  const nlohmann::json header = nlohmann::json::parse(bytes.substr(8, header_length));
  for (const auto& [name, t] : tensors) {
    CAPTURE(name);
    CHECK(header.at(name).at("data_offsets").at(0).get<uint64_t>() % element_size(t.dtype()) == 0);
  }
}

TEST_CASE("metadata round-trips, including quotes, newlines, UTF-8 and empty values") {
  TempDir dir;
  const std::string path = dir.file("meta.safetensors");
  const std::map<std::string, std::string> metadata = {
      {"format", "pt"}, {"quote\"d", "line1\nline2\t\\"}, {"empty", ""}, {"unicode", "K\xc3\xa4se \xe2\x9c\x93"}};
  save_safetensors(path, {{"w", ones({2})}}, metadata);
  const SafetensorsFile loaded = load_safetensors(path);
  CHECK(loaded.metadata == metadata);
  check_values(loaded.find("w"), {1, 1});
}

TEST_CASE("a file with no tensors round-trips") {
  TempDir dir;
  save_safetensors(dir.file("none.safetensors"), {});
  const SafetensorsFile loaded = load_safetensors(dir.file("none.safetensors"));
  CHECK(loaded.tensors.empty());
  CHECK(loaded.metadata.empty());
}

TEST_CASE("non-contiguous tensors and tensors needing grad are written contiguously") {
  TempDir dir;
  const Tensor base = arange(24.0, {.dtype = f64}).reshape({4, 6});
  const Tensor transposed = base.t();                            // strides (1, 6)
  const Tensor strided = base.slice(1, 1, 6, 2).slice(0, 1, 4);  // a sparse window
  const Tensor param = randn({3}).requires_grad_();
  save_safetensors(dir.file("views.safetensors"), {{"t", transposed}, {"s", strided}, {"p", param}});

  const SafetensorsFile loaded = load_safetensors(dir.file("views.safetensors"));
  check_same_bits(loaded.find("t"), transposed.contiguous());
  check_same_bits(loaded.find("s"), strided.contiguous());
  check_values(loaded.find("s"), {7, 9, 11, 13, 15, 17, 19, 21, 23}, 0, 0);
  check_same_bits(loaded.find("p"), param.detach());
  CHECK_FALSE(loaded.find("p").requires_grad());
}

TEST_CASE("save_safetensors rejects bad arguments before touching the disk") {
  TempDir dir;
  const std::string path = dir.file("bad.safetensors");
  CHECK_THROWS_KILN(save_safetensors(path, {{"a", ones({1})}, {"a", ones({1})}}), "tensor name 'a' appears twice");
  CHECK_THROWS_KILN(save_safetensors(path, {{"__metadata__", ones({1})}}), "'__metadata__' is reserved");
  CHECK_THROWS_KILN(save_safetensors(path, {{"a", ones({1})}, {"b", Tensor()}}), "tensor 'b' is undefined");
  CHECK_THROWS_KILN(save_safetensors(path, {{"bad\xff", ones({1})}}), "must be valid UTF-8");
  CHECK_THROWS_KILN(save_safetensors(dir.file("no/such/folder/x.safetensors"), {{"a", ones({1})}}), "cannot create");
  CHECK(dir.entries().empty());
}

// ---- atomic replacement ----------------------------------------------------------------------

TEST_CASE("saving replaces the target only when the new file is complete") {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  save_safetensors(path, {{"w", full({3}, 1.0)}}, {{"version", "1"}});
  save_safetensors(path, {{"w", full({3}, 2.0)}}, {{"version", "2"}});  // replaces
  CHECK(load_safetensors(path).metadata.at("version") == "2");
  CHECK(dir.entries() == std::vector<std::string>{"model.safetensors"});

  SUBCASE("a save that fails leaves the previous file intact and no temporary file") {
    CHECK_THROWS_KILN(save_safetensors(path, {{"w", full({3}, 3.0)}, {"broken", Tensor()}}), "undefined");
    const SafetensorsFile kept = load_safetensors(path);
    CHECK(kept.metadata.at("version") == "2");
    check_values(kept.find("w"), {2, 2, 2});
    CHECK(dir.entries() == std::vector<std::string>{"model.safetensors"});
  }
  SUBCASE("a write that fails midway (file size limit) leaves the previous file intact") {
    // RLIMIT_FSIZE makes write() fail with EFBIG past 64 KiB, like a full disk would.
    const FileSizeLimit limit(64 * 1024);
    CHECK_THROWS_KILN(save_safetensors(path, {{"w", randn({100000})}}), "write failed: File too large");
    check_values(load_safetensors(path).find("w"), {2, 2, 2});
    CHECK(dir.entries() == std::vector<std::string>{"model.safetensors"});
  }
  SUBCASE("a failure after every byte was written (the rename) removes the temporary file") {
    // The target is a folder: the temporary file is written in full, then rename() fails.
    const std::string folder = dir.file("folder.safetensors");
    fs::create_directory(folder);
    CHECK_THROWS_KILN(save_safetensors(folder, {{"w", randn({1000})}}), "cannot rename");
    CHECK(fs::is_directory(folder));
    CHECK(dir.entries() == std::vector<std::string>{"folder.safetensors", "model.safetensors"});
    check_values(load_safetensors(path).find("w"), {2, 2, 2});
  }
}

// ---- hostile files -----------------------------------------------------------------------------

namespace {

// One valid tensor: F32[2] = {1, 2}.
const std::string kEntry = R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
const std::string kData = std::string("\x00\x00\x80\x3f\x00\x00\x00\x40", 8);

struct HostileFile {
  std::string what;
  std::string bytes;
  const char* error;  // a substring of the expected message
};

std::string with_entry(const std::string& entry_json, const std::string& data) {
  return safetensors_bytes("{\"w\":" + entry_json + "}", data);
}

std::vector<HostileFile> hostile_files() {
  const std::string two_tensors_12_bytes = kData + std::string(4, '\0');
  return {
      {"empty file", "", "file is too small (0 bytes)"},
      {"shorter than the length prefix", std::string(7, '\x01'), "too small (7 bytes)"},
      {"header length larger than the file", u64_le(100) + "{}", "header length 100 is larger than the rest"},
      {"huge header length", u64_le(uint64_t{1} << 62) + "{}", "exceeds the limit"},
      {"header length 2^64 - 1", u64_le(~uint64_t{0}) + "{}", "exceeds the limit"},
      {"truncated data", safetensors_bytes("{" + kEntry + "}", kData.substr(0, 5)), "reach past the data section"},
      {"bad JSON", safetensors_bytes("{\"w\": {", ""), "header is not valid JSON"},
      {"invalid UTF-8 in the header", safetensors_bytes("{\"\xff\":1}", ""), "header is not valid JSON"},
      {"header not an object", safetensors_bytes("[1, 2]", ""), "header must be a JSON object, got array"},
      {"deeply nested header", safetensors_bytes(std::string(100000, '[') + std::string(100000, ']'), ""),
       "nested deeper"},
      {"entry not an object", safetensors_bytes(R"({"w":3})", ""), "tensor 'w': entry must be an object"},
      {"missing dtype", with_entry(R"({"shape":[2],"data_offsets":[0,8]})", kData), "'dtype' must be a string"},
      {"unknown dtype", with_entry(R"({"dtype":"I32","shape":[2],"data_offsets":[0,8]})", kData),
       "unsupported dtype 'I32'"},
      {"shape not an array", with_entry(R"({"dtype":"F32","shape":"2","data_offsets":[0,8]})", kData),
       "'shape' must be an array"},
      {"fractional size", with_entry(R"({"dtype":"F32","shape":[2.5],"data_offsets":[0,8]})", kData),
       "shape sizes must be integers"},
      {"negative dims", with_entry(R"({"dtype":"F32","shape":[-2],"data_offsets":[0,8]})", kData),
       "negative size -2"},
      {"size beyond int64", with_entry(R"({"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,8]})", kData),
       "has too many elements"},
      {"element count overflows",
       with_entry(R"({"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,8]})", kData),
       "has too many elements"},
      {"byte count overflows",
       with_entry(R"({"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8]})", kData),
       "has too many bytes"},
      {"data_offsets not a pair", with_entry(R"({"dtype":"F32","shape":[2],"data_offsets":[8]})", kData),
       "'data_offsets' must be two non-negative integers"},
      {"negative offset", with_entry(R"({"dtype":"F32","shape":[2],"data_offsets":[-8,0]})", kData),
       "'data_offsets' must be two non-negative integers"},
      {"offsets reversed", with_entry(R"({"dtype":"F32","shape":[0],"data_offsets":[8,0]})", kData),
       "end before they begin"},
      {"offsets out of range", with_entry(R"({"dtype":"F32","shape":[2],"data_offsets":[800,808]})", kData),
       "data_offsets [800,808] reach past the data section (8 bytes"},
      {"huge offsets", with_entry(R"({"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551615]})", kData),
       "reach past the data section"},
      {"shape/offset size mismatch", with_entry(R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})", kData),
       "hold 8 bytes, but F32[3] needs 12"},
      {"overlapping tensors",
       safetensors_bytes("{" + kEntry + R"(,"v":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                         two_tensors_12_bytes),
       "tensors 'w' and 'v' overlap"},
      {"a gap between tensors",
       safetensors_bytes(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                         R"("v":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                         two_tensors_12_bytes),
       "bytes [4, 8) of the data section belong to no tensor"},
      {"trailing bytes", safetensors_bytes("{" + kEntry + "}", two_tensors_12_bytes),
       "the data section has 12 bytes but its tensors cover 8"},
      {"duplicate names", safetensors_bytes("{" + kEntry + "," + kEntry + "}", two_tensors_12_bytes),
       "header names 'w' twice"},
      {"metadata not an object", safetensors_bytes(R"({"__metadata__":[1]})", ""),
       "'__metadata__' must be an object of strings"},
      {"metadata value not a string", safetensors_bytes(R"({"__metadata__":{"step":1}})", ""),
       "metadata 'step' must be a string"},
  };
}

}  // namespace

TEST_CASE("load_safetensors: every malformed file is a kiln::Error naming the file and the problem") {
  TempDir dir;
  const std::string path = dir.file("hostile.safetensors");
  const std::string names_the_file = "load_safetensors: '" + path + "': ";
  for (const HostileFile& h : hostile_files()) {
    CAPTURE(h.what);
    write_bytes(path, h.bytes);
    CHECK_THROWS_KILN(load_safetensors(path), h.error);
    CHECK_THROWS_KILN(load_safetensors(path), names_the_file.c_str());
  }
  // The base entry itself is fine: the cases above fail for the reason they name.
  write_bytes(path, safetensors_bytes("{" + kEntry + "}", kData));
  check_values(load_safetensors(path).find("w"), {1, 2}, 0, 0);
}

TEST_CASE("load_safetensors: missing files, folders and unreadable paths") {
  TempDir dir;
  CHECK_THROWS_KILN(load_safetensors(dir.file("missing.safetensors")), "cannot open: No such file or directory");
  CHECK_THROWS_KILN(load_safetensors(dir.file("")), "not a regular file");
}

TEST_CASE("load_safetensors: every truncation and every corrupted byte of a real file is handled") {
  // Never a crash or a foreign exception: either a kiln::Error or a successful load.
  TempDir dir;
  const std::string path = dir.file("fuzz.safetensors");
  const std::string good(reinterpret_cast<const char*>(golden::safetensors::kTorchWritten),
                         sizeof(golden::safetensors::kTorchWritten));
  for (size_t length = 0; length < good.size(); ++length) {
    write_bytes(path, good.substr(0, length));
    CHECK_THROWS_AS(load_safetensors(path), Error);
  }
  int rejected = 0, loaded = 0;
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x5a);
    write_bytes(path, bad);
    try {
      load_safetensors(path);
      ++loaded;  // a flipped data byte is still a valid file
    } catch (const Error&) {
      ++rejected;
    }
  }
  CHECK(rejected > 0);
  CHECK(loaded > 0);
}

// ---- PyTorch interop ---------------------------------------------------------------------------

TEST_CASE("a safetensors file written by PyTorch (tests/golden/gen_safetensors.py) loads exactly") {
  namespace g = golden::safetensors;
  TempDir dir;
  const std::string path = dir.file("torch_written.safetensors");
  write_bytes(path, std::string(reinterpret_cast<const char*>(g::kTorchWritten), sizeof(g::kTorchWritten)));
  const SafetensorsFile file = load_safetensors(path);

  CHECK(names_of(file.tensors) == g::kNames);  // header order, not data order
  CHECK(file.metadata == std::map<std::string, std::string>{{"format", "pt"},
                                                            {"producer", "tests/golden/gen_safetensors.py"}});
  const std::map<std::string, const std::vector<double>*> floating = {
      {"weight", &g::weight}, {"bias", &g::bias},   {"hidden", &g::hidden},   {"half", &g::half},
      {"mask", &g::mask},     {"scale", &g::scale}, {"nothing", &g::nothing}, {"weight_t", &g::weight_t}};
  const std::map<std::string, DType> dtypes = {{"F32", f32},   {"F64", f64}, {"I64", i64},
                                               {"BF16", bf16}, {"F16", f16}, {"BOOL", b8}};
  for (size_t i = 0; i < g::kNames.size(); ++i) {
    const std::string& name = g::kNames[i];
    CAPTURE(name);
    const Tensor t = file.find(name);
    CHECK(t.dtype() == dtypes.at(g::kDTypes[i]));
    CHECK(t.shape() == g::kShapes[i]);
    if (name == "tokens") CHECK(t.to_vector<int64_t>() == g::tokens);  // exact beyond 2^53
    else check_values(t, *floating.at(name), 0, 0);
  }

  // kiln writes it back, and reads its own file identically. Setting
  // KILN_SAFETENSORS_EXPORT=<path> keeps that file for `gen_safetensors.py verify <path>`.
  const char* exported = std::getenv("KILN_SAFETENSORS_EXPORT");
  const std::string resaved = exported ? std::string(exported) : dir.file("kiln_written.safetensors");
  save_safetensors(resaved, file.tensors, file.metadata);
  const SafetensorsFile again = load_safetensors(resaved);
  CHECK(names_of(again.tensors) == g::kNames);
  CHECK(again.metadata == file.metadata);
  for (const auto& [name, t] : file.tensors) check_same_bits(again.find(name), t);
}

// ---- nn::save / nn::load -------------------------------------------------------------------------

namespace {

struct TinyNet : nn::Module {
  std::shared_ptr<nn::Linear> fc;
  Tensor scale, calls;
  TinyNet() {
    fc = register_module("fc", std::make_shared<nn::Linear>(3, 2));
    scale = register_parameter("scale", randn({2}));
    calls = register_buffer("calls", zeros({1}, {.dtype = i64}));
  }
  Tensor forward(const Tensor& x) const { return fc->forward(x) * scale; }
};

}  // namespace

TEST_CASE("nn::save / nn::load restore every parameter and buffer into the same handles") {
  TempDir dir;
  const std::string path = dir.file("tiny.safetensors");
  TinyNet trained;
  trained.calls.fill_(41);
  nn::save(trained, path, {{"note", "tiny"}});
  CHECK(names_of(load_safetensors(path).tensors) ==
        std::vector<std::string>{"scale", "fc.weight", "fc.bias", "calls"});

  TinyNet fresh;  // different random initialisation
  const Tensor weight_handle = fresh.fc->weight;
  nn::load(fresh, path);
  for (const auto& [name, t] : trained.state_dict()) {
    CAPTURE(name);
    check_same_bits(fresh.state_dict().find(name), t.detach());
  }
  check_same_bits(weight_handle.detach(), trained.fc->weight.detach());  // loaded in place
  CHECK(fresh.fc->weight.requires_grad());
  const Tensor x = randn({4, 3});
  check_same_bits(fresh.forward(x).detach(), trained.forward(x).detach());
}

TEST_CASE("nn::load: strict key matching, shape mismatches and errors name the file") {
  TempDir dir;
  const std::string path = dir.file("partial.safetensors");
  TinyNet net;
  save_safetensors(path, {{"fc.weight", ones({2, 3})}, {"extra", ones({1})}});
  const std::string names_the_file = "nn::load: '" + path + "': ";
  CHECK_THROWS_KILN(nn::load(net, path), names_the_file.c_str());
  CHECK_THROWS_KILN(nn::load(net, path), "missing keys: scale, fc.bias, calls");
  CHECK_THROWS_KILN(nn::load(net, path), "unexpected keys: extra");

  nn::load(net, path, /*strict=*/false);  // loads what matches, ignores the rest
  check_values(net.fc->weight, {1, 1, 1, 1, 1, 1});

  save_safetensors(path, {{"fc.weight", ones({3, 2})}});
  CHECK_THROWS_KILN(nn::load(net, path, false), "shape mismatch for fc.weight");
  CHECK_THROWS_KILN(nn::load(net, dir.file("missing.safetensors")), "cannot open");
}

// ---- training checkpoints --------------------------------------------------------------------------

TEST_CASE("a training checkpoint round-trips model, optimizer, RNG, counters and metadata") {
  TempDir dir;
  const std::string path = dir.file("ckpt.safetensors");
  TinyNet net;
  const std::vector<std::pair<std::string, Tensor>> optimizer_state = {
      {"0.exp_avg", randn({2, 3})}, {"0.exp_avg_sq", rand({2, 3})}, {"step", scalar_tensor(7, {.dtype = i64})}};
  const nn::TrainingCheckpoint saved{
      .model = net.state_dict(),
      .optimizer = nn::to_state_dict(optimizer_state),
      .rng = {.seed = 0xfedcba9876543210ull, .offset = (uint64_t{1} << 63) + 5},  // needs all 64 bits
      .step = 7,
      .data_position = int64_t{1} << 40,
      .metadata = {{"run", "test"}, {"lr", "0.001"}},
  };
  nn::save_checkpoint(path, saved);

  const nn::TrainingCheckpoint c = nn::load_checkpoint(path);
  CHECK(c.step == 7);
  CHECK(c.data_position == int64_t{1} << 40);
  CHECK(c.rng.seed == saved.rng.seed);
  CHECK(c.rng.offset == saved.rng.offset);
  CHECK(c.metadata == saved.metadata);  // kiln's own keys are not handed back
  REQUIRE(c.model.size() == saved.model.size());
  for (const auto& [name, t] : saved.model) check_same_bits(c.model.find(name), t.detach());
  REQUIRE(c.optimizer.size() == 3);
  for (const auto& [name, t] : optimizer_state) check_same_bits(c.optimizer.find(name), t);

  // One ordinary safetensors file: model and optimizer tensors are prefixed.
  const SafetensorsFile raw = load_safetensors(path);
  CHECK(raw.find("model.fc.weight").defined());
  CHECK(raw.find("optim.0.exp_avg").defined());
  CHECK(raw.metadata.at("kiln.step") == "7");
  CHECK(raw.metadata.at("kiln.rng_seed") == "18364758544493064720");
}

TEST_CASE("training checkpoints: reserved keys, foreign files and corrupt counters are errors") {
  TempDir dir;
  const std::string path = dir.file("ckpt.safetensors");
  CHECK_THROWS_KILN(nn::save_checkpoint(path, {.metadata = {{"kiln.step", "3"}}}),
                    "metadata key 'kiln.step' is reserved");

  save_safetensors(path, {{"w", ones({1})}});
  CHECK_THROWS_KILN(nn::load_checkpoint(path), "is not a kiln training checkpoint");

  const std::map<std::string, std::string> good = {{"kiln.format", "training_checkpoint/1"},
                                                   {"kiln.step", "3"},
                                                   {"kiln.data_position", "0"},
                                                   {"kiln.rng_seed", "1"},
                                                   {"kiln.rng_offset", "0"}};
  auto with = [&](const std::string& key, const std::string& value) {
    auto m = good;
    m[key] = value;
    return m;
  };
  save_safetensors(path, {{"model.w", ones({1})}}, good);
  CHECK(nn::load_checkpoint(path).step == 3);
  save_safetensors(path, {{"w", ones({1})}}, good);
  CHECK_THROWS_KILN(nn::load_checkpoint(path), "unexpected tensor 'w'");
  save_safetensors(path, {}, with("kiln.format", "training_checkpoint/99"));
  CHECK_THROWS_KILN(nn::load_checkpoint(path), "has format 'training_checkpoint/99'");
  save_safetensors(path, {}, with("kiln.step", "12x"));
  CHECK_THROWS_KILN(nn::load_checkpoint(path), "metadata 'kiln.step' = '12x' is not a valid integer");
  save_safetensors(path, {}, with("kiln.rng_seed", "-1"));
  CHECK_THROWS_KILN(nn::load_checkpoint(path), "metadata 'kiln.rng_seed' = '-1' is not a valid integer");
  save_safetensors(path, {}, with("kiln.data_position", "99999999999999999999"));
  CHECK_THROWS_KILN(nn::load_checkpoint(path), "'kiln.data_position' = '99999999999999999999' is not a valid");
  auto missing = good;
  missing.erase("kiln.rng_offset");
  save_safetensors(path, {}, missing);
  CHECK_THROWS_KILN(nn::load_checkpoint(path), "metadata 'kiln.rng_offset' is missing");
}

namespace {

// A small model whose forward draws dropout masks from the generator, trained by SGD
// with momentum written out by hand (the optimizer state is the momentum buffers).
struct DropoutNet : nn::Module {
  std::shared_ptr<nn::Linear> fc1, fc2;
  DropoutNet() {
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(4, 16));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(16, 2));
  }
  Tensor forward(const Tensor& x) const { return fc2->forward(dropout(relu(fc1->forward(x)), 0.5, true)); }
};

struct Trainer {
  DropoutNet net;
  nn::StateDict momentum;  // "fc1.weight" -> buffer, ...
  int64_t step = 0;

  Trainer() {
    for (const auto& [name, p] : net.named_parameters()) momentum.insert(name, zeros_like(p));
  }
  // One SGD step on batch `step` of a fixed synthetic stream; returns the loss.
  double train_step(const Tensor& x, const Tensor& y) {
    net.zero_grad();
    const Tensor loss = mse_loss(net.forward(x.narrow(0, step % 4 * 4, 4)), y.narrow(0, step % 4 * 4, 4));
    loss.backward();
    NoGradGuard no_grad;
    for (const auto& [name, p] : net.named_parameters()) {
      Tensor buf = momentum.find(name);
      buf.mul_(0.9).add_(p.grad());
      Tensor(p).add_(buf, -0.05);
    }
    ++step;
    return loss.item<double>();
  }
  nn::TrainingCheckpoint checkpoint() const {
    return {.model = net.state_dict(), .optimizer = momentum, .rng = default_generator().state(), .step = step};
  }
  void restore(const nn::TrainingCheckpoint& c) {
    net.load_state_dict(c.model);
    for (const auto& [name, buf] : momentum) Tensor(buf).copy_(c.optimizer.find(name));
    default_generator().set_state(c.rng);
    step = c.step;
  }
};

}  // namespace

TEST_CASE("save -> load -> continue training gives bit-identical losses") {
  TempDir dir;
  const std::string path = dir.file("resume.safetensors");
  manual_seed(123);
  const Tensor x = randn({16, 4}), y = randn({16, 2});

  Trainer original;
  for (int i = 0; i < 3; ++i) original.train_step(x, y);
  nn::save_checkpoint(path, original.checkpoint());
  std::vector<double> expected;
  for (int i = 0; i < 4; ++i) expected.push_back(original.train_step(x, y));

  manual_seed(999);  // a different run: other initial weights, other RNG position
  Trainer resumed;
  resumed.restore(nn::load_checkpoint(path));
  CHECK(resumed.step == 3);
  std::vector<double> got;
  for (int i = 0; i < 4; ++i) got.push_back(resumed.train_step(x, y));
  CHECK(got == expected);  // exact: same weights, momentum and dropout masks
  for (const auto& [name, p] : original.net.named_parameters())
    check_same_bits(resumed.net.state_dict().find(name).detach(), p.detach());
}
