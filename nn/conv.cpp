#include "kiln/nn/conv.h"

#include <cmath>

#include "kiln/core/factory.h"
#include "kiln/nn/init.h"

namespace kiln::nn {

namespace {

void check_channels(const char* layer, int64_t in_channels, int64_t out_channels, int64_t groups) {
  KILN_CHECK(in_channels > 0 && out_channels > 0, layer, ": channels must be positive, got in_channels=", in_channels,
             ", out_channels=", out_channels);
  KILN_CHECK(groups > 0 && in_channels % groups == 0 && out_channels % groups == 0, layer, ": groups=", groups,
             " must divide in_channels=", in_channels, " and out_channels=", out_channels);
}

// Registers weight and bias with PyTorch's initialisation (see conv.h).
void init_parameters(Module& layer, Tensor& weight, Tensor& bias, const Shape& weight_shape, bool with_bias) {
  Tensor w = empty(weight_shape);
  init::kaiming_uniform_(w, std::sqrt(5.0));
  weight = layer.register_parameter("weight", w);
  if (with_bias) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(init::fan_in_and_out(w).first));
    bias = layer.register_parameter("bias", uniform(-bound, bound, {weight_shape[0]}));
  }
}

std::string pair_str(Size2 s) { return detail::str("(", s.h, ", ", s.w, ")"); }
std::string one_str(int64_t v) { return detail::str("(", v, ",)"); }  // a 1-tuple, as Python prints it

// PyTorch's repr: padding, dilation, groups and bias are shown only when not the default.
std::string conv_repr(int64_t in, int64_t out, const std::string& kernel, const std::string& stride,
                      const std::string& padding, bool default_padding, const std::string& dilation,
                      bool default_dilation, int64_t groups, bool with_bias) {
  std::string s = detail::str(in, ", ", out, ", kernel_size=", kernel, ", stride=", stride);
  if (!default_padding) s += detail::str(", padding=", padding);
  if (!default_dilation) s += detail::str(", dilation=", dilation);
  if (groups != 1) s += detail::str(", groups=", groups);
  if (!with_bias) s += ", bias=false";
  return s;
}

}  // namespace

// ---- Conv2d --------------------------------------------------------------------------

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, Size2 kernel_size, const Conv2dOptions& options,
               bool with_bias)
    : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size), options_(options) {
  check_channels("Conv2d", in_channels, out_channels, options.groups);
  KILN_CHECK(kernel_size.h > 0 && kernel_size.w > 0, "Conv2d: kernel_size must be positive, got ",
             pair_str(kernel_size));
  init_parameters(*this, weight, bias, {out_channels, in_channels / options.groups, kernel_size.h, kernel_size.w},
                  with_bias);
}

Tensor Conv2d::forward(const Tensor& x) const { return conv2d(x, weight, bias, options_); }

std::string Conv2d::extra_repr() const {
  const Conv2dOptions& o = options_;
  return conv_repr(in_channels_, out_channels_, pair_str(kernel_size_), pair_str(o.stride), pair_str(o.padding),
                   o.padding == Size2(0), pair_str(o.dilation), o.dilation == Size2(1), o.groups, bias.defined());
}

// ---- Conv1d --------------------------------------------------------------------------

Conv1d::Conv1d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, const Conv1dOptions& options,
               bool with_bias)
    : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size), options_(options) {
  check_channels("Conv1d", in_channels, out_channels, options.groups);
  KILN_CHECK(kernel_size > 0, "Conv1d: kernel_size must be positive, got ", kernel_size);
  init_parameters(*this, weight, bias, {out_channels, in_channels / options.groups, kernel_size}, with_bias);
}

Tensor Conv1d::forward(const Tensor& x) const { return conv1d(x, weight, bias, options_); }

std::string Conv1d::extra_repr() const {
  const Conv1dOptions& o = options_;
  return conv_repr(in_channels_, out_channels_, one_str(kernel_size_), one_str(o.stride), one_str(o.padding),
                   o.padding == 0, one_str(o.dilation), o.dilation == 1, o.groups, bias.defined());
}

}  // namespace kiln::nn
