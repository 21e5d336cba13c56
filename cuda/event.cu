// cudaEvent_t behind cuda::Event (event.h), recorded on kiln's stream.
#include "kiln/cuda/event.h"

#include "kiln/cuda/check.h"
#include "kiln/cuda/device_check.h"
#include "kiln/cuda/stream.h"

namespace kiln::cuda::detail {

void* event_create(int device) {
  set_device(device);
  cudaEvent_t event = nullptr;
  KILN_CUDA_CHECK(cudaEventCreate(&event));
  return event;
}

// Errors are ignored: a destructor must not throw, and a failing cudaEventDestroy at
// exit (driver already shutting down) loses nothing.
void event_destroy(void* event, int device) noexcept {
  if (event != nullptr) cudaEventDestroy(static_cast<cudaEvent_t>(event));
}

void event_record(void* event, int device) { KILN_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(event), stream(device))); }

void event_synchronize(void* event, int device) {
  KILN_CUDA_CHECK(wait_for(static_cast<cudaEvent_t>(event)));
  raise_device_check_failure(device);  // the work before the event is done: its checks too
}

double event_elapsed_ms(void* start, void* end, int device) {
  event_synchronize(end, device);
  float ms = 0;
  KILN_CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start), static_cast<cudaEvent_t>(end)));
  return ms;
}

}  // namespace kiln::cuda::detail
