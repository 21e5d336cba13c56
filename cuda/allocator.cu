// The CUDA caching allocator (see memory.h for why one is needed).
//
// Every request is rounded up to a size class; a freed block goes to its class's free
// list and the next request of that class takes it back, with no CUDA call. Classes:
// multiples of 512 bytes up to 1 MiB, above that 8 classes per power of two (so a block
// is at most 12.5% larger than asked). A training step asks for the same sizes every
// iteration, so after the first step every request is a cache hit.
//
// Stream order makes the reuse safe without events: all kiln work on a device runs on
// its one stream (stream.h). When the host frees a block, kernels that read or write it
// may still be queued; the block's next owner can only queue work behind them.
//
// When cudaMalloc fails, the allocator returns its cached blocks to CUDA and tries once
// more; if that fails too, the error names the request and the allocator's figures.
//
// Two debugging aids, read from the environment once:
// - KILN_CUDA_FILL_UNINITIALIZED=1: every block handed out (new or cached) is first filled
//   with 0xff bytes, NaN as floats, as PyTorch's fill_uninitialized_memory does. A kernel
//   that reads memory nobody wrote, or leaves part of its output unwritten, then gives NaN
//   at once instead of whatever the block held before.
// - KILN_CUDA_NO_CACHING=1: no cache and no rounding, as with PyTorch's
//   PYTORCH_NO_CUDA_MEMORY_CACHING (which uses cudaMalloc/cudaFree). Every tensor gets its
//   own allocation of exactly its size (cudaMallocAsync on the device's stream) and gives it
//   back when freed (cudaFreeAsync, after the work already queued, so no host wait; CUDA's
//   pool returns the memory to the device at the next synchronisation). A kernel that
//   reads or writes past its buffer then leaves the allocation, where compute-sanitizer's
//   memcheck (.ci/gpu memcheck) or the emulator's guard pages (tools/cuda_emulator/suite.sh
//   --guard) see it; inside a rounded, cached block it would go unnoticed.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "kiln/core/error.h"
#include "kiln/core/storage.h"
#include "kiln/cuda/check.h"
#include "kiln/cuda/memory.h"
#include "kiln/cuda/stream.h"

namespace kiln::cuda {

namespace {

constexpr size_t kGranule = 512;             // cudaMalloc aligns to 256; every block is a multiple of 512
constexpr size_t kFineLimit = size_t(1) << 20;  // up to here classes are kGranule apart
constexpr int kClassesPerOctave = 8;          // above it, 8 classes per power of two

size_t size_class(size_t nbytes) {
  if (nbytes <= kFineLimit) return (nbytes + kGranule - 1) / kGranule * kGranule;
  int top = 0;  // floor(log2(nbytes))
  while ((nbytes >> (top + 1)) != 0) ++top;
  const size_t step = size_t(1) << (top - 3);  // 2^top / kClassesPerOctave
  static_assert(kClassesPerOctave == 8, "step above assumes 8 classes per octave");
  return (nbytes + step - 1) / step * step;
}

// "12.5 MiB", "3.0 GiB": the unit that keeps the number readable, one decimal.
std::string format_bytes(int64_t bytes) {
  char text[64];
  const double b = static_cast<double>(bytes);
  if (b >= double(1 << 30)) std::snprintf(text, sizeof text, "%.1f GiB", b / double(1 << 30));
  else if (b >= double(1 << 20)) std::snprintf(text, sizeof text, "%.1f MiB", b / double(1 << 20));
  else std::snprintf(text, sizeof text, "%lld bytes", static_cast<long long>(bytes));
  return text;
}

// A switch set in the environment to anything but "" or "0".
bool env_switch(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && v[0] != '\0' && std::strcmp(v, "0") != 0;
}

bool fill_uninitialized() {
  static const bool fill = env_switch("KILN_CUDA_FILL_UNINITIALIZED");
  return fill;
}

struct DeviceCache {
  std::unordered_map<size_t, std::vector<void*>> free_blocks;  // size class -> cached blocks
  std::unordered_map<void*, size_t> live_blocks;               // block -> its size class
  MemoryStats stats;
  // The device's stream, kept at the first allocation so that free() (noexcept, and run
  // by destructors as late as the process's exit) never has to look it up.
  cudaStream_t stream = nullptr;
};

class CachingAllocator {
 public:
  void* allocate(size_t nbytes, int device) {
    const bool caching = caching_enabled();
    const size_t size = caching ? size_class(nbytes) : std::max<size_t>(nbytes, 1);
    set_device(device);  // checks the index before it sizes any table
    std::lock_guard<std::mutex> lock(mutex_);
    DeviceCache& cache = device_cache(device);
    if (cache.stream == nullptr) cache.stream = stream(device);
    void* block = nullptr;
    auto cached = cache.free_blocks.find(size);
    if (caching && cached != cache.free_blocks.end() && !cached->second.empty()) {
      block = cached->second.back();
      cached->second.pop_back();
      ++cache.stats.cache_hits;
    } else {
      block = device_malloc(size, nbytes, device, cache);
      ++cache.stats.device_allocs;
      cache.stats.reserved += static_cast<int64_t>(size);
      cache.stats.peak_reserved = std::max(cache.stats.peak_reserved, cache.stats.reserved);
    }
    if (fill_uninitialized()) KILN_CUDA_CHECK(cudaMemsetAsync(block, 0xff, size, cache.stream));
    cache.live_blocks.emplace(block, size);
    cache.stats.allocated += static_cast<int64_t>(size);
    cache.stats.peak_allocated = std::max(cache.stats.peak_allocated, cache.stats.allocated);
    return block;
  }

