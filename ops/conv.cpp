// conv1d / conv2d: argument checks, the im2col + GEMM kernels (ops/cpu/conv.h on the
// CPU, cuda/im2col.h on the GPU: same geometry, same three maps), and the backward rules.
//
// A convolution y = conv(x, W) is linear in x and in W, so its gradients are two more
// linear maps, each the adjoint of the convolution in one argument:
//
//   input_grad(dy, W)  = dx   with <dx, h> = <dy, conv(h, W)>   for every h
//   weight_grad(x, dy) = dW   with <dW, h> = <dy, conv(x, h)>   for every h
//
// The three maps are closed under differentiation (each one's gradients are the other
// two), so each is an op with its own node below and every order of backward works:
//
//   conv(x, W)          dx = input_grad(g, W)       dW = weight_grad(x, g)
//   input_grad(dy, W)   ddy = conv(g, W)            dW = weight_grad(g, dy)
//   weight_grad(x, dy)  dx = input_grad(dy, g)      ddy = conv(x, g)
//
// The bias adds a constant per output channel: its gradient is g summed over every
// other dim. conv1d and unbatched inputs run the same 2-D kernels: (N, C, L) has the
// memory of (N, C, 1, L), and (C, H, W) that of (1, C, H, W).
#include "kiln/ops/conv.h"

#include <string>

#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"
#include "kiln/core/dispatch.h"
#include "kiln/core/factory.h"
#include "kiln/core/profiler.h"
#include "kiln/cuda/im2col.h"
#include "kiln/ops/common.h"
#include "kiln/ops/cpu/conv.h"
#include "kiln/ops/reduce.h"

