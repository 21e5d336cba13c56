// The CUDA runtime and cuBLAS calls of kiln's backend files (allocator.cu, stream.cu, copy.cu,
// event.cu, device.cu, blas.cu), for tools/cuda_emulator/suite.sh: with them the whole library
// and its [cuda] tests build with the backend emulated on the CPU (cpemu.h includes this file).
//
// The model: one device, "cuda:0".
// - Streams are queues. A launch, copy, memset, GEMM or event record is queued on its stream
//   and runs only when the host waits for it (cudaStreamSynchronize, cudaEventSynchronize,
//   cudaFree, a synchronous cudaMemcpy on the legacy default stream), as late as CUDA
//   allows. So a host read that does not wait for the work that writes the value reads a
//   stale value here, as it may on a GPU. Streams are never implicitly ordered with each
//   other: kiln's are created non-blocking, so the legacy default stream (nullptr) is one
//   more independent queue; cudaStreamWaitEvent runs the event's stream up to the event.
// - Device memory is one reserved range that the host cannot touch outside the device's
//   work: it is opened while queued work runs and closed again after, so host code that
//   reads or writes a device pointer (an op that runs its CPU kernel on CUDA storage, say)
//   faults here, with a message naming the address, as it would crash on a GPU.
// - Stricter than CUDA in one place: a copy to pageable host memory is queued like any
//   other (CUDA returns from it only when it is done), so the host must wait before reading.
// - New device memory holds 0xff bytes (NaN), not zeros: CUDA does not clear it.
// - Guard mode (CPEMU_GUARD=back or front; suite.sh --guard, with kiln's
//   KILN_CUDA_NO_CACHING=1 so that each tensor is an allocation of its own): every
//   allocation gets pages of its own, its end (back) or its start (front) against a guard
//   page, 16-byte aligned, and no address is used twice. An access past a block's end (or
//   before its start), or to a freed block, faults, and the message names the block and
//   the distance. In this mode memory stays open to the host: the default mode checks that.
// - Host-mapped (cudaHostAlloc) memory is host memory that kernels may write.
// - Events read the host clock when their record runs; cuBLAS's strided-batched GEMMs are
//   host loops (column-major, as cuBLAS) accumulating in float (double for f64).
// - Errors are modelled where kiln's tests provoke them: a device index other than 0, and
//   allocations the emulated device's memory (kCpemuDeviceBytes) cannot hold.
// Not modelled: concurrency between streams or with the host (the queues run on the waiting
// thread), the blocking-stream flag (every stream behaves as non-blocking), GPU math.
#pragma once

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <type_traits>

#include <execinfo.h>
#include <signal.h>
#include <unistd.h>

// ---- errors -----------------------------------------------------------------------------------

inline const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorCudartUnloading: return "cudaErrorCudartUnloading";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
  }
  return "cudaErrorUnknown";
}
inline const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorCudartUnloading: return "driver shutting down";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
  }
  return "unknown error";
}

// ---- devices ----------------------------------------------------------------------------------

inline thread_local int cpemu_current_device = 0;

inline cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int device) {
  if (device != 0) return cpemu_fail(cudaErrorInvalidDevice);
  cpemu_current_device = device;
  return cudaSuccess;
}
inline cudaError_t cudaGetDevice(int* device) {
  *device = cpemu_current_device;
  return cudaSuccess;
}
struct cudaDeviceProp {
  char name[256];
};
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* props, int device) {
  if (device != 0) return cpemu_fail(cudaErrorInvalidDevice);
  std::strcpy(props->name, "cpemu (CUDA emulated on the CPU)");
  return cudaSuccess;
}

// ---- streams: queues of work, run when the host waits ------------------------------------------

