#include "kiln/ops/cpu/optim_kernels.h"

#include <cmath>

#include "kiln/ops/cpu/loops.h"

namespace kiln::cpu {

// The branches inside the loops test loop-invariant flags: the compiler hoists them out
// (loop unswitching), so each configuration runs one straight loop.

template <class T>
void sgd_update(T* param, const T* grad, T* buf, int64_t n, const SgdHyperparameters& h) {
  const T lr = static_cast<T>(h.lr), weight_decay = static_cast<T>(h.weight_decay);
  const T momentum = static_cast<T>(h.momentum), undamped = static_cast<T>(1 - h.dampening);
  const bool decay = h.weight_decay != 0, use_momentum = h.momentum != 0;
  const bool first_step = h.first_step, nesterov = h.nesterov;
#pragma omp parallel for simd schedule(static) if (n > kParallelThreshold)
  for (int64_t i = 0; i < n; ++i) {
    T d = grad[i];
    if (decay) d = d + weight_decay * param[i];
    if (use_momentum) {
      const T b = first_step ? d : buf[i] * momentum + undamped * d;
      buf[i] = b;
      d = nesterov ? d + momentum * b : b;
    }
    param[i] = param[i] - lr * d;
  }
}

// Note: GCC vectorises this loop only with -fno-math-errno (std::sqrt may set errno, a side
// effect it will not reorder); at kiln's default flags the sqrt and divisions run scalar.
template <class T>
void adam_update(T* param, const T* grad, T* exp_avg, T* exp_avg_sq, int64_t n, const AdamHyperparameters& h) {
  // Per-parameter scalars in double, as PyTorch computes them in Python, then rounded to T.
  const double bias_correction1 = 1 - std::pow(h.beta1, static_cast<double>(h.step));
  const double bias_correction2 = 1 - std::pow(h.beta2, static_cast<double>(h.step));
  const T step_size = static_cast<T>(h.lr / bias_correction1);
  const T bias_correction2_sqrt = static_cast<T>(std::sqrt(bias_correction2));
  const T beta1 = static_cast<T>(h.beta1), one_minus_beta1 = static_cast<T>(1 - h.beta1);
  const T beta2 = static_cast<T>(h.beta2), one_minus_beta2 = static_cast<T>(1 - h.beta2);
  const T eps = static_cast<T>(h.eps);
  const T l2 = static_cast<T>(h.weight_decay);                      // Adam: added to the gradient
  const T shrink = static_cast<T>(1 - h.lr * h.weight_decay);       // AdamW: applied to the parameter
  const bool decoupled = h.decoupled_weight_decay, coupled = !decoupled && h.weight_decay != 0;
#pragma omp parallel for simd schedule(static) if (n > kParallelThreshold)
  for (int64_t i = 0; i < n; ++i) {
    T p = param[i], g = grad[i];
    if (decoupled) p = p * shrink;
    if (coupled) g = g + l2 * p;
    const T m = exp_avg[i] * beta1 + one_minus_beta1 * g;
    const T v = exp_avg_sq[i] * beta2 + one_minus_beta2 * g * g;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    const T denom = std::sqrt(v) / bias_correction2_sqrt + eps;
    param[i] = p - step_size * m / denom;  // PyTorch's addcdiv: (value * m) / denom
  }
}

template void sgd_update<float>(float*, const float*, float*, int64_t, const SgdHyperparameters&);
template void sgd_update<double>(double*, const double*, double*, int64_t, const SgdHyperparameters&);
template void adam_update<float>(float*, const float*, float*, float*, int64_t, const AdamHyperparameters&);
template void adam_update<double>(double*, const double*, double*, double*, int64_t, const AdamHyperparameters&);

}  // namespace kiln::cpu
