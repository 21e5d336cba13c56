// Storage: one reference-counted buffer that tensors (and their views) point into.
// It also carries the version counter shared by all views of the buffer, which
// autograd uses to detect in-place changes to tensors saved for backward.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

#include "kiln/core/device.h"

namespace kiln {

class Storage {
 public:
  // Allocates nbytes on `device` (on CPU from core/cpu_allocator.h: 64-byte aligned, cached).
  // Contents are uninitialised.
  Storage(size_t nbytes, Device device);
  // Wraps memory the caller owns; `deleter` (may be empty) runs when the storage dies.
  Storage(void* data, size_t nbytes, Device device, std::function<void(void*)> deleter);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

  uint64_t version() const { return version_; }
  void bump_version() { ++version_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  std::function<void(void*)> deleter_;
  bool owned_ = false;
  uint64_t version_ = 0;
};

// GPU memory for Storage. Declared here and defined by the CUDA backend (the caching
// allocator in cuda/allocator.cu) or, in a build without it, by cuda/without_cuda.cpp,
// whose cuda_allocate throws "kiln was built without CUDA". A link-time seam rather than
// a hook installed at startup: core/ includes no CUDA header, and a static libkiln.a
// cannot drop the allocator from a program that makes a GPU tensor.
void* cuda_allocate(size_t nbytes, int device_index);
void cuda_free(void* p, size_t nbytes, int device_index) noexcept;

}  // namespace kiln
