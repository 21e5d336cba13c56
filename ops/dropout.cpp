// Dropout. The forward draws the mask from the seeded Philox generator and applies it
// in one kernel (ops/cpu/dropout.*); the mask, already scaled by 1/(1-p), is saved so
// the backward is g * mask, a Tensor op (double backward works). On CUDA the kernel
// (cuda/dropout.*) uses the same Philox counters, so a seed gives the same mask on both.
#include "kiln/ops/dropout.h"

#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"
#include "kiln/core/dispatch.h"
#include "kiln/core/factory.h"
#include "kiln/core/profiler.h"
#include "kiln/core/random.h"
#include "kiln/cuda/dropout.h"
#include "kiln/ops/common.h"
#include "kiln/ops/cpu/dropout.h"
#include "kiln/ops/elementwise.h"

namespace kiln {

using autograd::Grads;
using autograd::Saved;

// p == 1 drops everything: the output and the gradient are all zeros.
Tensor dropout(const Tensor& x, double p, bool training) {
  KILN_PROFILE_SCOPE("dropout", x);
  const char* op = "dropout";
  ops::check_same_device(op, {x});
  ops::check_floating(op, x);
  KILN_CHECK(p >= 0 && p <= 1, op, ": probability p must be in [0, 1], got ", p);
  if (!training || p == 0) return x;  // the identity, as in PyTorch

  const int64_t n = x.numel();
  Tensor y = empty(x.shape(), {.dtype = x.dtype(), .device = x.device()});
  Tensor mask = empty(x.shape(), {.dtype = x.dtype(), .device = x.device()});
  {
    NoGradGuard no_grad;
    const Tensor xc = x.contiguous();
    // One Philox block gives the draws of 4 elements.
    const GeneratorState rng = default_generator().reserve(static_cast<uint64_t>((n + 3) / 4));
    dispatch_floating(x.dtype(), op, [&]<class T>() {
      if (x.device().is_cuda())
        cuda::dropout_forward(xc.data<T>(), y.data<T>(), mask.data<T>(), n, p, rng.seed, rng.offset, x.device().index);
      else
        cpu::dropout_forward(xc.data<T>(), y.data<T>(), mask.data<T>(), n, p, rng.seed, rng.offset);
    });
  }
  autograd::record(op, y, {x}, {mask}, [](const Tensor& g, const Saved& s) { return Grads{g * s[0]}; });
  return y;
}

}  // namespace kiln
