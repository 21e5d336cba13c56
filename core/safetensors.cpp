#include "kiln/core/safetensors.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <filesystem>
#include <limits>
#include <optional>
#include <set>
#include <string_view>
#include <system_error>

#include <nlohmann/json.hpp>

#include "kiln/core/factory.h"

namespace kiln {

// The data section is copied byte for byte between the file and kiln's buffers, so the
// host must store numbers in the format's byte order.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

using Json = nlohmann::ordered_json;  // ordered: tensors come back in the header's order

constexpr const char* kMetadataKey = "__metadata__";
// The reference implementation's limit: a header is ~100 bytes per tensor, so this
// allows a million tensors while bounding what a hostile length can make us read.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// root object (0) -> tensor entry (1) -> shape / data_offsets array (2) -> integers (3).
constexpr int kMaxHeaderDepth = 3;
constexpr uint64_t kMaxInt64 = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

// ---- errors and raw file access -------------------------------------------------------

// Builds every error of one save or load, so each message names the call and the file:
//   "load_safetensors: 'model.safetensors': tensor 'w': unknown dtype 'I32' ..."
struct FileErrors {
  const char* op;
  std::string path;

  template <class... Args>
  [[noreturn]] void fail(const Args&... what) const {
    throw Error(detail::str(op, ": '", path, "': ", what...));
  }
  template <class... Args>
  void check(bool ok, const Args&... what) const {
    if (!ok) fail(what...);
  }
  // For a failed system call: appends the reason errno gives.
  template <class... Args>
  [[noreturn]] void fail_errno(const Args&... what) const {
    const std::string reason = std::system_category().message(errno);
    fail(what..., ": ", reason);
  }
};

void write_all(int fd, const void* data, size_t nbytes, const FileErrors& err) {
  const char* p = static_cast<const char*>(data);
  while (nbytes > 0) {
    const ssize_t n = ::write(fd, p, std::min<size_t>(nbytes, size_t{1} << 30));
    if (n < 0) {
      if (errno == EINTR) continue;
      err.fail_errno("write failed");
    }
    p += n;
    nbytes -= static_cast<size_t>(n);
  }
}

void read_all_at(int fd, void* data, size_t nbytes, uint64_t offset, const FileErrors& err) {
  char* p = static_cast<char*>(data);
  while (nbytes > 0) {
    const ssize_t n = ::pread(fd, p, std::min<size_t>(nbytes, size_t{1} << 30), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      err.fail_errno("read failed");
    }
    err.check(n > 0, "unexpected end of file at byte ", offset, " (was the file changed while reading?)");
    p += n;
    nbytes -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
}

// A file opened for reading, closed on scope exit.
class InputFile {
 public:
  explicit InputFile(const FileErrors& err) {
    fd_ = ::open(err.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) err.fail_errno("cannot open");
    struct stat st {};
    if (::fstat(fd_, &st) != 0) err.fail_errno("cannot stat");
    // A directory opens fine on Linux; reading it would fail later with a vaguer error.
    err.check(S_ISREG(st.st_mode), "not a regular file");
    size_ = static_cast<uint64_t>(st.st_size);
  }
  ~InputFile() { ::close(fd_); }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  int fd() const { return fd_; }
  uint64_t size() const { return size_; }

 private:
  int fd_ = -1;
  uint64_t size_ = 0;
};

// ---- atomic saves and their temporaries ------------------------------------------------
//
// A save writes "<path>.tmp.<pid>.<n>" next to its target and renames it over the target.
// A writer killed before the rename (SIGKILL, OOM killer) leaves that temporary behind,
// so every save first removes the ones an earlier, dead writer of the same path left.
// The danger is removing a LIVE writer's temporary (another thread or process saving the
// same path): its rename would then fail. A writer therefore holds an exclusive flock()
// on its temporary from creation until after the rename, and only a temporary whose lock
// can be taken is removed. The kernel drops a lock when its process dies, however it
// dies, so a free lock means a dead (or finished) writer. The pid in the name cannot say
// that: kill(pid, 0) is meaningless across pid namespaces (two containers saving into one
// volume) and after the pid is reused.

// "<digits>.<digits>": the part of a temporary's name after "<target>.tmp.".
bool is_temporary_suffix(std::string_view suffix) {
  const size_t dot = suffix.find('.');
  auto digits = [](std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  return dot != std::string_view::npos && digits(suffix.substr(0, dot)) && digits(suffix.substr(dot + 1));
}

// Whether `fd` is still the file called `path` (nobody removed or replaced the name).
bool is_named(int fd, const std::string& path) {
  struct stat open_file {}, named {};
  return ::fstat(fd, &open_file) == 0 && ::lstat(path.c_str(), &named) == 0 && open_file.st_dev == named.st_dev &&
         open_file.st_ino == named.st_ino;
}

// flock(), retried when a signal interrupts it.
int lock_file(int fd, int operation) {
  int rc;
  do rc = ::flock(fd, operation);
  while (rc != 0 && errno == EINTR);
  return rc;
}

// Removes `temp` if no writer holds its lock. We hold the lock while unlinking, and
// writers hold it until their rename, so the name cannot belong to a live writer then.
void remove_if_abandoned(const std::string& temp) {
  // O_NONBLOCK: a FIFO that happens to carry such a name must not block the save.
  const int fd = ::open(temp.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && lock_file(fd, LOCK_EX | LOCK_NB) == 0 && is_named(fd, temp))
    ::unlink(temp.c_str());
  ::close(fd);  // drops the lock
}

// Removes the temporaries that killed saves of `path` left in its folder. Best effort:
// a folder or file it cannot read is left as it is, and the save goes on.
void remove_abandoned_temporaries(const std::string& path) {
  const std::filesystem::path target(path);
  const std::filesystem::path dir = target.has_parent_path() ? target.parent_path() : ".";
  const std::string prefix = target.filename().string() + ".tmp.";
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.starts_with(prefix) && is_temporary_suffix(std::string_view(name).substr(prefix.size())))
      remove_if_abandoned(it->path().string());
  }
}

// Writes a file under a temporary name next to its target; commit() makes the bytes
// durable and renames the file over the target. Until then the target is untouched, and
// if commit() is never reached (an exception), the destructor removes the temporary.
// The temporary stays locked (see above) as long as this object holds it.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(const FileErrors& err) : err_(err) {
    // Same folder as the target, so rename() stays within one filesystem and is atomic.
    // O_EXCL never reuses an existing file; mode 0666 lets the umask decide, as for any file.
    static std::atomic<uint64_t> counter{0};
    for (int attempt = 0; fd_ < 0; ++attempt) {
      temp_ = detail::str(err_.path, ".tmp.", ::getpid(), ".", counter++);
      fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd_ < 0 && (errno != EEXIST || attempt == 100)) err_.fail_errno("cannot create '", temp_, "'");
      if (fd_ >= 0 && !lock_new_file()) {  // another save removed it before we locked it
        ::close(fd_);
        fd_ = -1;
      }
    }
  }
  ~AtomicFileWriter() {
    if (fd_ < 0) return;
    if (!committed_) ::unlink(temp_.c_str());  // before close(): still under our lock
    ::close(fd_);
  }
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, size_t nbytes) { write_all(fd_, data, nbytes, err_); }

  void commit() {
    // fsync before rename: otherwise a crash could leave the new name pointing at a file
    // whose data never reached the disk.
    if (::fsync(fd_) != 0) err_.fail_errno("fsync of '", temp_, "' failed");
    // The file stays open (and locked) across the rename: closed first, it could be taken
    // for a dead writer's temporary and removed before the rename.
    if (::rename(temp_.c_str(), err_.path.c_str()) != 0) err_.fail_errno("cannot rename '", temp_, "' over it");
    committed_ = true;
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) err_.fail_errno("written, but closing it failed");
    sync_parent_directory();
  }

 private:
  // Locks the file just created. False if, between its creation and the lock, another
  // save took it for an abandoned temporary and removed it. A filesystem without flock()
  // leaves it unlocked: other saves cannot lock it either, so they never remove it.
  bool lock_new_file() const {
    if (lock_file(fd_, LOCK_EX) != 0) return true;
    return is_named(fd_, temp_);
  }

  // The rename lives in the directory: sync it too, so the new name survives a crash.
  void sync_parent_directory() const {
    std::string dir = std::filesystem::path(err_.path).parent_path().string();
    if (dir.empty()) dir = ".";
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) err_.fail_errno("written, but cannot open its directory to sync it");
    const int rc = ::fsync(fd);
    const int fsync_errno = errno;
    ::close(fd);
    errno = fsync_errno;
    // Some filesystems cannot sync a directory (EINVAL); the data itself is synced.
    if (rc != 0 && errno != EINVAL) err_.fail_errno("written, but syncing its directory failed");
  }

  const FileErrors& err_;
  std::string temp_;
  int fd_ = -1;
  bool committed_ = false;
};

