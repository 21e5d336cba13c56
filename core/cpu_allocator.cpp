#include "kiln/core/cpu_allocator.h"

#include <malloc.h>

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <limits>
#include <map>
#include <mutex>
#include <string_view>
#include <vector>

#include "kiln/core/error.h"

// AddressSanitizer, as g++ and clang announce it.
#if defined(__SANITIZE_ADDRESS__)
#define KILN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KILN_ASAN 1
#endif
#endif

#ifdef KILN_ASAN
#include <sanitizer/asan_interface.h>
#define KILN_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define KILN_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define KILN_POISON(p, n) ((void)(p), (void)(n))
#define KILN_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace kiln {

namespace {

constexpr size_t kAlignment = 64;  // one cache line; enough for AVX-512 loads
constexpr size_t kClassesPerDoubling = 8;

size_t round_up(size_t n, size_t multiple) { return (n + multiple - 1) / multiple * multiple; }

// ---- the system side ------------------------------------------------------------------------

// glibc serves blocks above its mmap threshold (dynamic, up to 32 MB) with fresh pages
// and unmaps them on free, and trims the top of its heap when much of it is free, so
// memory that is freed and allocated again page-faults again (measured: softmax on a
// 64 MB tensor ran at 1.4 GB/s instead of 13). The cache spares kiln's own large blocks
// that, but not the kernels' scratch buffers (std::vector, Eigen's temporaries), nor
// everything with the cache off: keeping large blocks in the heap and never trimming it
// lets malloc reuse their pages. Measured on the GPT-2 shape (2 threads, cache on, 8
// steps): 646k minor page faults with this tuning, 809k without, and 1.00 s a step
// against 1.16 s. cpu_empty_cache() hands free heap pages back explicitly (malloc_trim).
void keep_large_blocks_in_heap() {
  static const bool tuned = [] {
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    return true;
  }();
  (void)tuned;
}

void* system_allocate(size_t block_bytes, size_t requested) {
  void* p = std::aligned_alloc(kAlignment, block_bytes);
  KILN_CHECK(p != nullptr, "out of memory: failed to allocate ", requested, " bytes on cpu");
  return p;
}

// ---- the switch -----------------------------------------------------------------------------

bool cache_enabled_by_default() {
#ifdef KILN_ASAN
  return false;  // see cpu_allocator.h: ASan's quarantine must see every free
#else
  const char* env = std::getenv("KILN_CPU_CACHE");
  return env == nullptr || std::string_view(env) != "0";
#endif
}

// ---- the cache ------------------------------------------------------------------------------

// Free blocks by block size, plus the statistics; everything under one mutex.
class BlockCache {
 public:
  BlockCache() { keep_large_blocks_in_heap(); }

  // Fixed for the life of the process, so that a block's size never depends on when it
  // was freed (the cache may be switched on or off in between).
  bool uses_size_classes() const { return uses_size_classes_; }

  void* allocate(size_t nbytes) {
    const size_t block = cpu_block_size(nbytes);
    const bool cacheable = block >= kCpuCacheMinBytes;
    std::lock_guard<std::mutex> lock(mutex_);
    void* p = enabled_ && cacheable ? take_cached(block) : nullptr;
    if (p != nullptr) {
      ++stats_.cache_hits;
    } else {
      stats_.cache_misses += cacheable;
      make_room_for(block);
      p = system_allocate(block, nbytes);
      ++stats_.system_allocs;
      stats_.reserved += static_cast<int64_t>(block);
    }
    stats_.allocated += static_cast<int64_t>(block);
    update_peaks();
    return p;
  }

  void free(void* p, size_t nbytes) {
    const size_t block = cpu_block_size(nbytes);
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.allocated -= static_cast<int64_t>(block);
    if (enabled_ && block >= kCpuCacheMinBytes) {
      KILN_POISON(p, block);
      free_blocks_[block].push_back(p);
      stats_.cached += static_cast<int64_t>(block);
    } else {
      release(p, block);
    }
  }

  CpuMemoryStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

  void reset_peaks() {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.peak_allocated = stats_.allocated;
    stats_.peak_reserved = stats_.reserved;
  }

  void empty() {
    std::lock_guard<std::mutex> lock(mutex_);
    release_all_cached();
    malloc_trim(0);  // the heap keeps freed pages (see keep_large_blocks_in_heap); return them
  }

  bool enabled() {
    std::lock_guard<std::mutex> lock(mutex_);
    return enabled_;
  }

