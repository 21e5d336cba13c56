// Device queries and the CUDA error -> kiln::Error conversion (see device.h, check.h).
#include "kiln/cuda/device.h"

#include <cuda_runtime_api.h>

#include "kiln/core/error.h"
#include "kiln/cuda/check.h"

namespace kiln::cuda {

namespace detail {

void throw_cuda_error(cudaError_t error, const char* call, const char* file, int line) {
  // The failed call also left `error` as the thread's "last error"; clear it so the
  // next KILN_CUDA_CHECK(cudaGetLastError()) reports only what happens after this one.
  (void)cudaGetLastError();
  throw Error(kiln::detail::str("CUDA error: ", call, " failed with ", cudaGetErrorName(error), " (",
                                cudaGetErrorString(error), ") at ", file, ":", line));
}

}  // namespace detail

namespace {

// cudaGetDeviceCount fails (rather than returning 0) when there is no driver or no
// device. Both mean "no GPU here", so we report the count and keep the reason for logs.
struct DeviceCountQuery {
  int count = 0;
  std::string failure;  // "" when the query succeeded
};

DeviceCountQuery query_device_count() {
  DeviceCountQuery q;
  const cudaError_t error = cudaGetDeviceCount(&q.count);
  if (error != cudaSuccess) {
    (void)cudaGetLastError();  // not sticky; don't let it leak into a later check
    q.count = 0;
    q.failure = kiln::detail::str("cudaGetDeviceCount: ", cudaGetErrorString(error));
  }
  return q;
}

}  // namespace

bool is_built() { return true; }

bool is_available() { return device_count() > 0; }

int device_count() { return query_device_count().count; }

std::string device_name(int index) {
  const int count = device_count();
  KILN_CHECK(index >= 0 && index < count, "cuda::device_name: device index ", index, " is out of range (",
             count, count == 1 ? " device" : " devices", " visible)");
  cudaDeviceProp props{};
  KILN_CUDA_CHECK(cudaGetDeviceProperties(&props, index));
  return props.name;
}

double device_memory_bandwidth(int index) {
  const int count = device_count();
  KILN_CHECK(index >= 0 && index < count, "cuda::device_memory_bandwidth: device index ", index,
             " is out of range (", count, count == 1 ? " device" : " devices", " visible)");
  // Attributes rather than cudaDeviceProp: CUDA 13 dropped memoryClockRate from the struct.
  int clock_khz = 0, bus_bits = 0;
  KILN_CUDA_CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, index));
  KILN_CUDA_CHECK(cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, index));
  const double transfers_per_s = 2.0 * 1e3 * static_cast<double>(clock_khz);  // double data rate
  return transfers_per_s * static_cast<double>(bus_bits) / 8.0;
}

std::string unavailable_reason() {
  const DeviceCountQuery q = query_device_count();
  if (!q.failure.empty()) return q.failure;
  return q.count == 0 ? "no CUDA device is visible" : "";
}

}  // namespace kiln::cuda