  // Runs in Storage's destructor, so it must not throw.
  void free(void* block, int device) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    DeviceCache& cache = device_cache(device);
    auto live = cache.live_blocks.find(block);
    if (live == cache.live_blocks.end()) {
      // A pointer this allocator never handed out: a bug in kiln. Keep going (leaking
      // is better than corrupting the cache) but say so.
      std::fprintf(stderr, "kiln: cuda allocator asked to free %p on cuda:%d, which it does not own\n", block, device);
      return;
    }
    cache.stats.allocated -= static_cast<int64_t>(live->second);
    if (caching_enabled()) {
      cache.free_blocks[live->second].push_back(block);
    } else {
      // Without the cache the block goes back in stream order. A failure leaks it (and
      // `reserved` keeps counting it); at the process's exit, when the runtime is already
      // unloading, that is expected and not worth a line per tensor.
      const cudaError_t error = cudaFreeAsync(block, cache.stream);
      if (error == cudaSuccess) cache.stats.reserved -= static_cast<int64_t>(live->second);
      else if (error != cudaErrorCudartUnloading)
        std::fprintf(stderr, "kiln: cudaFreeAsync of %p on cuda:%d failed: %s\n", block, device,
                     cudaGetErrorString(error));
    }
    cache.live_blocks.erase(live);
  }

  MemoryStats stats(int device) {
    std::lock_guard<std::mutex> lock(mutex_);
    return static_cast<size_t>(device) < caches_.size() ? caches_[device].stats : MemoryStats{};
  }

  void reset_peaks(int device) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (static_cast<size_t>(device) >= caches_.size()) return;  // never used: nothing to reset
    MemoryStats& s = caches_[device].stats;
    s.peak_allocated = s.allocated;
    s.peak_reserved = s.reserved;
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (DeviceCache& cache : caches_) release_cached(cache);
  }

 private:
  DeviceCache& device_cache(int device) {
    if (caches_.size() <= static_cast<size_t>(device)) caches_.resize(device + 1);
    return caches_[device];
  }

  // cudaFree on every cached block of a device, once the stream's queued work (which may
  // still use a cached block) is done. cudaFree would wait for the device too, but CUDA only
  // says it "may" synchronise; this runs on out-of-memory and empty_cache() only.
  static void release_cached(DeviceCache& cache) {
    if (cache.stream == nullptr) return;  // this device never allocated: nothing cached
    KILN_CUDA_CHECK(wait_for(cache.stream));
    for (auto& [size, blocks] : cache.free_blocks) {
      for (void* block : blocks) {
        KILN_CUDA_CHECK(cudaFree(block));
        cache.stats.reserved -= static_cast<int64_t>(size);
      }
      blocks.clear();
    }
  }

  // cudaMalloc, or without the cache cudaMallocAsync, queued on the device's stream like the
  // cudaFreeAsync that gives it back.
  static cudaError_t malloc_on(void** block, size_t size, const DeviceCache& cache) {
    return caching_enabled() ? cudaMalloc(block, size) : cudaMallocAsync(block, size, cache.stream);
  }

  void* device_malloc(size_t size, size_t requested, int device, DeviceCache& cache) {
    void* block = nullptr;
    cudaError_t error = malloc_on(&block, size, cache);
    if (error == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();  // clear it before trying again
      release_cached(cache);
      error = malloc_on(&block, size, cache);
    }
    if (error == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      size_t free_bytes = 0, total_bytes = 0;
      (void)cudaMemGetInfo(&free_bytes, &total_bytes);
      (void)cudaGetLastError();
      throw Error(kiln::detail::str("CUDA out of memory: tried to allocate ", format_bytes(static_cast<int64_t>(requested)),
                                    " on cuda:", device, " (kiln: ", format_bytes(cache.stats.allocated), " allocated, ",
                                    format_bytes(cache.stats.reserved), " reserved; device: ",
                                    format_bytes(static_cast<int64_t>(free_bytes)), " free of ",
                                    format_bytes(static_cast<int64_t>(total_bytes)), ")"));
    }
    KILN_CUDA_CHECK(error);
    return block;
  }

  std::mutex mutex_;
  std::vector<DeviceCache> caches_;
};

CachingAllocator& allocator() {
  // Never destroyed: tensors in static objects may be freed after this file's statics
  // would be, and cudaFree during the runtime's own teardown fails anyway; the process
  // exit returns the memory.
  static CachingAllocator* a = new CachingAllocator;
  return *a;
}

}  // namespace

MemoryStats memory_stats(int device) {
  KILN_CHECK(device >= 0, "cuda::memory_stats: device index ", device, " is negative");
  return allocator().stats(device);
}

void reset_peak_memory_stats(int device) {
  KILN_CHECK(device >= 0, "cuda::reset_peak_memory_stats: device index ", device, " is negative");
  allocator().reset_peaks(device);
}

void empty_cache() { allocator().empty_cache(); }

bool caching_enabled() {
  static const bool caching = !env_switch("KILN_CUDA_NO_CACHING");
  return caching;
}

}  // namespace kiln::cuda

// Storage (core/storage.h) allocates device memory through these two functions. core/
// declares them and the backend defines them (cuda/without_cuda.cpp in a CPU-only
// build), so core needs no CUDA header and every program links the allocator.
namespace kiln {

void* cuda_allocate(size_t nbytes, int device) { return cuda::allocator().allocate(nbytes, device); }

void cuda_free(void* block, size_t, int device) noexcept { cuda::allocator().free(block, device); }

}  // namespace kiln
