#include "kiln/autograd/gradcheck.h"

#include <cmath>

#include "kiln/autograd/engine.h"
#include "kiln/autograd/grad_mode.h"
#include "kiln/core/factory.h"
#include "kiln/ops/elementwise.h"
#include "kiln/ops/reduce.h"

namespace kiln {

namespace {

// A fixed, non-degenerate projection vector (no RNG: gradcheck must not disturb the seed).
Tensor projection_like(const Tensor& out) {
  std::vector<double> v(static_cast<size_t>(out.numel()));
  for (size_t k = 0; k < v.size(); ++k) v[k] = 0.5 + std::cos(1.7 * static_cast<double>(k) + 0.3);
  return from_vector(v, out.shape(), {.dtype = f64}).to(out.device());
}

double projected(const GradcheckFn& fn, const std::vector<Tensor>& inputs, const Tensor& v) {
  NoGradGuard no_grad;
  Tensor out = fn(inputs);
  KILN_CHECK(out.dtype() == f64, "gradcheck: fn returned ", describe(out), "; it must return f64");
  return sum(out * v).item<double>();
}

}  // namespace

GradcheckResult gradcheck(const GradcheckFn& fn, const std::vector<Tensor>& inputs, GradcheckOptions opts) {
  std::vector<Tensor> diff_inputs;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].requires_grad()) continue;
    KILN_CHECK(inputs[i].dtype() == f64, "gradcheck: input ", i, " is ", describe(inputs[i]),
               "; finite differences need f64 inputs (use .to(kiln::f64))");
    diff_inputs.push_back(inputs[i]);
  }
  KILN_CHECK(!diff_inputs.empty(), "gradcheck: no input requires grad");

  // Analytical: one backward of the projected output.
  Tensor out = fn(inputs);
  KILN_CHECK(out.defined() && out.dtype() == f64, "gradcheck: fn must return an f64 tensor, got ", describe(out));
  const Tensor v = projection_like(out);
  std::vector<Tensor> analytical =
      grad({sum(out * v)}, diff_inputs, {.allow_unused = true});

  // Numerical: perturb one element at a time in detached copies of the inputs. The
  // perturbation is written on the host, so a GPU input's copy lives on the CPU and each
  // evaluation moves it back to the input's device.
  std::vector<Tensor> host_copy(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].requires_grad()) host_copy[i] = inputs[i].detach().to(Device::cpu()).contiguous().clone();
  const auto perturbed_inputs = [&] {
    std::vector<Tensor> probe;
    for (size_t i = 0; i < inputs.size(); ++i)
      probe.push_back(host_copy[i].defined() ? host_copy[i].to(inputs[i].device()) : inputs[i]);
    return probe;
  };
  GradcheckResult result;
  size_t which = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].requires_grad()) continue;
    const Tensor& a = analytical[which];
    const std::vector<double> a_values =
        a.defined() ? a.to_vector<double>() : std::vector<double>(static_cast<size_t>(inputs[i].numel()), 0.0);
    double* x = host_copy[i].data<double>();
    for (int64_t k = 0; k < host_copy[i].numel(); ++k) {
      const double saved = x[k];
      x[k] = saved + opts.eps;
      const double plus = projected(fn, perturbed_inputs(), v);
      x[k] = saved - opts.eps;
      const double minus = projected(fn, perturbed_inputs(), v);
      x[k] = saved;
      const double numerical = (plus - minus) / (2 * opts.eps);
      const double analytic = a_values[static_cast<size_t>(k)];
      const double err = std::fabs(analytic - numerical);
      result.max_abs_error = std::max(result.max_abs_error, err);
      if (err > opts.atol + opts.rtol * std::fabs(numerical) && result.ok) {
        result.ok = false;
        result.message = detail::str("gradcheck: input ", i, " (", describe(inputs[i]), ") element ", k,
                                     ": analytical ", analytic, " vs numerical ", numerical, " (error ", err, ")");
      }
    }
    ++which;
  }
  return result;
}

}  // namespace kiln
