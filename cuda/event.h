// GPU events: markers queued on a device's kiln stream. The host can wait for one, or
// read the GPU time between two — how kiln's GPU benchmarks time kernels without
// counting launch overhead or host work, and without synchronising the whole device.
//
//   cuda::Event start(0), stop(0);
//   start.record();
//   ... ops on cuda:0 ...
//   stop.record();
//   double ms = start.elapsed_ms(stop);   // waits for `stop`, then reads the GPU clock
//
// Same header in every build; without the CUDA backend constructing an Event throws.
#pragma once

#include "kiln/cuda/entry.h"

namespace kiln::cuda {

namespace detail {
KILN_CUDA_ENTRY(void* event_create(int device))
KILN_CUDA_ENTRY(void event_destroy(void* event, int device) noexcept)
KILN_CUDA_ENTRY(void event_record(void* event, int device))
KILN_CUDA_ENTRY(void event_synchronize(void* event, int device))
KILN_CUDA_ENTRY(double event_elapsed_ms(void* start, void* end, int device))
}  // namespace detail

class Event {
 public:
  explicit Event(int device = 0) : device_(device), event_(detail::event_create(device)) {}
  ~Event() { detail::event_destroy(event_, device_); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  // Queues the event on the device's stream, after all work queued so far.
  void record() { detail::event_record(event_, device_); }
  // Waits on the host until the work before the last record() has finished. Like every
  // host wait, throws a bad input value that a check kernel found (cuda/device_check.h).
  void synchronize() const { detail::event_synchronize(event_, device_); }
  // GPU milliseconds from this event to `end` (both recorded); waits for `end`, as above.
  double elapsed_ms(const Event& end) const { return detail::event_elapsed_ms(event_, end.event_, device_); }

 private:
  int device_;
  void* event_;
};

}  // namespace kiln::cuda
