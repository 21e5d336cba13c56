// Fused optimizer updates on CUDA (see optim.h).
//
// Each kernel is one thread per element with a grid-stride loop: an update is pure
// memory traffic (Adam reads 4 and writes 3 values per element), so the kernels stay
// simple and let every load coalesce. The scalars are rounded to T on the host, as the
// CPU kernels round them, and the element formulas below repeat the CPU's in the same
// order, so both backends agree to the last bit up to fused multiply-adds.
#include "kiln/cuda/optim.h"

#include <cmath>

#include "kiln/cuda/launch.cuh"

namespace kiln::cuda {

namespace {

// The SGD scalars, rounded to T once on the host (cpu::sgd_update rounds them alike).
template <class T>
struct SgdScalars {
  T lr, weight_decay, momentum, undamped;
  bool decay, use_momentum, first_step, nesterov;
};

// param[i] -= lr * d, with d the gradient after weight decay and momentum (the buffer is
// read only when momentum is on and this is not its first step).
template <class T>
__global__ void sgd_kernel(T* __restrict__ param, const T* __restrict__ grad, T* __restrict__ buf, int64_t n,
                           const SgdScalars<T> c) {
  for (int64_t i = global_thread(); i < n; i += grid_stride()) {
    T d = grad[i];
    if (c.decay) d = d + c.weight_decay * param[i];
    if (c.use_momentum) {
      const T b = c.first_step ? d : buf[i] * c.momentum + c.undamped * d;
      buf[i] = b;
      d = c.nesterov ? d + c.momentum * b : b;
    }
    param[i] = param[i] - c.lr * d;
  }
}

// The Adam scalars: per-step values computed in double on the host from the step count,
// then rounded to T (cpu::adam_update does the same).
template <class T>
struct AdamScalars {
  T step_size, bias_correction2_sqrt, beta1, one_minus_beta1, beta2, one_minus_beta2, eps, l2, shrink;
  bool decoupled, coupled;
};

// One Adam/AdamW update of element i: decay, both moments, then the bias-corrected step.
template <class T>
__global__ void adam_kernel(T* __restrict__ param, const T* __restrict__ grad, T* __restrict__ exp_avg,
                            T* __restrict__ exp_avg_sq, int64_t n, const AdamScalars<T> c) {
  for (int64_t i = global_thread(); i < n; i += grid_stride()) {
    T p = param[i], g = grad[i];
    if (c.decoupled) p = p * c.shrink;
    if (c.coupled) g = g + c.l2 * p;
    const T m = exp_avg[i] * c.beta1 + c.one_minus_beta1 * g;
    const T v = exp_avg_sq[i] * c.beta2 + c.one_minus_beta2 * g * g;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    const T denom = sqrt(v) / c.bias_correction2_sqrt + c.eps;
    param[i] = p - c.step_size * m / denom;  // PyTorch's addcdiv: (value * m) / denom
  }
}

}  // namespace

template <class T>
void sgd_update(T* param, const T* grad, T* momentum_buffer, int64_t n, const cpu::SgdHyperparameters& h,
                int device) {
  if (n == 0) return;
  const SgdScalars<T> c{.lr = static_cast<T>(h.lr),
                        .weight_decay = static_cast<T>(h.weight_decay),
                        .momentum = static_cast<T>(h.momentum),
                        .undamped = static_cast<T>(1 - h.dampening),
                        .decay = h.weight_decay != 0,
                        .use_momentum = h.momentum != 0,
                        .first_step = h.first_step,
                        .nesterov = h.nesterov};
  cudaStream_t s = stream(device);
  sgd_kernel<T><<<blocks_for(n), kThreadsPerBlock, 0, s>>>(param, grad, momentum_buffer, n, c);
  KILN_CUDA_LAUNCH_CHECK();
}

template <class T>
void adam_update(T* param, const T* grad, T* exp_avg, T* exp_avg_sq, int64_t n, const cpu::AdamHyperparameters& h,
                 int device) {
  if (n == 0) return;
  const double bias_correction1 = 1 - std::pow(h.beta1, static_cast<double>(h.step));
  const double bias_correction2 = 1 - std::pow(h.beta2, static_cast<double>(h.step));
  const AdamScalars<T> c{.step_size = static_cast<T>(h.lr / bias_correction1),
                         .bias_correction2_sqrt = static_cast<T>(std::sqrt(bias_correction2)),
                         .beta1 = static_cast<T>(h.beta1),
                         .one_minus_beta1 = static_cast<T>(1 - h.beta1),
                         .beta2 = static_cast<T>(h.beta2),
                         .one_minus_beta2 = static_cast<T>(1 - h.beta2),
                         .eps = static_cast<T>(h.eps),
                         .l2 = static_cast<T>(h.weight_decay),
                         .shrink = static_cast<T>(1 - h.lr * h.weight_decay),
                         .decoupled = h.decoupled_weight_decay,
                         .coupled = !h.decoupled_weight_decay && h.weight_decay != 0};
  cudaStream_t s = stream(device);
  adam_kernel<T><<<blocks_for(n), kThreadsPerBlock, 0, s>>>(param, grad, exp_avg, exp_avg_sq, n, c);
  KILN_CUDA_LAUNCH_CHECK();
}

template void sgd_update<float>(float*, const float*, float*, int64_t, const cpu::SgdHyperparameters&, int);
template void sgd_update<double>(double*, const double*, double*, int64_t, const cpu::SgdHyperparameters&, int);
template void adam_update<float>(float*, const float*, float*, float*, int64_t, const cpu::AdamHyperparameters&, int);
template void adam_update<double>(double*, const double*, double*, double*, int64_t, const cpu::AdamHyperparameters&,
                                  int);

}  // namespace kiln::cuda
