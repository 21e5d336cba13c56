// Checks of input values that live on the GPU, without stalling it.
//
// An op on the CPU checks its index-like inputs (token ids, class targets, ContextPool's
// support sizes) before any kernel runs and throws kiln::Error at once. On the GPU the values are in device memory,
// and reading them on the host would synchronise the host with the GPU in every training
// step. So a CUDA op queues a small check kernel instead; a value out of range is recorded
// in a per-device report in host-mapped (zero-copy) memory, the op's own kernels skip the
// bad entries (memory stays safe), and the next time the host waits for the device anyway
// (a copy to the CPU such as item() or to(Device::cpu()), or cuda::synchronize) it finds
// the report and throws kiln::Error with the op, the value, its position and the valid
// range. This is how CUDA reports errors of queued work in general (PyTorch's device-side
// asserts, too): after the fact, at a synchronisation. The Trainer reads the loss every
// step, so a bad batch stops training in the step that saw it.
#pragma once

#include <cstdint>
#include <string>

#include "kiln/cuda/entry.h"

namespace kiln::cuda {

// Queues a check that every index[k], k < n, lies in [lo, hi), or equals `exempt` when
// has_exempt (cross_entropy's ignore_index). The error reads "<op>: <what> <value> at
// position <k> is out of range [lo, hi)<context>", k the lowest bad position; `op` and
// `what` must be string literals (the report keeps the pointers), `context` is copied
// (e.g. " for dim 0 of weight f32[4, 3]@cuda:0", as the CPU's message says). `index` is a
// contiguous device array.
KILN_CUDA_ENTRY(void check_index_range(const char* op, const char* what, const int64_t* index, int64_t n, int64_t lo,
                                       int64_t hi, bool has_exempt, int64_t exempt, int device,
                                       const std::string& context = {}))

// Queues a check that every x[k], k < n, is > 0 (NaN fails): ContextPool's support sizes.
// The error reads "<op>: <what> <value> at position <k> must be > 0 (and not NaN)".
template <class T>
KILN_CUDA_ENTRY(void check_positive(const char* op, const char* what, const T* x, int64_t n, int device))

// Throws the failure a check kernel recorded on `device` since the last call, if any, and
// clears it (one failure per device is kept; later ones wait for the next check). Only
// meaningful after the device's stream was synchronised: the copies to the host,
// cuda::synchronize and cuda::Event's waits call it after waiting.
KILN_CUDA_ENTRY(void raise_device_check_failure(int device))

}  // namespace kiln::cuda
