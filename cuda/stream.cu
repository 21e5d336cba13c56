// One lazily created stream per device (see stream.h).
#include "kiln/cuda/stream.h"

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "kiln/core/error.h"
#include "kiln/cuda/check.h"
#include "kiln/cuda/device.h"
#include "kiln/cuda/device_check.h"

namespace kiln::cuda {

namespace {

struct Streams {
  std::mutex mutex;
  std::vector<cudaStream_t> by_device;  // nullptr until first use
};

std::atomic<int64_t> g_host_waits{0};

Streams& streams() {
  // Never destroyed: kernels may still be queued when static destructors run, and
  // destroying a stream then would race the CUDA runtime's own teardown.
  static Streams* s = new Streams;
  return *s;
}

}  // namespace

void set_device(int device) {
  // The visible devices are fixed when the CUDA runtime starts; ask once, not per launch.
  static const int count = device_count();
  KILN_CHECK(device >= 0 && device < count, "cuda:", device, " is not available: ", count,
             count == 1 ? " device" : " devices", " visible",
             count == 0 ? kiln::detail::str(" (", unavailable_reason(), ")") : std::string());
  KILN_CUDA_CHECK(cudaSetDevice(device));
}

// Called before every launch, so the common case takes no lock and no cudaSetDevice:
// each thread remembers the streams it has seen (they are never destroyed), and
// cudaGetDevice, a thread-local read in the runtime, tells whether the device is current
// already (other code on the thread may have switched it).
cudaStream_t stream(int device) {
  thread_local std::vector<cudaStream_t> seen;
  if (device >= 0 && static_cast<size_t>(device) < seen.size() && seen[device] != nullptr) {
    int current = -1;
    KILN_CUDA_CHECK(cudaGetDevice(&current));
    if (current != device) KILN_CUDA_CHECK(cudaSetDevice(device));
    return seen[device];
  }
  set_device(device);
  Streams& s = streams();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (s.by_device.size() <= static_cast<size_t>(device)) s.by_device.resize(device + 1, nullptr);
  cudaStream_t& slot = s.by_device[device];
  if (slot == nullptr) KILN_CUDA_CHECK(cudaStreamCreateWithFlags(&slot, cudaStreamNonBlocking));
  if (seen.size() <= static_cast<size_t>(device)) seen.resize(device + 1, nullptr);
  seen[device] = slot;
  return slot;
}

void wait_for_all_devices() noexcept {
  Streams& s = streams();
  std::lock_guard<std::mutex> lock(s.mutex);
  for (cudaStream_t stream : s.by_device)
    if (stream != nullptr) wait_for(stream);  // errors: left for the next checked call (device.h)
}

cudaError_t wait_for(cudaStream_t stream) {
  g_host_waits.fetch_add(1, std::memory_order_relaxed);
  return cudaStreamSynchronize(stream);
}
cudaError_t wait_for(cudaEvent_t event) {
  g_host_waits.fetch_add(1, std::memory_order_relaxed);
  return cudaEventSynchronize(event);
}
int64_t host_wait_count() { return g_host_waits.load(std::memory_order_relaxed); }

void synchronize(int device) {
  KILN_CUDA_CHECK(wait_for(stream(device)));
  raise_device_check_failure(device);  // a value checked on the GPU was out of range
}

}  // namespace kiln::cuda
