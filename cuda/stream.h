// The stream every kiln kernel, copy and cuBLAS call on a device is queued on.
// Backend-internal: includes the CUDA runtime header.
//
// kiln uses one stream per device, created on first use with cudaStreamNonBlocking so it
// does not serialise against other libraries' work on the legacy default stream. One
// stream is what makes the caching allocator simple and safe: a block freed by one op
// and handed to the next is only touched by work queued after the first op's, in order.
// The host waits for the stream only where it reads a value (a copy to the CPU, item()).
#pragma once

#include <cuda_runtime_api.h>

namespace kiln::cuda {

// Makes `device` current on the calling thread (cudaSetDevice) after checking that it
// exists, so a bad index is a clear kiln::Error rather than a CUDA error code.
void set_device(int device);

// The device's kiln stream; also makes `device` current on the calling thread
// (cudaSetDevice), so the caller's next launches and allocations go to it.
cudaStream_t stream(int device);

// The host waits for everything queued on `stream`, or before `event`'s record. Every wait
// kiln makes goes through these, so host_wait_count() (device.h) counts them all. They
// return CUDA's status for the caller to check (or, in noexcept code, to leave).
cudaError_t wait_for(cudaStream_t stream);
cudaError_t wait_for(cudaEvent_t event);

}  // namespace kiln::cuda
