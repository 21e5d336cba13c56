// Fused optimizer updates on CUDA, the GPU twins of ops/cpu/optim_kernels.h: one kernel
// per parameter per step reads the gradient and the state buffers once and writes the
// new parameter and state in place. The element formulas are the CPU kernels', operation
// by operation; the per-step scalars (bias corrections, step size) are computed on the
// host from the step count, so a step needs no synchronisation.
#pragma once

#include <cstdint>

#include "kiln/cuda/entry.h"
#include "kiln/ops/cpu/optim_kernels.h"

namespace kiln::cuda {

// SGD with momentum, dampening, Nesterov and weight decay (see cpu::sgd_update).
// momentum_buffer may be null when h.momentum == 0.
template <class T>
KILN_CUDA_ENTRY(void sgd_update(T* param, const T* grad, T* momentum_buffer, int64_t n,
                                const cpu::SgdHyperparameters& h, int device))

// Adam, and AdamW when h.decoupled_weight_decay (see cpu::adam_update).
template <class T>
KILN_CUDA_ENTRY(void adam_update(T* param, const T* grad, T* exp_avg, T* exp_avg_sq, int64_t n,
                                 const cpu::AdamHyperparameters& h, int device))

}  // namespace kiln::cuda