  void set_enabled(bool on) {
    std::lock_guard<std::mutex> lock(mutex_);
    enabled_ = on;
    if (!on) release_all_cached();
  }

 private:
  // A cached block of exactly `block` bytes, or nullptr. Last freed, first reused: its
  // lines are the likeliest to still be in cache.
  void* take_cached(size_t block) {
    const auto it = free_blocks_.find(block);
    if (it == free_blocks_.end()) return nullptr;
    void* p = it->second.back();
    it->second.pop_back();
    if (it->second.empty()) free_blocks_.erase(it);
    stats_.cached -= static_cast<int64_t>(block);
    KILN_UNPOISON(p, block);
    return p;
  }

  // Before the system is asked for `block` more bytes: gives cached blocks back until
  // reserved memory stays within the ceiling (see cpu_allocator.h). Each time the
  // smallest block that covers the excess goes, or the largest if none does: the big
  // blocks a step needs once (the tied embedding's gradient) must not be given up for
  // every small miss, or they would miss in turn.
  void make_room_for(size_t block) {
    const int64_t peak = stats_.lifetime_peak_allocated;
    const int64_t ceiling = std::max(peak + peak / 8, stats_.allocated + static_cast<int64_t>(block));
    while (stats_.cached > 0 && stats_.reserved + static_cast<int64_t>(block) > ceiling) {
      const auto excess = static_cast<size_t>(stats_.reserved + static_cast<int64_t>(block) - ceiling);
      const auto covering = free_blocks_.lower_bound(excess);
      release_cached(covering != free_blocks_.end() ? covering : std::prev(free_blocks_.end()));
    }
  }

  void release_all_cached() {
    while (!free_blocks_.empty()) release_cached(free_blocks_.begin());
  }

  // Returns one block of the size class `it` points at to the system.
  void release_cached(std::map<size_t, std::vector<void*>>::iterator it) {
    const size_t block = it->first;
    void* p = it->second.back();
    it->second.pop_back();
    if (it->second.empty()) free_blocks_.erase(it);
    stats_.cached -= static_cast<int64_t>(block);
    KILN_UNPOISON(p, block);
    release(p, block);
  }

  void release(void* p, size_t block) {
    std::free(p);
    ++stats_.system_frees;
    stats_.reserved -= static_cast<int64_t>(block);
  }

  void update_peaks() {
    stats_.peak_allocated = std::max(stats_.peak_allocated, stats_.allocated);
    stats_.peak_reserved = std::max(stats_.peak_reserved, stats_.reserved);
    stats_.lifetime_peak_allocated = std::max(stats_.lifetime_peak_allocated, stats_.allocated);
  }

  std::mutex mutex_;
  bool enabled_ = cache_enabled_by_default();
  const bool uses_size_classes_ = enabled_;
  std::map<size_t, std::vector<void*>> free_blocks_;  // block size -> free blocks of that size
  CpuMemoryStats stats_;
};

// Never destroyed: tensors in static objects may free their blocks after main returns.
BlockCache& cache() {
  static BlockCache* instance = new BlockCache;
  return *instance;
}

}  // namespace

size_t cpu_block_size(size_t nbytes) {
  // Absurd sizes are left for aligned_alloc to refuse; rounding them would overflow.
  if (nbytes > std::numeric_limits<size_t>::max() / 4) return nbytes;
  if (nbytes < kCpuCacheMinBytes || !cache().uses_size_classes()) return round_up(nbytes, kAlignment);
  // [2^p, 2^(p+1)) in kClassesPerDoubling steps of 2^p / kClassesPerDoubling.
  const int p = std::bit_width(nbytes) - 1;
  return round_up(nbytes, (size_t{1} << p) / kClassesPerDoubling);
}

void* cpu_allocate(size_t nbytes) {
  if (nbytes == 0) return nullptr;
  return cache().allocate(nbytes);
}

void cpu_free(void* p, size_t nbytes) {
  if (p == nullptr) return;
  cache().free(p, nbytes);
}

CpuMemoryStats cpu_memory_stats() { return cache().stats(); }
void reset_peak_cpu_memory_stats() { cache().reset_peaks(); }
void cpu_empty_cache() { cache().empty(); }
bool cpu_cache_enabled() { return cache().enabled(); }
void set_cpu_cache_enabled(bool on) { cache().set_enabled(on); }

}  // namespace kiln
