#include "kiln/core/storage.h"

#include <malloc.h>

#include <cstdlib>

#include "kiln/core/error.h"

namespace kiln {

namespace {
DeviceAllocator g_cuda_allocator;
constexpr size_t kAlignment = 64;  // one cache line; enough for AVX-512 loads
}  // namespace

void set_cuda_allocator(DeviceAllocator allocator) { g_cuda_allocator = allocator; }

// glibc serves blocks above its mmap threshold (at most 32 MB) with fresh pages on every
// call and returns them to the OS on free, so a training step that allocates the same
// large activations each iteration pays page faults every time (measured: softmax on a
// 64 MB tensor ran at 1.4 GB/s instead of 13 GB/s). Keeping large blocks in the heap
// lets malloc reuse them. A size-class caching allocator can replace this later.
static void tune_malloc_once() {
  static const bool tuned = [] {
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    return true;
  }();
  (void)tuned;
}

void* cpu_allocate(size_t nbytes) {
  if (nbytes == 0) return nullptr;
  tune_malloc_once();
  const size_t rounded = (nbytes + kAlignment - 1) / kAlignment * kAlignment;
  void* p = std::aligned_alloc(kAlignment, rounded);
  KILN_CHECK(p != nullptr, "out of memory: failed to allocate ", nbytes, " bytes on cpu");
  return p;
}

void cpu_free(void* p, size_t) { std::free(p); }

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device), owned_(true) {
  if (device.is_cpu()) {
    data_ = cpu_allocate(nbytes);
  } else {
    KILN_CHECK(g_cuda_allocator.allocate != nullptr,
               "kiln was built without CUDA: cannot allocate on ", device.str());
    data_ = nbytes ? g_cuda_allocator.allocate(nbytes, device.index) : nullptr;
  }
}

Storage::Storage(void* data, size_t nbytes, Device device, std::function<void(void*)> deleter)
    : data_(data), nbytes_(nbytes), device_(device), deleter_(std::move(deleter)) {}

Storage::~Storage() {
  if (!owned_) {
    if (deleter_) deleter_(data_);
    return;
  }
  if (!data_) return;
  if (device_.is_cpu()) {
    cpu_free(data_, nbytes_);
  } else if (g_cuda_allocator.free) {
    g_cuda_allocator.free(data_, nbytes_, device_.index);
  }
}

}  // namespace kiln
