#include "kiln/core/storage.h"

#include "kiln/core/cpu_allocator.h"
#include "kiln/core/error.h"

namespace kiln {

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device), owned_(true) {
  if (device.is_cpu()) {
    data_ = cpu_allocate(nbytes);
  } else {
    data_ = nbytes ? cuda_allocate(nbytes, device.index) : nullptr;
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
  } else {
    cuda_free(data_, nbytes_, device_.index);
  }
}

}  // namespace kiln