// ---- dtypes ------------------------------------------------------------------------------

struct DTypeName {
  DType dtype;
  const char* name;
};
constexpr DTypeName kDTypeNames[] = {{f32, "F32"}, {f64, "F64"}, {i64, "I64"},
                                     {bf16, "BF16"}, {f16, "F16"}, {b8, "BOOL"}};

const char* safetensors_dtype_name(DType t) {
  for (const auto& d : kDTypeNames)
    if (d.dtype == t) return d.name;
  throw Error(detail::str("save_safetensors: dtype ", dtype_name(t), " has no safetensors name"));
}

std::optional<DType> dtype_from_safetensors_name(const std::string& name) {
  for (const auto& d : kDTypeNames)
    if (name == d.name) return d.dtype;
  return std::nullopt;
}

// ---- saving ------------------------------------------------------------------------------

void check_tensors_to_save(const std::vector<std::pair<std::string, Tensor>>& tensors, const FileErrors& err) {
  std::set<std::string> names;
  for (const auto& [name, t] : tensors) {
    err.check(name != kMetadataKey, "'", kMetadataKey, "' is reserved and cannot name a tensor");
    err.check(names.insert(name).second, "tensor name '", name, "' appears twice");
    err.check(t.defined(), "tensor '", name, "' is undefined");
  }
}

