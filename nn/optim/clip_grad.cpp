#include "kiln/nn/optim/clip_grad.h"

#include <algorithm>
#include <cmath>

#include "kiln/autograd/grad_mode.h"
#include "kiln/ops/elementwise.h"
#include "kiln/ops/reduce.h"
#include "kiln/ops/shape.h"

namespace kiln::nn::optim {

namespace {

// The norm of all gradients together is the norm of their norms: the largest one for
// inf, else (sum of norm_i^p)^(1/p).

// On the CPU: each gradient's norm read as it comes, summed in double.
double total_norm_on_host(const std::vector<Tensor>& grads, double norm_type) {
  const bool inf_norm = std::isinf(norm_type);
  double total = 0;
  for (const Tensor& g : grads) {
    const double n = norm(g, norm_type).item<double>();
    total = inf_norm ? std::max(total, n) : total + std::pow(n, norm_type);
  }
  return inf_norm ? total : std::pow(total, 1.0 / norm_type);
}

// On a GPU: the per-gradient norms stay on the device (in f64, as on the host) and are
// combined there, so the host waits once in all rather than once per parameter. The
// gradients must share one device (stack says which does not).
double total_norm_on_device(const std::vector<Tensor>& grads, double norm_type) {
  std::vector<Tensor> norms;
  norms.reserve(grads.size());
  for (const Tensor& g : grads) norms.push_back(norm(g, norm_type).to(f64));
  const Tensor all = stack(norms);
  if (std::isinf(norm_type)) return max(all).item<double>();
  return std::pow(sum(pow(all, norm_type)).item<double>(), 1.0 / norm_type);
}

}  // namespace

double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type,
                       bool error_if_nonfinite) {
  KILN_CHECK(norm_type > 0, "clip_grad_norm_: norm_type must be > 0 (or inf), got ", norm_type);
  KILN_CHECK(max_norm >= 0, "clip_grad_norm_: max_norm must be >= 0, got ", max_norm);
  NoGradGuard no_grad;
  std::vector<Tensor> grads;
  for (const Tensor& p : params)
    if (p.defined() && p.grad().defined()) grads.push_back(p.grad());

  if (grads.empty()) return 0;
  const double total = grads[0].device().is_cuda() ? total_norm_on_device(grads, norm_type)
                                                   : total_norm_on_host(grads, norm_type);

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
