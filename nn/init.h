// Parameter initialisation, as torch.nn.init: each fills a tensor in place (under
// NoGradGuard) from the seeded generator and returns it. fan_in/fan_out follow
// PyTorch: for a (out, in, k...) weight, fan_in = in * prod(k), fan_out = out * prod(k).
#pragma once

#include <string>

#include "kiln/core/tensor.h"

namespace kiln::nn::init {

Tensor& uniform_(Tensor& t, double low = 0.0, double high = 1.0);
Tensor& normal_(Tensor& t, double mean = 0.0, double std = 1.0);
// Normal(mean, std) redrawn until inside [a, b] (absolute bounds), as PyTorch's trunc_normal_.
Tensor& trunc_normal_(Tensor& t, double mean = 0.0, double std = 1.0, double a = -2.0, double b = 2.0);
Tensor& constant_(Tensor& t, double value);
Tensor& zeros_(Tensor& t);
Tensor& ones_(Tensor& t);
Tensor& xavier_uniform_(Tensor& t, double gain = 1.0);
Tensor& xavier_normal_(Tensor& t, double gain = 1.0);
// mode "fan_in" | "fan_out"; nonlinearity "relu" | "leaky_relu" | "linear" | "tanh" | "sigmoid".
Tensor& kaiming_uniform_(Tensor& t, double a = 0.0, const std::string& mode = "fan_in",
                         const std::string& nonlinearity = "leaky_relu");
Tensor& kaiming_normal_(Tensor& t, double a = 0.0, const std::string& mode = "fan_in",
                        const std::string& nonlinearity = "leaky_relu");

// (fan_in, fan_out) of a weight with >= 2 dims.
std::pair<int64_t, int64_t> fan_in_and_out(const Tensor& t);
// The recommended gain for a nonlinearity (param = negative slope for leaky_relu).
double calculate_gain(const std::string& nonlinearity, double param = 0.01);

}  // namespace kiln::nn::init