uint64_t nbytes_of(const Tensor& t) { return static_cast<uint64_t>(t.numel()) * element_size(t.dtype()); }

// Where each tensor's bytes go in the data section. The section is laid out largest
// element size first (8, 4, 2, 1 bytes; otherwise in the caller's order): as the data
// section starts 8-byte aligned, every tensor then starts at a multiple of its element
// size, so readers that map the file can view tensors in place (the reference writer
// aligns the same way). The header keeps the caller's order.
struct DataLayout {
  std::vector<size_t> order;     // indices into the tensors, in data-section order
  std::vector<uint64_t> begins;  // per tensor (caller's order), relative to the section
};

DataLayout layout_data_section(const std::vector<std::pair<std::string, Tensor>>& tensors) {
  DataLayout layout;
  for (size_t i = 0; i < tensors.size(); ++i) layout.order.push_back(i);
  std::stable_sort(layout.order.begin(), layout.order.end(), [&](size_t a, size_t b) {
    return element_size(tensors[a].second.dtype()) > element_size(tensors[b].second.dtype());
  });
  layout.begins.resize(tensors.size());
  uint64_t offset = 0;
  for (size_t i : layout.order) {
    layout.begins[i] = offset;
    offset += nbytes_of(tensors[i].second);
  }
  return layout;
}

// The JSON header, padded with spaces to a multiple of 8 bytes so the data section
// starts aligned (JSON ignores the trailing spaces).
std::string make_header(const std::vector<std::pair<std::string, Tensor>>& tensors, const DataLayout& layout,
                        const std::map<std::string, std::string>& metadata, const FileErrors& err) {
  Json header = Json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, t] = tensors[i];
    const uint64_t begin = layout.begins[i];
    header[name] = {{"dtype", safetensors_dtype_name(t.dtype())},
                    {"shape", t.shape()},
                    {"data_offsets", Json::array({begin, begin + nbytes_of(t)})}};
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const Json::exception&) {  // dump() refuses invalid UTF-8
    err.fail("tensor names and metadata must be valid UTF-8");
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

void write_u64_le(AtomicFileWriter& out, uint64_t v) {
  unsigned char bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<unsigned char>(v >> (8 * i));
  out.write(bytes, 8);
}

}  // namespace