namespace cpemu {

struct Stream {
  std::deque<std::function<void()>> work;
};

struct Runtime {
  std::recursive_mutex mutex;  // held while queuing and while queued work runs
  Stream legacy;               // the legacy default stream (nullptr)
  std::vector<Stream*> created;  // by cudaStreamCreateWithFlags
};
inline Runtime& runtime() {
  static Runtime* r = new Runtime;  // never destroyed: work may be queued at exit
  return *r;
}
inline Stream& stream_of(cudaStream_t s) { return s ? *static_cast<Stream*>(s) : runtime().legacy; }

inline void open_device_memory();
inline void close_device_memory();
inline void install_access_handler();

// Queuing also makes sure the access handler is ours: doctest installs its own at each test
// case's start, and a case may reach a host access without any wait before it.
inline void enqueue(cudaStream_t s, std::function<void()> work) {
  std::lock_guard<std::recursive_mutex> lock(runtime().mutex);
  install_access_handler();
  stream_of(s).work.push_back(std::move(work));
}

// Runs the stream's queued work in order: all of it, or up to and including the item after
// which `done()` holds (an event's record).
template <class Done>
void run_stream(Stream& stream, Done done) {
  std::lock_guard<std::recursive_mutex> lock(runtime().mutex);
  if (stream.work.empty()) return;
  open_device_memory();
  while (!stream.work.empty() && !done()) {
    std::function<void()> item = std::move(stream.work.front());
    stream.work.pop_front();
    item();
  }
  close_device_memory();
}
inline void run_stream(Stream& stream) {
  run_stream(stream, [] { return false; });
}

// ---- device memory: one reserved range, closed to the host outside the device's work --------

// Guard mode (see the file comment), read once from CPEMU_GUARD: "back" or "1" puts each
// block's end against a guard page, "front" its start.
enum class Guard { off, back, front };
inline Guard guard_mode() {
  static const Guard mode = [] {
    const char* v = std::getenv("CPEMU_GUARD");
    if (v == nullptr || v[0] == '\0' || std::strcmp(v, "0") == 0) return Guard::off;
    return std::strcmp(v, "front") == 0 ? Guard::front : Guard::back;
  }();
  return mode;
}
inline size_t page_bytes() {
  static const size_t bytes = size_t(sysconf(_SC_PAGESIZE));
  return bytes;
}
// Guard mode never reuses an address, so it reserves far more addresses than the device
// has bytes (reserved, not committed; kCpemuDeviceBytes still bounds what is live).
constexpr size_t kGuardArenaBytes = size_t(1) << 42;
inline size_t arena_bytes() { return guard_mode() == Guard::off ? kCpemuDeviceBytes : kGuardArenaBytes; }
inline size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

struct DeviceMemory {
  unsigned char* base = nullptr;
  std::map<size_t, size_t> free_ranges;  // offset -> bytes, coalesced
  std::map<size_t, size_t> live;         // offset -> bytes, for cudaFree and fault messages
  size_t used = 0;
  size_t high_water = 0;                 // end of the highest block ever handed out, page-rounded
  size_t next_region = 0;                // guard mode: where the next block's pages start
  std::map<size_t, size_t> requested;    // guard mode: offset -> the bytes asked for (live ones)
  bool open = false;                     // while queued work runs
  struct sigaction chained {};           // the SIGSEGV handler ours replaced
};
inline DeviceMemory& device_memory();

// Where a faulting offset lies, in guard mode: in the guard page of a live block (back: the
// page after the block below it ends; front: the page before the block above it starts),
// or in no live block. Distances and sizes are the ones asked for (a block is rounded up to
// 16 bytes, so an access less than that past the end goes unseen).
inline int describe_guard_fault(const DeviceMemory& m, size_t offset, char* msg, size_t size) {
  const size_t page = page_bytes();
  if (offset >= m.next_region)
    return std::snprintf(msg, size, "above every block ever allocated");
  auto above = m.live.upper_bound(offset);
  if (guard_mode() == Guard::back && above != m.live.begin()) {
    const auto& [start, bytes] = *std::prev(above);
    const size_t asked = m.requested.at(start);
    if (offset >= start + bytes && offset < round_up(start + bytes, page) + page)
      return std::snprintf(msg, size, "%zu bytes past the end of a %zu-byte block (its guard page)",
                           offset - (start + asked), asked);
  }
  if (guard_mode() == Guard::front && above != m.live.end() && offset + page >= above->first)
    return std::snprintf(msg, size, "%zu bytes before the start of a %zu-byte block (its guard page; or past the "
                         "end of the block below)", above->first - offset, m.requested.at(above->first));
  return std::snprintf(msg, size, "in no live block: one already freed (a use after free?)");
}

// A fault in device memory. With the memory closed it is the host's access: say which block
// it hit and where the host was. With it open, queued work (a kernel, copy or GEMM) went
// past every block ever handed out. Then the fault repeats under the handler ours replaced
// (doctest's names the test case); a second pass, or a signal sent rather than raised by
// the hardware, goes to the default action, so no chain of handlers can loop.
inline void on_host_access(int sig, siginfo_t* info, void*) {
  static std::atomic<bool> passed_on{false};
  DeviceMemory& m = device_memory();
  const auto* at = static_cast<const unsigned char*>(info->si_addr);
  const bool fault = info->si_code > 0;  // raised by the hardware, not sent by kill/raise
  if (fault && at >= m.base && at < m.base + arena_bytes()) {
    const size_t offset = size_t(at - m.base);
    auto a = m.live.upper_bound(offset);
    const bool in_block = a != m.live.begin() && offset < std::prev(a)->first + std::prev(a)->second;
    char msg[360], where[160];
    int n = 0;
    if (guard_mode() != Guard::off) {
      describe_guard_fault(m, offset, where, sizeof where);
      n = std::snprintf(msg, sizeof msg, "\ncpemu: GUARD: %s touched device memory at %p, %s. Host stack:\n",
                        m.open ? "queued device work (a kernel, copy or GEMM)" : "the host", info->si_addr, where);
    } else if (m.open)
      n = std::snprintf(msg, sizeof msg, "\ncpemu: queued DEVICE work (a kernel, copy or GEMM) touched %p, past every "
                        "block ever allocated: an out-of-bounds access. Host stack:\n", info->si_addr);
    else if (in_block)
      n = std::snprintf(msg, sizeof msg, "\ncpemu: the HOST touched device memory at %p, byte %zu of a %zu-byte "
                        "cudaMalloc block, outside any kernel, copy or GEMM; on a GPU this is an illegal access. "
                        "Host stack:\n", info->si_addr, offset - std::prev(a)->first, std::prev(a)->second);
    else
      n = std::snprintf(msg, sizeof msg, "\ncpemu: the HOST touched device memory at %p (no live block there) "
                        "outside any kernel, copy or GEMM; on a GPU this is an illegal access. Host stack:\n",
                        info->si_addr);
    if (write(2, msg, size_t(n)) < 0) {}
    void* frames[40];
    backtrace_symbols_fd(frames, backtrace(frames, 40), 2);
  }
  struct sigaction next = m.chained;
  if (passed_on.exchange(true) || ((next.sa_flags & SA_SIGINFO) && next.sa_sigaction == on_host_access)) {
    next = {};
    next.sa_handler = SIG_DFL;
  }
  sigaction(sig, &next, nullptr);
  if (!fault) raise(sig);  // returning from a fault re-runs the access, under `next`
}

inline void install_access_handler() {
  DeviceMemory& m = device_memory();
  struct sigaction current {};
  sigaction(SIGSEGV, nullptr, &current);
  if ((current.sa_flags & SA_SIGINFO) && current.sa_sigaction == on_host_access) return;
  m.chained = current;
  struct sigaction ours {};
  ours.sa_sigaction = on_host_access;
  ours.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&ours.sa_mask);
  sigaction(SIGSEGV, &ours, nullptr);
}