namespace kiln {

using autograd::Grads;
using autograd::Saved;

namespace {

// One convolution call: the kernels' geometry and the shapes of the user's tensors.
struct ConvPlan {
  cpu::ConvGeometry geometry;
  Shape input_shape, weight_shape, output_shape;
  Dims bias_grad_dims;  // every dim of the output but the channel dim
};

// The settings of a conv1d or conv2d call; a 1-D one keeps its values in .w and
// stride/dilation 1, padding 0 in .h.
struct ConvSettings {
  int spatial_dims;  // 1 or 2
  Size2 stride, padding, dilation;
  int64_t groups;
};

// "[3]" for a 1-D conv, "[3, 5]" for a 2-D one: sizes as the user gave them.
std::string sizes(const ConvSettings& s, int64_t h, int64_t w) {
  return s.spatial_dims == 1 ? shape_str({w}) : shape_str({h, w});
}

void check_tensors(const char* op, const Tensor& x, const Tensor& weight, const Tensor& bias, int spatial) {
  ops::check_same_device(op, {x, weight});
  ops::check_floating(op, x);
  ops::check_same_dtype(op, x, weight);
  if (bias.defined()) {
    ops::check_same_device(op, {x, bias});
    ops::check_same_dtype(op, x, bias);
  }
  const char* input_layout = spatial == 1 ? "a 2-D (C, L) or 3-D (N, C, L)" : "a 3-D (C, H, W) or 4-D (N, C, H, W)";
  KILN_CHECK(x.dim() == spatial + 1 || x.dim() == spatial + 2, op, ": expected ", input_layout, " input, got ",
             describe(x));
  const char* weight_layout = spatial == 1 ? "a 3-D weight (out_channels, in_channels / groups, k)"
                                           : "a 4-D weight (out_channels, in_channels / groups, kH, kW)";
  KILN_CHECK(weight.dim() == spatial + 2, op, ": expected ", weight_layout, ", got ", describe(weight));
}

void check_settings(const char* op, const ConvSettings& s) {
  KILN_CHECK(s.stride.h > 0 && s.stride.w > 0, op, ": stride must be positive, got ", sizes(s, s.stride.h, s.stride.w));
  KILN_CHECK(s.dilation.h > 0 && s.dilation.w > 0, op, ": dilation must be positive, got ",
             sizes(s, s.dilation.h, s.dilation.w));
  KILN_CHECK(s.padding.h >= 0 && s.padding.w >= 0, op, ": padding must be non-negative, got ",
             sizes(s, s.padding.h, s.padding.w));
  KILN_CHECK(s.groups > 0, op, ": groups must be positive, got ", s.groups);
}

// Channel counts agree: groups divides both, and the weight sees C / groups channels.
void check_channels(const char* op, const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t channels,
                    int64_t groups) {
  const int64_t out_channels = weight.size(0);
  KILN_CHECK(channels % groups == 0, op, ": groups=", groups, " must divide the input's ", channels,
             " channels (input ", describe(x), ")");
  KILN_CHECK(out_channels % groups == 0, op, ": groups=", groups, " must divide out_channels=", out_channels,
             " (weight ", describe(weight), ")");
  KILN_CHECK(weight.size(1) * groups == channels, op, ": input ", describe(x), " has ", channels,
             " channels, but weight ", describe(weight), " with groups=", groups, " expects ", weight.size(1) * groups);
  if (bias.defined()) {
    KILN_CHECK(bias.dim() == 1 && bias.size(0) == out_channels, op, ": bias must have shape [", out_channels,
               "] (out_channels), got ", describe(bias));
  }
}

// Sliding-window geometry of one axis (plan_conv checks that the dilated kernel fits).
cpu::WindowAxis conv_axis(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation) {
  return {.in = in,
          .out = cpu::window_output_size(in, kernel, stride, pad, dilation),
          .kernel = kernel,
          .stride = stride,
          .pad = pad,
          .dilation = dilation};
}

ConvPlan plan_conv(const char* op, const Tensor& x, const Tensor& weight, const Tensor& bias, const ConvSettings& s) {
  const int spatial = s.spatial_dims;
  check_tensors(op, x, weight, bias, spatial);
  check_settings(op, s);
  const bool batched = x.dim() == spatial + 2;
  const int64_t channels = x.size(batched ? 1 : 0);
  check_channels(op, x, weight, bias, channels, s.groups);

  const int64_t in_h = spatial == 2 ? x.size(-2) : 1, in_w = x.size(-1);
  const int64_t k_h = spatial == 2 ? weight.size(2) : 1, k_w = weight.size(-1);
  KILN_CHECK(k_h > 0 && k_w > 0, op, ": kernel size must be positive, got ", sizes(s, k_h, k_w));
  ConvPlan p;
  cpu::ConvGeometry& g = p.geometry;
  g.batch = batched ? x.size(0) : 1;
  g.in_channels = channels;
  g.out_channels = weight.size(0);
  g.groups = s.groups;
  g.h = conv_axis(in_h, k_h, s.stride.h, s.padding.h, s.dilation.h);
  g.w = conv_axis(in_w, k_w, s.stride.w, s.padding.w, s.dilation.w);
  KILN_CHECK(g.h.span() <= in_h + 2 * g.h.pad && g.w.span() <= in_w + 2 * g.w.pad, op, ": the kernel ",
             sizes(s, g.h.span(), g.w.span()), " (after dilation) is larger than the padded input ",
             sizes(s, in_h + 2 * g.h.pad, in_w + 2 * g.w.pad), " of ", describe(x));

  // The user's shapes: the output keeps the input's batch dim (or its absence) and
  // spatial rank.
  p.input_shape = x.shape();
  p.weight_shape = weight.shape();
  if (batched) p.output_shape.push_back(g.batch);
  p.output_shape.push_back(g.out_channels);
  if (spatial == 2) p.output_shape.push_back(g.h.out);
  p.output_shape.push_back(g.w.out);
  const int64_t channel_dim = batched ? 1 : 0;
  for (int64_t d = 0; d < static_cast<int64_t>(p.output_shape.size()); ++d)
    if (d != channel_dim) p.bias_grad_dims.push_back(d);
  return p;
}

// The kernels read contiguous buffers; this copy (when needed) is internal, not recorded.
Tensor dense(const Tensor& t) {
  NoGradGuard no_grad;
  return t.contiguous();
}

// A new tensor of `shape` with like's dtype, on like's device.
Tensor empty_on(const Shape& shape, const Tensor& like) {
  return empty(shape, {.dtype = like.dtype(), .device = like.device()});
}

// The CUDA kernels' column buffer (cuda/im2col.h): `needed` is false where a pointwise
// convolution reads the images themselves.
Tensor column_scratch(const ConvPlan& plan, const Tensor& like, bool needed) {
  return needed ? empty_on({cuda::columns_per_pass(plan.geometry)}, like) : Tensor();
}

template <class T>
T* data_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

Tensor conv_input_grad(const Tensor& dy, const Tensor& weight, const ConvPlan& plan);
Tensor conv_weight_grad(const Tensor& x, const Tensor& dy, const ConvPlan& plan);

// y = conv(x, weight) + bias (bias may be undefined).
Tensor conv_forward(const char* op, const Tensor& x, const Tensor& weight, const Tensor& bias, const ConvPlan& plan) {
  const Tensor x_dense = dense(x), w_dense = dense(weight), b_dense = bias.defined() ? dense(bias) : Tensor();
  Tensor y = empty_on(plan.output_shape, x);
  const Tensor columns = x.device().is_cuda() ? column_scratch(plan, x, !plan.geometry.is_pointwise()) : Tensor();
  dispatch_floating(x.dtype(), op, [&]<class T>() {
    if (x.device().is_cuda()) {
      cuda::conv2d_forward(x_dense.data<T>(), w_dense.data<T>(), data_or_null<T>(b_dense), y.data<T>(),
                           data_or_null<T>(columns), plan.geometry, x.device().index);
    } else {
      cpu::conv2d_forward(x_dense.data<T>(), w_dense.data<T>(), data_or_null<T>(b_dense), y.data<T>(),
                          plan.geometry);
    }
  });
  std::vector<Tensor> inputs{x, weight};
  if (bias.defined()) inputs.push_back(bias);
  autograd::record(op, y, inputs, {x, weight}, [plan, with_bias = bias.defined()](const Tensor& g, const Saved& s) {
    Grads grads{s.needs_grad(0) ? conv_input_grad(g, s[1], plan) : Tensor(),
                s.needs_grad(1) ? conv_weight_grad(s[0], g, plan) : Tensor()};
    if (with_bias) grads.push_back(s.needs_grad(2) ? sum(g, plan.bias_grad_dims) : Tensor());
    return grads;
  });
  return y;
}

// dx from dy (output-shaped) and weight; see the file comment.
Tensor conv_input_grad(const Tensor& dy, const Tensor& weight, const ConvPlan& plan) {
  const Tensor dy_dense = dense(dy), w_dense = dense(weight);
  Tensor dx = empty_on(plan.input_shape, dy);
  const Tensor columns = dy.device().is_cuda() ? column_scratch(plan, dy, !plan.geometry.is_pointwise()) : Tensor();
  dispatch_floating(dy.dtype(), "conv_input_grad", [&]<class T>() {
    if (dy.device().is_cuda()) {
      cuda::conv2d_input_grad(dy_dense.data<T>(), w_dense.data<T>(), dx.data<T>(), data_or_null<T>(columns),
                              plan.geometry, dy.device().index);
    } else {
      cpu::conv2d_input_grad(dy_dense.data<T>(), w_dense.data<T>(), dx.data<T>(), plan.geometry);
    }
  });
  autograd::record("conv_input_grad", dx, {dy, weight}, {dy, weight}, [plan](const Tensor& g, const Saved& s) {
    return Grads{s.needs_grad(0) ? conv_forward("conv", g, s[1], Tensor(), plan) : Tensor(),
                 s.needs_grad(1) ? conv_weight_grad(g, s[0], plan) : Tensor()};
  });
  return dx;
}

// dW from x and dy (output-shaped); see the file comment.
Tensor conv_weight_grad(const Tensor& x, const Tensor& dy, const ConvPlan& plan) {
  const Tensor x_dense = dense(x), dy_dense = dense(dy);
  Tensor dw = empty_on(plan.weight_shape, x);
  dispatch_floating(x.dtype(), "conv_weight_grad", [&]<class T>() {
    if (x.device().is_cuda()) {
      // Always columns here (even pointwise: the images are laid side by side), and dy
      // regrouped by channel (cuda/im2col.h).
      const Tensor columns = column_scratch(plan, x, true), dy_by_channel = empty_on({dy.numel()}, dy);
      cuda::conv2d_weight_grad(x_dense.data<T>(), dy_dense.data<T>(), dw.data<T>(), columns.data<T>(),
                               dy_by_channel.data<T>(), plan.geometry, x.device().index);
    } else {
      cpu::conv2d_weight_grad(x_dense.data<T>(), dy_dense.data<T>(), dw.data<T>(), plan.geometry);
    }
  });
  autograd::record("conv_weight_grad", dw, {x, dy}, {x, dy}, [plan](const Tensor& g, const Saved& s) {
    return Grads{s.needs_grad(0) ? conv_input_grad(s[1], g, plan) : Tensor(),
                 s.needs_grad(1) ? conv_forward("conv", s[0], g, Tensor(), plan) : Tensor()};
  });
  return dw;
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& options) {
  KILN_PROFILE_SCOPE("conv2d", x, weight, bias);
  const ConvSettings settings{.spatial_dims = 2,
                              .stride = options.stride,
                              .padding = options.padding,
                              .dilation = options.dilation,
                              .groups = options.groups};
  return conv_forward("conv2d", x, weight, bias, plan_conv("conv2d", x, weight, bias, settings));
}

Tensor conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv1dOptions& options) {
  KILN_PROFILE_SCOPE("conv1d", x, weight, bias);
  const ConvSettings settings{.spatial_dims = 1,
                              .stride = {1, options.stride},
                              .padding = {0, options.padding},
                              .dilation = {1, options.dilation},
                              .groups = options.groups};
  return conv_forward("conv1d", x, weight, bias, plan_conv("conv1d", x, weight, bias, settings));
}

}  // namespace kiln