Tensor SafetensorsFile::find(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return t;
  return {};
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  const FileErrors err{"save_safetensors", path};
  check_tensors_to_save(tensors, err);
  const DataLayout layout = layout_data_section(tensors);
  const std::string header = make_header(tensors, layout, metadata, err);

  remove_abandoned_temporaries(path);
  AtomicFileWriter out(err);
  write_u64_le(out, header.size());
  out.write(header.data(), header.size());
  for (size_t i : layout.order) {
    // One tensor at a time: at most one extra copy (a non-contiguous or GPU tensor) lives.
    const Tensor bytes = tensors[i].second.detach().to(Device::cpu()).contiguous();
    if (bytes.numel() > 0) out.write(bytes.raw_data(), nbytes_of(bytes));
  }
  out.commit();
}

// ---- loading -----------------------------------------------------------------------------

namespace {

// One tensor's header entry, validated. Offsets are relative to the data section.
struct TensorEntry {
  std::string name;
  DType dtype = f32;
  Shape shape;
  uint64_t begin = 0, end = 0;
};

uint64_t read_header_length(const InputFile& file, const FileErrors& err) {
  err.check(file.size() >= 8, "file is too small (", file.size(), " bytes) to be safetensors");
  unsigned char bytes[8];
  read_all_at(file.fd(), bytes, 8, 0, err);
  uint64_t length = 0;
  for (int i = 0; i < 8; ++i) length |= static_cast<uint64_t>(bytes[i]) << (8 * i);
  err.check(length <= kMaxHeaderBytes, "header length ", length, " exceeds the limit of ", kMaxHeaderBytes,
            " bytes (not a safetensors file?)");
  err.check(length <= file.size() - 8, "header length ", length, " is larger than the rest of the file (",
            file.size() - 8, " bytes; truncated?)");
  return length;
}

// Parses the header text, refusing duplicate tensor names (JSON would keep only the last)
// and nesting deeper than any valid header has.
Json parse_header(const std::string& text, const FileErrors& err) {
  std::set<std::string> names;
  auto guard = [&](int depth, Json::parse_event_t event, Json& parsed) {
    err.check(depth <= kMaxHeaderDepth, "header is nested deeper than a safetensors header can be");
    if (event == Json::parse_event_t::key && depth == 1)
      err.check(names.insert(parsed.get<std::string>()).second, "header names '", parsed.get<std::string>(),
                "' twice");
    return true;
  };
  Json header;
  try {
    header = Json::parse(text, guard);
  } catch (const Json::exception& e) {
    err.fail("header is not valid JSON (", e.what(), ")");
  }
  err.check(header.is_object(), "header must be a JSON object, got ", header.type_name());
  return header;
}

std::map<std::string, std::string> parse_metadata(const Json& value, const FileErrors& err) {
  err.check(value.is_object(), "'", kMetadataKey, "' must be an object of strings, got ", value.type_name());
  std::map<std::string, std::string> metadata;
  for (const auto& [key, v] : value.items()) {
    err.check(v.is_string(), "metadata '", key, "' must be a string, got ", v.type_name());
    metadata[key] = v.get<std::string>();
  }
  return metadata;
}

DType parse_dtype(const Json& entry, const std::string& name, const FileErrors& err) {
  const auto it = entry.find("dtype");
  err.check(it != entry.end() && it->is_string(), "tensor '", name, "': 'dtype' must be a string");
  const std::string dtype = it->get<std::string>();
  const std::optional<DType> t = dtype_from_safetensors_name(dtype);
  err.check(t.has_value(), "tensor '", name, "': unsupported dtype '", dtype,
            "' (kiln reads F32, F64, I64, BF16, F16 and BOOL)");
  return *t;
}

// Sizes must be non-negative int64s whose running product (the element count, as
// numel_of computes it) and byte size fit in int64. So must the product of the non-zero
// sizes: a tensor with a zero size has no elements but still has strides, and those of
// [0, 2^62, 4] would overflow (tests/test_fuzz_regressions.cpp).
Shape parse_shape(const Json& entry, const std::string& name, DType dtype, const FileErrors& err) {
  const auto it = entry.find("shape");
  err.check(it != entry.end() && it->is_array(), "tensor '", name, "': 'shape' must be an array");
  Shape shape;
  uint64_t numel = 1, nonzero_product = 1;
  for (const Json& size : *it) {
    err.check(size.is_number_integer(), "tensor '", name, "': shape sizes must be integers, got ", size.dump());
    err.check(size.is_number_unsigned(), "tensor '", name, "': negative size ", size.dump(), " in shape");
    const uint64_t s = size.get<uint64_t>();
    err.check(s <= kMaxInt64 && (s == 0 || numel <= kMaxInt64 / s), "tensor '", name, "': shape ", it->dump(),
              " has too many elements");
    numel *= s;
    const uint64_t extent = std::max<uint64_t>(s, 1);  // contiguous strides count a zero size as 1
    err.check(nonzero_product <= kMaxInt64 / extent, "tensor '", name, "': shape ", it->dump(),
              " has sizes too large to index (their product, zeros left out, overflows int64)");
    nonzero_product *= extent;
    shape.push_back(static_cast<int64_t>(s));
  }
  err.check(numel <= kMaxInt64 / element_size(dtype), "tensor '", name, "': shape ", it->dump(),
            " has too many bytes");
  return shape;
}

TensorEntry parse_entry(const std::string& name, const Json& entry, uint64_t data_size, const FileErrors& err) {
  err.check(entry.is_object(), "tensor '", name, "': entry must be an object, got ", entry.type_name());
  TensorEntry e{.name = name, .dtype = parse_dtype(entry, name, err), .shape = {}};
  e.shape = parse_shape(entry, name, e.dtype, err);

  const auto it = entry.find("data_offsets");
  err.check(it != entry.end() && it->is_array() && it->size() == 2 && (*it)[0].is_number_unsigned() &&
                (*it)[1].is_number_unsigned(),
            "tensor '", name, "': 'data_offsets' must be two non-negative integers");
  e.begin = (*it)[0].get<uint64_t>();
  e.end = (*it)[1].get<uint64_t>();
  err.check(e.begin <= e.end, "tensor '", name, "': data_offsets ", it->dump(), " end before they begin");
  err.check(e.end <= data_size, "tensor '", name, "': data_offsets ", it->dump(), " reach past the data section (",
            data_size, " bytes; truncated?)");
  const uint64_t nbytes = numel_of(e.shape) * element_size(e.dtype);
  err.check(e.end - e.begin == nbytes, "tensor '", name, "': data_offsets ", it->dump(), " hold ", e.end - e.begin,
            " bytes, but ", safetensors_dtype_name(e.dtype), shape_str(e.shape), " needs ", nbytes);
  return e;
}

// The spec requires the tensors to tile the data section exactly: no byte shared by two
// tensors (a write to one would change the other) and none owned by no tensor (room for
// a hidden payload).
void check_tiling(const std::vector<TensorEntry>& entries, uint64_t data_size, const FileErrors& err) {
  std::vector<const TensorEntry*> by_offset;
  for (const TensorEntry& e : entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorEntry* a, const TensorEntry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t covered = 0;
  const TensorEntry* previous = nullptr;
  for (const TensorEntry* e : by_offset) {
    err.check(e->begin >= covered, "tensors '", previous ? previous->name : "", "' and '", e->name,
              "' overlap in the data section");
    err.check(e->begin == covered, "bytes [", covered, ", ", e->begin, ") of the data section belong to no tensor");
    covered = e->end;
    previous = e;
  }
  err.check(covered == data_size, "the data section has ", data_size, " bytes but its tensors cover ", covered);
}

}  // namespace

SafetensorsFile load_safetensors(const std::string& path) {
  const FileErrors err{"load_safetensors", path};
  const InputFile file(err);
  const uint64_t header_length = read_header_length(file, err);
  std::string header_text(header_length, '\0');
  read_all_at(file.fd(), header_text.data(), header_length, 8, err);
  const Json header = parse_header(header_text, err);

  const uint64_t data_start = 8 + header_length;
  const uint64_t data_size = file.size() - data_start;
  SafetensorsFile out;
  std::vector<TensorEntry> entries;
  for (const auto& [name, value] : header.items()) {
    if (name == kMetadataKey) out.metadata = parse_metadata(value, err);
    else entries.push_back(parse_entry(name, value, data_size, err));
  }
  check_tiling(entries, data_size, err);

  // Every size is now known to lie within the file, so no allocation exceeds its size.
  for (const TensorEntry& e : entries) {
    Tensor t = empty(e.shape, {.dtype = e.dtype});
    read_all_at(file.fd(), t.raw_data(), e.end - e.begin, data_start + e.begin, err);
    out.tensors.emplace_back(e.name, std::move(t));
  }
  return out;
}

}  // namespace kiln