inline DeviceMemory& device_memory() {
  static DeviceMemory* m = [] {
    auto* d = new DeviceMemory;
    // Reserved, not committed: pages cost memory only once written.
    void* p = mmap(nullptr, arena_bytes(), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) die("cannot reserve the emulated device memory");
    d->base = static_cast<unsigned char*>(p);
    d->free_ranges[0] = kCpemuDeviceBytes;
    void* warm[1];
    backtrace(warm, 1);  // loads libgcc's unwinder now, not first inside the fault handler
    return d;
  }();
  return *m;
}

// Only up to the high-water mark: above it nothing was ever handed out, and it stays closed.
// In guard mode live blocks stay open and everything else closed, always.
inline void open_device_memory() {
  DeviceMemory& m = device_memory();
  if (guard_mode() == Guard::off && m.high_water && mprotect(m.base, m.high_water, PROT_READ | PROT_WRITE))
    die("mprotect failed");
  m.open = true;
}
inline void close_device_memory() {
  DeviceMemory& m = device_memory();
  if (guard_mode() == Guard::off && m.high_water && mprotect(m.base, m.high_water, PROT_NONE)) die("mprotect failed");
  m.open = false;
  install_access_handler();
}

// Guard mode: the block's own pages, opened, after the last block's; a closed page stays
// between them (back: after this block's end; front: before its start).
inline void* guarded_alloc(size_t n) {
  DeviceMemory& m = device_memory();
  const size_t page = page_bytes();
  const size_t bytes = std::max<size_t>(round_up(n, 16), 16), pages = round_up(bytes, page);
  if (m.used + bytes > kCpemuDeviceBytes) return nullptr;
  if (m.next_region + pages + page > kGuardArenaBytes) die("guard mode used up its address range");
  const size_t first_page = m.next_region + (guard_mode() == Guard::front ? page : 0);
  const size_t offset = guard_mode() == Guard::front ? first_page : first_page + pages - bytes;
  m.next_region += pages + page;
  // Each live block is a mapping of its own: vm.max_map_count (65530 by default) bounds them.
  if (mprotect(m.base + first_page, pages, PROT_READ | PROT_WRITE)) die("mprotect failed (too many blocks live?)");
  m.live[offset] = bytes;
  m.requested[offset] = n;
  m.used += bytes;
  return m.base + offset;
}
// Guard mode: the block's pages are closed for good (and their memory given back).
inline void guarded_free(size_t offset, size_t bytes) {
  DeviceMemory& m = device_memory();
  m.requested.erase(offset);
  const size_t page = page_bytes(), lo = offset / page * page, hi = round_up(offset + bytes, page);
  if (mprotect(m.base + lo, hi - lo, PROT_NONE)) die("mprotect failed");
  madvise(m.base + lo, hi - lo, MADV_DONTNEED);
}

