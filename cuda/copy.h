// Moving bytes to, from and within GPUs: what Tensor::to(Device), clone() and
// contiguous() need on CUDA. Same header in every build; without the CUDA backend every
// function throws kiln::Error("kiln was built without CUDA").
//
// All copies are queued on the device's kiln stream (stream.h), so they are ordered
// with the kernels that produce and consume the data. Pointers are raw, as for every
// kiln kernel: callers pass the first element (storage data + offset).
#pragma once

#include <cstddef>
#include <cstdint>

namespace kiln::cuda {

// Host -> device. Returns once `src` may be reused (CUDA stages pageable memory before
// returning); the copy itself may still be in flight on the stream.
void copy_host_to_device(void* dst, const void* src, size_t nbytes, int device);

// Device -> host. Waits for the stream: when it returns, `dst` holds the values of
// every kernel queued before it.
void copy_device_to_host(void* dst, const void* src, size_t nbytes, int device);

// Device -> another (or the same) device, ordered after the source's queued work.
void copy_device_to_device(void* dst, int dst_device, const void* src, int src_device, size_t nbytes);

// Gathers a strided tensor into a contiguous buffer on the same device:
// dst[i] = src[offset of the i-th element in row-major order], for elements of
// `element_size` bytes (1, 2, 4 or 8) and up to kMaxCopyDims dims; strides in elements.
constexpr int kMaxCopyDims = 8;
void strided_copy(void* dst, const void* src, int64_t element_size, const int64_t* shape, const int64_t* strides,
                  int ndim, int device);

}  // namespace kiln::cuda
