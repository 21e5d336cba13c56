#include "kiln/nn/init.h"

#include <cmath>

#include "kiln/autograd/grad_mode.h"
#include "kiln/core/factory.h"
#include "kiln/ops/elementwise.h"

namespace kiln::nn::init {

namespace {

Tensor& assign(Tensor& t, const Tensor& values) {
  NoGradGuard no_grad;
  t.copy_(values);
  return t;
}

}  // namespace

Tensor& uniform_(Tensor& t, double low, double high) {
  return assign(t, uniform(low, high, t.shape(), {.dtype = t.dtype()}));
}

Tensor& normal_(Tensor& t, double mean, double std) {
  return assign(t, normal(mean, std, t.shape(), {.dtype = t.dtype()}));
}

Tensor& trunc_normal_(Tensor& t, double mean, double std, double a, double b) {
  KILN_CHECK(a < b, "trunc_normal_: a (", a, ") must be < b (", b, ")");
  KILN_CHECK(mean + 4 * std > a && mean - 4 * std < b, "trunc_normal_: [", a, ", ", b,
             "] is too far from the distribution's mass (mean ", mean, ", std ", std, ")");
  // Rejection sampling: redraw out-of-range values. With [a, b] within 4 std of the
  // mean this terminates quickly.
  std::vector<double> values = normal(mean, std, t.shape(), {.dtype = f64}).to_vector<double>();
  for (double& v : values)
    while (v < a || v > b) v = normal(mean, std, {}, {.dtype = f64}).item<double>();
  return assign(t, from_vector(values, t.shape()));
}

Tensor& constant_(Tensor& t, double value) {
  NoGradGuard no_grad;
  t.fill_(value);
  return t;
}
Tensor& zeros_(Tensor& t) { return constant_(t, 0.0); }
Tensor& ones_(Tensor& t) { return constant_(t, 1.0); }

std::pair<int64_t, int64_t> fan_in_and_out(const Tensor& t) {
  KILN_CHECK(t.dim() >= 2, "init: fan in/out need a tensor with >= 2 dims, got ", describe(t));
  int64_t receptive = 1;
  for (int64_t d = 2; d < t.dim(); ++d) receptive *= t.size(d);
  return {t.size(1) * receptive, t.size(0) * receptive};
}

double calculate_gain(const std::string& nonlinearity, double param) {
  if (nonlinearity == "linear" || nonlinearity == "sigmoid" || nonlinearity.rfind("conv", 0) == 0) return 1.0;
  if (nonlinearity == "tanh") return 5.0 / 3.0;
  if (nonlinearity == "relu") return std::sqrt(2.0);
  if (nonlinearity == "leaky_relu") return std::sqrt(2.0 / (1 + param * param));
  if (nonlinearity == "selu") return 3.0 / 4.0;
  throw Error("calculate_gain: unknown nonlinearity '" + nonlinearity + "'");
}

Tensor& xavier_uniform_(Tensor& t, double gain) {
  auto [fan_in, fan_out] = fan_in_and_out(t);
  const double bound = gain * std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
  return uniform_(t, -bound, bound);
}

Tensor& xavier_normal_(Tensor& t, double gain) {
  auto [fan_in, fan_out] = fan_in_and_out(t);
  return normal_(t, 0.0, gain * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out)));
}

namespace {
double kaiming_std(const Tensor& t, double a, const std::string& mode, const std::string& nonlinearity) {
  KILN_CHECK(mode == "fan_in" || mode == "fan_out", "kaiming init: mode must be fan_in or fan_out, got '", mode, "'");
  auto [fan_in, fan_out] = fan_in_and_out(t);
  const int64_t fan = mode == "fan_in" ? fan_in : fan_out;
  return calculate_gain(nonlinearity, a) / std::sqrt(static_cast<double>(fan));
}
}  // namespace

Tensor& kaiming_uniform_(Tensor& t, double a, const std::string& mode, const std::string& nonlinearity) {
  const double bound = std::sqrt(3.0) * kaiming_std(t, a, mode, nonlinearity);
  return uniform_(t, -bound, bound);
}

Tensor& kaiming_normal_(Tensor& t, double a, const std::string& mode, const std::string& nonlinearity) {
  return normal_(t, 0.0, kaiming_std(t, a, mode, nonlinearity));
}

}  // namespace kiln::nn::init