// First fit over the free ranges; every block a multiple of 256 bytes, so every block starts
// 256-byte aligned, as cudaMalloc's.
inline void* device_alloc(size_t n) {
  if (guard_mode() != Guard::off) return guarded_alloc(n);
  DeviceMemory& m = device_memory();
  const size_t bytes = std::max<size_t>((n + 255) / 256 * 256, 256);
  for (auto it = m.free_ranges.begin(); it != m.free_ranges.end(); ++it) {
    if (it->second < bytes) continue;
    const size_t offset = it->first, left = it->second - bytes;
    m.free_ranges.erase(it);
    if (left) m.free_ranges[offset + bytes] = left;
    m.live[offset] = bytes;
    m.used += bytes;
    m.high_water = std::max(m.high_water, (offset + bytes + 4095) / 4096 * 4096);
    return m.base + offset;
  }
  return nullptr;
}
inline bool device_free(void* p) {
  DeviceMemory& m = device_memory();
  const auto live = m.live.find(size_t(static_cast<unsigned char*>(p) - m.base));
  if (live == m.live.end()) return false;
  size_t offset = live->first, bytes = live->second;
  m.live.erase(live);
  m.used -= bytes;
  if (guard_mode() != Guard::off) {
    guarded_free(offset, bytes);
    return true;
  }
  // Merge with the free neighbours, then give the merged range's whole pages back to the OS.
  auto next = m.free_ranges.lower_bound(offset);
  if (next != m.free_ranges.end() && next->first == offset + bytes) {
    bytes += next->second;
    next = m.free_ranges.erase(next);
  }
  if (next != m.free_ranges.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == offset) {
      offset = prev->first;
      bytes += prev->second;
      m.free_ranges.erase(prev);
    }
  }
  m.free_ranges[offset] = bytes;
  const size_t page = 4096, lo = (offset + page - 1) / page * page, hi = (offset + bytes) / page * page;
  if (hi > lo) madvise(m.base + lo, hi - lo, MADV_DONTNEED);
  return true;
}
inline bool is_device(const void* p) {
  const auto* b = static_cast<const unsigned char*>(p);
  return b >= device_memory().base && b < device_memory().base + arena_bytes();
}

// Host-mapped allocations (cudaHostAlloc): an async copy from one reads it when it runs.
inline std::map<const unsigned char*, size_t>& pinned() {
  static auto* p = new std::map<const unsigned char*, size_t>;
  return *p;
}
inline bool is_pinned(const void* p) {
  const auto* b = static_cast<const unsigned char*>(p);
  auto it = pinned().upper_bound(b);
  return it != pinned().begin() && b < std::prev(it)->first + std::prev(it)->second;
}

// Waits for all queued work, as cudaDeviceSynchronize (and cudaFree) do.
inline void run_all_streams() {
  std::lock_guard<std::recursive_mutex> lock(runtime().mutex);
  run_stream(runtime().legacy);
  for (Stream* s : runtime().created) run_stream(*s);
}

}  // namespace cpemu

// ---- memory -----------------------------------------------------------------------------------

