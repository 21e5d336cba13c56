// The CPU allocator behind every tensor's storage: 64-byte aligned blocks, with a cache
// that hands freed large blocks out again.
//
// Why a cache: a training step allocates and frees the same activation and gradient
// sizes on every iteration. Blocks of at least kCpuCacheMinBytes are rounded up to a size
// class (eight classes per power of two, so at most 12.5% larger) and, when freed, kept
// in their class's free list; the next request of that class takes one back without
// asking the system. Smaller blocks go straight to malloc, whose own free lists serve
// them well.
//
// The cache has a ceiling: reserved memory (live blocks + cached ones) stays within the
// most bytes ever allocated at once, plus 1/8. On a miss that would cross it, cached
// blocks go back to the system first. A steady training loop then reuses every large
// block after its first step, and memory stays bounded where shapes keep changing. The
// 1/8 is measured: a step needs each size class at its own peak, which adds up to more
// than the peak of the sum (char-LM step: 407 MB against 366 MB; GPT-2 shape: 2537
// against 2469), and without that room it misses and releases blocks every step (36 of
// 145 large allocations, char-LM), a churn that fragments malloc's heap.
// Measured by bench/cpu_allocator.cpp: peak RSS of the char-LM step 427 MB with the
// cache, 514 MB without it (which is what kiln had before); GPT-2 shape 2462 against
// 2721 (1 thread). Step time: no difference above the noise of the shared machine:
// malloc, tuned to keep large blocks in its heap (cpu_allocator.cpp), did not page-fault
// in a steady loop either.
//
// Switches:
//   KILN_CPU_CACHE=0 in the environment turns the cache off (read once, at the first
//   allocation): every block then goes to malloc and back, with exact sizes, as before the
//   cache existed; for measuring and for memory checkers. Under AddressSanitizer the cache
//   is off by default: a cached block handed to the next tensor of its size would turn a
//   use-after-free of the old tensor into a silent read of the new one, where ASan's own
//   allocator (which quarantines freed memory) reports it. set_cpu_cache_enabled()
//   overrides both at run time (the tests use it); blocks resting in the cache are then
//   poisoned under ASan, so a use of a freed block is still caught until the block is
//   handed out again.
//
// Thread-safe: one mutex (the DataLoader's thread and OpenMP threads allocate too; at
// these sizes a lock costs nothing next to the work done with the block).
#pragma once

#include <cstddef>
#include <cstdint>

namespace kiln {

// Blocks smaller than this are never cached.
inline constexpr size_t kCpuCacheMinBytes = size_t{64} << 10;

struct CpuMemoryStats {
  int64_t allocated = 0;       // bytes in blocks handed out to tensors now (block sizes)
  int64_t reserved = 0;        // bytes obtained from the system and not returned: allocated + cached
  int64_t cached = 0;          // bytes in free blocks kept for reuse (reserved - allocated)
  int64_t peak_allocated = 0;  // high-water mark of `allocated` since the start or the last reset
  int64_t peak_reserved = 0;   // high-water mark of `reserved` since the start or the last reset
  int64_t lifetime_peak_allocated = 0;  // the most bytes ever allocated at once, never reset: the
                                        // cache keeps `reserved` within it plus 1/8 (see above)
  int64_t system_allocs = 0;   // blocks obtained from the system (cache misses and small blocks)
  int64_t system_frees = 0;    // blocks returned to the system
  int64_t cache_hits = 0;      // allocations of cacheable size (>= kCpuCacheMinBytes) served from the cache
  int64_t cache_misses = 0;    // ...and those that went to the system (all of them with the cache off)
};

// The allocator's figures, all blocks (cached or not) counted.
CpuMemoryStats cpu_memory_stats();
// Restarts the peaks: peak_* = the current values. The counters keep counting.
void reset_peak_cpu_memory_stats();
// Returns every cached block to the system, and malloc's free pages to the OS (the
// process's RSS drops). Blocks held by live tensors stay.
void cpu_empty_cache();

// Whether freed large blocks are cached (see the switches above).
bool cpu_cache_enabled();
// Turns the cache on or off for the rest of the process (off empties it first).
void set_cpu_cache_enabled(bool on);

// The block size a request of `nbytes` gets: a multiple of 64, and from kCpuCacheMinBytes up
// its size class's size, if the process started with the cache on. A process that started
// without it (KILN_CPU_CACHE=0, ASan) keeps exact sizes for good, as before the cache
// existed: rounding up with nothing to reuse only costs memory (GPT-2 shape, cache off:
// peak RSS 2721 MB with classes, 2682 without).
size_t cpu_block_size(size_t nbytes);

// 64-byte aligned memory for nbytes (nullptr for 0); throws kiln::Error when out of memory.
void* cpu_allocate(size_t nbytes);
// Frees a block from cpu_allocate; nbytes must be the size it was allocated with.
void cpu_free(void* p, size_t nbytes);

}  // namespace kiln
