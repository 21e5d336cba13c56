// Which GPUs kiln can use. This header is the same in every build: in a build without
// the CUDA backend (KILN_CUDA=OFF, or no toolkit found) is_available() is false and
// device_count() is 0, so callers and tests can ask without #ifdefs.
#pragma once

#include <cstdint>
#include <string>

namespace kiln::cuda {

// True when kiln was compiled with the CUDA backend (whether or not a GPU is visible).
bool is_built();

// True when the backend is built and at least one GPU is visible to this process.
bool is_available();

// Number of visible GPUs. 0 (never an error) in a CPU-only build and on machines
// without a driver or a device, so "no GPU" is an answer, not an exception.
int device_count();

// The device's name as the driver reports it, e.g. "NVIDIA H100 80GB HBM3".
// Throws kiln::Error when the index is out of range or kiln has no CUDA backend.
std::string device_name(int index);

// The device's theoretical peak memory bandwidth in bytes per second: two transfers per
// memory clock over the whole bus (e.g. about 3.35e12 for an H100 SXM). The yardstick of a
// memory-bound kernel: bench_cuda_kernels prints its GB/s next to this figure.
// Throws kiln::Error when the index is out of range or kiln has no CUDA backend.
double device_memory_bandwidth(int index);

// Why is_available() is false ("" when it is true), e.g. "kiln was built without CUDA"
// or "cudaGetDeviceCount: no CUDA-capable device is detected". For skip messages and logs.
std::string unavailable_reason();

// Waits until all work kiln queued on the device has finished. kiln's CUDA ops return as
// soon as their kernels are queued; only copies to the CPU wait by themselves. Call it
// before timing GPU work with a host clock.
void synchronize(int device = 0);

// Waits until the work kiln queued on every device it has used so far has finished (no
// wait when none was used). Never throws: for the profiler, whose scopes wait in
// destructors; an error is left for the next synchronize() or copy to report, and a
// value a check kernel found bad is too (device_check.h).
void wait_for_all_devices() noexcept;

// How many times the host has waited for a GPU in this process: synchronize(), every copy
// to the CPU (item() included), event waits, cross-device copies. kiln's ops, backward and
// optimizers only queue work, so a training step should add exactly its reads of values
// (a logged loss); tests hold it to that. Always 0 in a build without CUDA.
int64_t host_wait_count();

// Whether f32 matrix products may use TF32 tensor cores (10-bit mantissa inputs, f32
// accumulation): much faster on A100/H100, about 1e-3 relative error instead of 1e-6.
// Off by default, as in PyTorch's matmul; it is a global switch.
void set_allow_tf32(bool allow);
bool allow_tf32();

}  // namespace kiln::cuda