constexpr unsigned cudaHostAllocPortable = 1, cudaHostAllocMapped = 2;
inline cudaError_t cudaHostAlloc(void** p, size_t n, unsigned) {
  std::lock_guard<std::recursive_mutex> lock(cpemu::runtime().mutex);
  *p = std::malloc(n ? n : 1);
  cpemu::pinned()[static_cast<const unsigned char*>(*p)] = n;
  return cudaSuccess;
}
inline cudaError_t cudaHostGetDevicePointer(void** device, void* host, unsigned) {
  *device = host;  // the same address on both sides, as with unified addressing
  return cudaSuccess;
}
// New blocks are filled with 0xff bytes (NaN as floats, -1 as integers): CUDA leaves fresh
// memory uninitialised, so a kernel that reads what nobody wrote (accumulates into an
// output it did not zero, say) must not see the zeros of fresh host pages.
inline cudaError_t cudaMalloc(void** p, size_t n) {
  std::lock_guard<std::recursive_mutex> lock(cpemu::runtime().mutex);
  *p = n > kCpemuDeviceBytes ? nullptr : cpemu::device_alloc(n);
  if (*p == nullptr) return cpemu_fail(cudaErrorMemoryAllocation);
  cpemu::open_device_memory();
  std::memset(*p, 0xff, n);
  cpemu::close_device_memory();
  return cudaSuccess;
}
// cudaFree waits for the whole device first, as CUDA's does.
inline cudaError_t cudaFree(void* p) {
  if (p == nullptr) return cudaSuccess;
  std::lock_guard<std::recursive_mutex> lock(cpemu::runtime().mutex);
  cpemu::run_all_streams();
  return cpemu::device_free(p) ? cudaSuccess : cpemu_fail(cudaErrorInvalidValue);
}
// Stream-ordered allocation. The block is ready for work queued after the call; fresh
// blocks come from the same memory as cudaMalloc's.
inline cudaError_t cudaMallocAsync(void** p, size_t n, cudaStream_t) { return cudaMalloc(p, n); }
// The block is released once the work queued before on `s` has run: no host wait.
inline cudaError_t cudaFreeAsync(void* p, cudaStream_t s) {
  if (p == nullptr) return cudaSuccess;
  std::lock_guard<std::recursive_mutex> lock(cpemu::runtime().mutex);
  cpemu::DeviceMemory& m = cpemu::device_memory();
  if (!cpemu::is_device(p) || m.live.count(size_t(static_cast<unsigned char*>(p) - m.base)) == 0)
    return cpemu_fail(cudaErrorInvalidValue);
  cpemu::enqueue(s, [p] {
    if (!cpemu::device_free(p)) cpemu::die("cudaFreeAsync: the block was freed twice");
  });
  return cudaSuccess;
}
inline cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  std::lock_guard<std::recursive_mutex> lock(cpemu::runtime().mutex);
  *total_bytes = kCpemuDeviceBytes;
  *free_bytes = kCpemuDeviceBytes - cpemu::device_memory().used;
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t s) {
  cpemu::enqueue(s, [=] { std::memset(p, v, n); });
  return cudaSuccess;
}
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4
};
// From pageable host memory the bytes are taken when the call is made (CUDA stages them, so
// the caller may reuse its buffer at once); from pinned memory, and from the device, when
// the copy runs.
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  std::lock_guard<std::recursive_mutex> lock(cpemu::runtime().mutex);
  if (!cpemu::is_device(src) && !cpemu::is_pinned(src)) {
    auto staged = std::make_shared<std::vector<unsigned char>>(static_cast<const unsigned char*>(src),
                                                              static_cast<const unsigned char*>(src) + n);
    cpemu::enqueue(s, [=] { std::memcpy(dst, staged->data(), n); });
  } else {
    cpemu::enqueue(s, [=] { std::memmove(dst, src, n); });
  }
  return cudaSuccess;
}
// The synchronous copy runs on the legacy default stream: it waits for that stream's work
// only, not for kiln's non-blocking streams.
inline cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind kind) {
  cudaMemcpyAsync(dst, src, n, kind, nullptr);
  cpemu::run_stream(cpemu::stream_of(nullptr));
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyPeerAsync(void* dst, int, const void* src, int, size_t n, cudaStream_t s) {
  return cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, s);
}

// ---- streams and events -----------------------------------------------------------------------

