#include "kiln/nn/optim/clip_grad.h"

#include <algorithm>
#include <cmath>

#include "kiln/autograd/grad_mode.h"
#include "kiln/ops/reduce.h"

namespace kiln::nn::optim {

double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type,
                       bool error_if_nonfinite) {
  KILN_CHECK(norm_type > 0, "clip_grad_norm_: norm_type must be > 0 (or inf), got ", norm_type);
  KILN_CHECK(max_norm >= 0, "clip_grad_norm_: max_norm must be >= 0, got ", max_norm);
  NoGradGuard no_grad;
  std::vector<Tensor> grads;
  for (const Tensor& p : params)
    if (p.defined() && p.grad().defined()) grads.push_back(p.grad());

  // The norm of all gradients together is the norm of their norms: the largest one for
  // inf, else (sum of norm_i^p)^(1/p).
  const bool inf_norm = std::isinf(norm_type);
  double total = 0;
  for (const Tensor& g : grads) {
    const double n = norm(g, norm_type).item<double>();
    total = inf_norm ? std::max(total, n) : total + std::pow(n, norm_type);
  }
  if (!inf_norm) total = std::pow(total, 1.0 / norm_type);

  if (!std::isfinite(total)) {
    KILN_CHECK(!error_if_nonfinite, "clip_grad_norm_: the total norm of order ", norm_type, " of the gradients is ",
               total, "; they cannot be clipped");
    return total;
  }
  const double scale = max_norm / (total + 1e-6);
  if (scale < 1)
    for (Tensor& g : grads) g.mul_(scale);
  return total;
}

}  // namespace kiln::nn::optim
