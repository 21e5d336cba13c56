// The CUDA caching allocator's public face: how much GPU memory kiln holds, and a way
// to give the cached part back. Same header in every build: without the CUDA backend
// the stats are all zero and empty_cache() does nothing, so callers need no #ifdef.
//
// Why a cache: cudaMalloc and cudaFree are slow (tens of microseconds, and cudaFree
// synchronises the whole device), while a training step allocates and frees the same
// activation sizes every iteration. The allocator (cuda/allocator.cu) keeps freed blocks
// in size classes and hands them out again; a training loop reaches a steady reserved
// size after its first step and calls cudaMalloc no more.
//
// Debugging switches, read from the environment once (allocator.cu says more):
// - KILN_CUDA_FILL_UNINITIALIZED=1 fills every block the allocator hands out with NaN bytes
//   first, so a read of memory no kernel wrote shows up as NaN (the [cuda] tests run with it
//   on a GPU, .ci/gpu, and under the emulator, tools/cuda_emulator/suite.sh).
// - KILN_CUDA_NO_CACHING=1 turns the cache off: each tensor gets an allocation of exactly
//   its size, returned when it is freed, so memory checkers see a kernel that goes past its
//   buffer (compute-sanitizer, .ci/gpu memcheck; the emulator's guard pages, suite.sh --guard).
//   Slow: for debugging only.
#pragma once

#include <cstdint>

namespace kiln::cuda {

struct MemoryStats {
  int64_t allocated = 0;        // bytes in blocks handed out to tensors now (rounded sizes)
  int64_t reserved = 0;         // bytes obtained from cudaMalloc and not yet returned: allocated + cached
  int64_t peak_allocated = 0;   // high-water mark of `allocated` since the last reset
  int64_t peak_reserved = 0;    // high-water mark of `reserved` since the last reset
  int64_t device_allocs = 0;    // cudaMalloc calls made (a steady loop stops adding to it)
  int64_t cache_hits = 0;       // allocations served from the cache
};

// The allocator's figures for one device. All zero for a device never used.
MemoryStats memory_stats(int device = 0);

// Restarts the peaks (peak_* = current values) of one device.
void reset_peak_memory_stats(int device = 0);

// Returns every cached (free) block of every device to CUDA. Memory held by live tensors
// stays. Useful before handing the GPU to another library or process.
void empty_cache();

// False when KILN_CUDA_NO_CACHING is set: then every free goes back to CUDA (in stream
// order: cudaFreeAsync), and memory_stats' reserved equals allocated.
bool caching_enabled();

}  // namespace kiln::cuda