constexpr unsigned cudaStreamNonBlocking = 1, cudaEventDisableTiming = 2;
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
  std::lock_guard<std::recursive_mutex> lock(cpemu::runtime().mutex);
  auto* stream = new cpemu::Stream;  // never destroyed, as kiln's
  cpemu::runtime().created.push_back(stream);
  *s = stream;
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  cpemu::run_stream(cpemu::stream_of(s));
  return cudaSuccess;
}

// An event is complete when its latest record has run (an earlier record still queued on
// another stream no longer counts, as in CUDA). A destroyed event lives on until its queued
// records have run, as CUDA defers the release.
struct CUevent_st {
  std::chrono::steady_clock::time_point at;
  cpemu::Stream* stream = nullptr;  // the latest record's
  uint64_t recorded = 0;            // the latest record's number (0: never recorded)
  uint64_t completed = 0;           // == recorded once that record has run
  int queued = 0;                   // records queued and not yet run
  bool timing = true, destroyed = false;
};
typedef CUevent_st* cudaEvent_t;
inline cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned flags) {
  *e = new CUevent_st{};
  (*e)->timing = !(flags & cudaEventDisableTiming);
  return cudaSuccess;
}
inline cudaError_t cudaEventCreate(cudaEvent_t* e) { return cudaEventCreateWithFlags(e, 0); }
inline cudaError_t cudaEventDestroy(cudaEvent_t e) {
  std::lock_guard<std::recursive_mutex> lock(cpemu::runtime().mutex);
  if (e->queued) e->destroyed = true;
  else delete e;
  return cudaSuccess;
}
inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  std::lock_guard<std::recursive_mutex> lock(cpemu::runtime().mutex);
  e->stream = &cpemu::stream_of(s);
  const uint64_t number = ++e->recorded;
  ++e->queued;
  cpemu::enqueue(s, [e, number] {
    if (number == e->recorded) {
      e->at = std::chrono::steady_clock::now();
      e->completed = number;
    }
    if (--e->queued == 0 && e->destroyed) delete e;
  });
  return cudaSuccess;
}
// Runs the stream of the event's latest record up to that record.
inline void cpemu_run_to(cudaEvent_t e) {
  std::lock_guard<std::recursive_mutex> lock(cpemu::runtime().mutex);
  if (e->completed != e->recorded) cpemu::run_stream(*e->stream, [e] { return e->completed == e->recorded; });
}
inline cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  cpemu_run_to(e);
  return cudaSuccess;
}
// Work queued on `s` after this may rely on everything before the event: here that work is
// simply run now, one order CUDA allows (so a missing host wait after a cross-stream
// dependency is not caught; kiln makes one only for copies between devices).
inline cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t e, unsigned) {
  cpemu_run_to(e);
  return cudaSuccess;
}
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  std::lock_guard<std::recursive_mutex> lock(cpemu::runtime().mutex);
  if (!start->recorded || !end->recorded || !start->timing || !end->timing)
    return cpemu_fail(cudaErrorInvalidResourceHandle);
  if (start->completed != start->recorded || end->completed != end->recorded) return cpemu_fail(cudaErrorNotReady);
  *ms = std::chrono::duration<float, std::milli>(end->at - start->at).count();
  return cudaSuccess;
}

// ---- cuBLAS -----------------------------------------------------------------------------------

