#include "kiln/nn/optim/clip_grad.h"

#include <cmath>

#include "kiln/autograd/grad_mode.h"
#include "kiln/core/factory.h"
#include "kiln/ops/elementwise.h"
#include "kiln/ops/reduce.h"
#include "kiln/ops/shape.h"

namespace kiln::nn::optim {

namespace {

void check_max_norm(const char* op, double max_norm) {
  KILN_CHECK(max_norm >= 0, op, ": max_norm must be >= 0, got ", max_norm);
}

}  // namespace

std::vector<Tensor> gradients(const std::vector<Tensor>& params) {
  std::vector<Tensor> grads;
  for (const Tensor& p : params)
    if (p.defined() && p.grad().defined()) grads.push_back(p.grad());
  return grads;
}

// The norm of all tensors together is the norm of their norms: the largest one for inf,
// else (sum of norm_i^p)^(1/p). The per-tensor norms are widened to f64 and combined as
// tensors, so the whole sum stays on the tensors' device and nothing waits for it. Norms of
// tensors on another device are moved to the first one's, as PyTorch does (a copy, and on a
// GPU a wait: mixing devices is the unusual case).
Tensor get_total_norm(const std::vector<Tensor>& tensors, double norm_type) {
  KILN_CHECK(norm_type > 0, "get_total_norm: norm_type must be > 0 (or inf), got ", norm_type);
  NoGradGuard no_grad;
  std::vector<Tensor> norms;
  for (const Tensor& t : tensors) {
    if (!t.defined()) continue;
    const Tensor n = norm(t, norm_type).to(f64);
    norms.push_back(norms.empty() ? n : n.to(norms[0].device()));
  }
  if (norms.empty()) return zeros({}, {.dtype = f64});
  const Tensor all = stack(norms);
  if (std::isinf(norm_type)) return max(all);
  return pow(sum(pow(all, norm_type)), 1.0 / norm_type);
}

void clip_grads_with_norm_(const std::vector<Tensor>& params, double max_norm, double total_norm) {
  check_max_norm("clip_grads_with_norm_", max_norm);
  KILN_CHECK(!(total_norm < 0), "clip_grads_with_norm_: total_norm is a norm, so >= 0; got ", total_norm);
  if (!std::isfinite(total_norm)) return;
  const double scale = max_norm / (total_norm + 1e-6);
  if (scale >= 1) return;
  NoGradGuard no_grad;
  for (Tensor& g : gradients(params)) g.mul_(scale);
}

double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type,
                       bool error_if_nonfinite) {
  KILN_CHECK(norm_type > 0, "clip_grad_norm_: norm_type must be > 0 (or inf), got ", norm_type);
  check_max_norm("clip_grad_norm_", max_norm);
  const double total = get_total_norm(gradients(params), norm_type).item<double>();
  KILN_CHECK(std::isfinite(total) || !error_if_nonfinite, "clip_grad_norm_: the total norm of order ", norm_type,
             " of the gradients is ", total, "; they cannot be clipped");
  clip_grads_with_norm_(params, max_norm, total);
  return total;
}

}  // namespace kiln::nn::optim