enum cublasStatus_t { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_INVALID_VALUE = 7 };
enum cublasOperation_t { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
enum cudaDataType { CUDA_R_32F = 0, CUDA_R_64F = 1, CUDA_R_16BF = 14 };
enum cublasComputeType_t { CUBLAS_COMPUTE_32F = 68, CUBLAS_COMPUTE_32F_FAST_TF32 = 77 };
enum cublasGemmAlgo_t { CUBLAS_GEMM_DEFAULT = -1 };
struct cublasContext {
  cudaStream_t stream = nullptr;  // until cublasSetStream: the legacy default stream, as cuBLAS's
};
typedef cublasContext* cublasHandle_t;

inline const char* cublasGetStatusName(cublasStatus_t s) {
  return s == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "CUBLAS_STATUS_INVALID_VALUE";
}
inline const char* cublasGetStatusString(cublasStatus_t s) {
  return s == CUBLAS_STATUS_SUCCESS ? "success" : "an invalid value was used as an argument";
}
inline cublasStatus_t cublasCreate(cublasHandle_t* h) {
  *h = new cublasContext;
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) {
  h->stream = s;
  return CUBLAS_STATUS_SUCCESS;
}

namespace cpemu {

inline double load_element(const void* p, cudaDataType t, int64_t i) {
  switch (t) {
    case CUDA_R_32F: return static_cast<const float*>(p)[i];
    case CUDA_R_64F: return static_cast<const double*>(p)[i];
    case CUDA_R_16BF: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
  }
  die("cuBLAS stand-in: unknown data type");
}
inline void store_element(void* p, cudaDataType t, int64_t i, double v) {
  switch (t) {
    case CUDA_R_32F: static_cast<float*>(p)[i] = float(v); return;
    case CUDA_R_64F: static_cast<double*>(p)[i] = v; return;
    case CUDA_R_16BF: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(float(v)); return;
  }
  die("cuBLAS stand-in: unknown data type");
}

// C_b = alpha op(A_b) op(B_b) + beta C_b, column-major, for each batch b; sums in double
// for f64 C and in float otherwise (cuBLAS's compute types). C is not read when beta == 0.
inline void gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, double alpha, const void* A,
                 cudaDataType at, int lda, long long sa, const void* B, cudaDataType bt, int ldb, long long sb,
                 double beta, void* C, cudaDataType ct, int ldc, long long sc, int batch) {
  const bool wide = ct == CUDA_R_64F;
  for (int b = 0; b < batch; ++b)
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < m; ++i) {
        double acc_d = 0;
        float acc_f = 0;
        for (int p = 0; p < k; ++p) {
          const double a = load_element(A, at, sa * b + (ta == CUBLAS_OP_N ? i + int64_t(p) * lda : p + int64_t(i) * lda));
          const double v = load_element(B, bt, sb * b + (tb == CUBLAS_OP_N ? p + int64_t(j) * ldb : j + int64_t(p) * ldb));
          if (wide) acc_d += a * v;
          else acc_f += float(a) * float(v);
        }
        const int64_t c = sc * b + i + int64_t(j) * ldc;
        const double sum = wide ? acc_d : double(acc_f);
        store_element(C, ct, c, alpha * sum + (beta == 0 ? 0.0 : beta * load_element(C, ct, c)));
      }
}

// The call checks its sizes and reads alpha and beta (host pointer mode) at once; the
// product is queued on the handle's stream.
inline cublasStatus_t queue_gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                 double alpha, const void* A, cudaDataType at, int lda, long long sa, const void* B,
                                 cudaDataType bt, int ldb, long long sb, double beta, void* C, cudaDataType ct,
                                 int ldc, long long sc, int batch) {
  // cuBLAS's own checks: sizes, and leading dimensions no smaller than the stored rows.
  if (m < 0 || n < 0 || k < 0 || batch < 0) return CUBLAS_STATUS_INVALID_VALUE;
  if (lda < std::max(1, ta == CUBLAS_OP_N ? m : k) || ldb < std::max(1, tb == CUBLAS_OP_N ? k : n) ||
      ldc < std::max(1, m))
    return CUBLAS_STATUS_INVALID_VALUE;
  enqueue(h->stream, [=] { gemm(ta, tb, m, n, k, alpha, A, at, lda, sa, B, bt, ldb, sb, beta, C, ct, ldc, sc, batch); });
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace cpemu

inline cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                                                 int n, int k, const void* alpha, const void* A, cudaDataType at,
                                                 int lda, long long sa, const void* B, cudaDataType bt, int ldb,
                                                 long long sb, const void* beta, void* C, cudaDataType ct, int ldc,
                                                 long long sc, int batch, cublasComputeType_t, cublasGemmAlgo_t) {
  // alpha and beta are floats for every compute type kiln uses with this call.
  return cpemu::queue_gemm(h, ta, tb, m, n, k, *static_cast<const float*>(alpha), A, at, lda, sa, B, bt, ldb, sb,
                     *static_cast<const float*>(beta), C, ct, ldc, sc, batch);
}
inline cublasStatus_t cublasDgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                                                int n, int k, const double* alpha, const double* A, int lda,
                                                long long sa, const double* B, int ldb, long long sb,
                                                const double* beta, double* C, int ldc, long long sc, int batch) {
  return cpemu::queue_gemm(h, ta, tb, m, n, k, *alpha, A, CUDA_R_64F, lda, sa, B, CUDA_R_64F, ldb, sb, *beta, C, CUDA_R_64F,
                     ldc, sc, batch);
}
