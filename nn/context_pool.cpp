#include "kiln/nn/context_pool.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <vector>

#include "kiln/core/factory.h"
#include "kiln/nn/init.h"
#include "kiln/ops/activation.h"
#include "kiln/ops/elementwise.h"
#include "kiln/ops/linalg.h"
#include "kiln/ops/shape.h"

namespace kiln::nn {

// ---- modes ------------------------------------------------------------------------------

ContextPoolMode context_pool_mode_from_string(const std::string& name) {
  if (name == "adaptive") return ContextPoolMode::adaptive;
  if (name == "fixed_size") return ContextPoolMode::fixed_size;
  if (name == "weights_only") return ContextPoolMode::weights_only;
  if (name == "size_only") return ContextPoolMode::size_only;
  if (name == "uniform") return ContextPoolMode::uniform;
  throw Error(detail::str("ContextPool: unknown mode \"", name,
                          "\"; expected \"adaptive\", \"fixed_size\", \"weights_only\", \"size_only\" or \"uniform\""));
}

std::string to_string(ContextPoolMode mode) {
  switch (mode) {
    case ContextPoolMode::adaptive: return "adaptive";
    case ContextPoolMode::fixed_size: return "fixed_size";
    case ContextPoolMode::weights_only: return "weights_only";
    case ContextPoolMode::size_only: return "size_only";
    case ContextPoolMode::uniform: return "uniform";
  }
  return "unknown";
}

namespace {

using Mode = ContextPoolMode;

// What the predictor learns in each mode. Its output channels are, in order, the weight
// logit a (when m is learned) and the size logit b (when s is predicted). fixed_size
// predicts b and then ignores it: it keeps the adaptive model's parameters, so the two
// compare at equal size and load each other's checkpoints.
bool learns_weights(Mode mode) {
  return mode == Mode::adaptive || mode == Mode::fixed_size || mode == Mode::weights_only;
}
bool predicts_size(Mode mode) { return mode == Mode::adaptive || mode == Mode::fixed_size || mode == Mode::size_only; }
bool learns_size(Mode mode) { return mode == Mode::adaptive || mode == Mode::size_only; }
int64_t predictor_channels(Mode mode) { return int64_t{learns_weights(mode)} + int64_t{predicts_size(mode)}; }

void check_options(const char* layer, int64_t features, const ContextPoolModuleOptions& o, bool is_2d) {
  KILN_CHECK(features > 0, layer, ": the feature size must be positive, got ", features);
  if (learns_size(o.mode)) {
    KILN_CHECK(o.s_min > 0 && o.s_min < o.s_max && std::isfinite(o.s_max), layer,
               ": need 0 < s_min < s_max < inf, got s_min=", o.s_min, ", s_max=", o.s_max);
  } else if (o.mode == Mode::uniform) {
    KILN_CHECK(o.window > 0 || o.size >= 0.5, layer, ": uniform mode pools a half-width of round(size) tokens, so ",
               "size must be >= 0.5 (or window set), got size=", o.size);
  } else {
    KILN_CHECK(o.size > 0 && std::isfinite(o.size), layer, ": mode ", to_string(o.mode),
               " needs a positive finite size, got size=", o.size);
  }
  KILN_CHECK(o.window >= 0, layer, ": window must be >= 0 (0 = from the sizes), got ", o.window);
  KILN_CHECK(o.eps >= 0, layer, ": eps must be >= 0, got ", o.eps);
  KILN_CHECK(std::isfinite(o.init_size_logit), layer, ": init_size_logit must be finite, got ", o.init_size_logit);
  if (is_2d) {
    KILN_CHECK(!o.causal, layer, ": causal pooling is 1-D only (a grid has no order)");
    KILN_CHECK(o.stride >= 1, layer, ": stride must be >= 1, got ", o.stride);
    KILN_CHECK(!o.residual || o.stride == 1, layer,
               ": residual needs stride 1 (x + y must have one shape), got stride=", o.stride);
  } else {
    KILN_CHECK(o.stride == 1, layer, ": stride is 2-D only (a ConvNet pooling layer); got stride=", o.stride);
  }
}

// Starts the module close to the identity, whatever the scale of its input: zero weights
// make a and b the biases alone, so every token starts with m = sigmoid(0) = 1/2 and
// s = s_min + (s_max - s_min) sigmoid(init_size_logit), ~0.32 tokens with the defaults,
// where a neighbour's Gaussian weight is exp(-1 / (2 s^2)) ~ 0.7%. The weights' gradient
// is not zero (it is the logits' gradient times the input), so the predictor learns from
// the first step.
void init_predictor(Tensor& weight, Tensor& bias, const ContextPoolModuleOptions& o) {
  init::zeros_(weight);
  init::zeros_(bias);
  if (predicts_size(o.mode)) {
    Tensor size_bias = bias.narrow(0, predictor_channels(o.mode) - 1, 1);
    init::constant_(size_bias, o.init_size_logit);
  }
}

// m and s from the predictor's logits (B, spatial..., channels), channels last, weight
// logit first; `shape` is m's shape, (B, spatial...). The size logits are taken at the
// output positions by `at_outputs` (the identity in 1-D, every stride-th cell in 2-D).
// Fixed m or s are made with `like`: the input's dtype and device.
template <class AtOutputs>
std::pair<Tensor, Tensor> weights_and_sizes(const Tensor& logits, const Shape& shape, const Shape& out_shape,
                                            const TensorOptions& like, const ContextPoolModuleOptions& o,
                                            AtOutputs at_outputs) {
  int64_t channel = 0;
  const Tensor m = learns_weights(o.mode) ? sigmoid(logits.select(-1, channel++)) : ones(shape, like);
  if (learns_size(o.mode)) {
    const Tensor b = at_outputs(logits.select(-1, channel));
    return {m, o.s_min + (o.s_max - o.s_min) * sigmoid(b)};
  }
  const double size = o.mode == Mode::uniform ? std::numeric_limits<double>::infinity() : o.size;
  return {m, full(out_shape, size, like)};
}

// ---- the predictor's convolution, channels last ----------------------------------------
//
// The predictor is a Conv1d / Conv2d (PyTorch's parameter layout and names), but with one
// or two output channels its im2col form is all memory traffic: it would transpose x and
// copy it 3 (9) times to feed a GEMM that is 2 columns wide. We compute the same
// cross-correlation on x as it comes, channels last: one product z = x W^T gives every
// tap's contribution of every token, then each tap's slice is shifted into place and the
// slices are summed. Shifting in zeros is the conv's zero padding.

// x shifted by `shift` along `dim`: out[i] = x[i - shift], zeros where i - shift is outside.
Tensor shifted(const Tensor& x, int64_t dim, int64_t shift) {
  if (shift == 0) return x;
  std::vector<int64_t> pads(static_cast<size_t>(2 * (x.dim() - dim)), 0);
  pads[pads.size() - 2] = shift;  // pad() lists the last dim first: (lo, hi) of `dim` come last
  pads[pads.size() - 1] = -shift;
  return pad(x, pads);
}

// A kernel-3 conv over the tokens of x (B, n, d): logits (B, n, C), where tap k of token
// i reads token i + k - `reach` (reach 1: tokens i-1..i+1, as padding 1; reach 2: tokens
// i-2..i, causal).
Tensor conv1d_channels_last(const Tensor& x, const Conv1d& conv, int64_t reach) {
  const Tensor& w = conv.weight;  // (C, d, 3)
  const int64_t C = w.size(0), d = w.size(1), taps = w.size(2), n = x.size(1);
  // Row k * C + c of (taps * C, d) is tap k of output channel c.
  const Tensor z = linear(x, w.permute({2, 0, 1}).reshape({taps * C, d}));  // (B, n, taps * C)
  Tensor logits = z.narrow(2, reach * C, C) + conv.bias;  // the tap that reads token i itself
  for (int64_t k = 0; k < taps; ++k) {
    const int64_t shift = reach - k;  // token i + k - reach lands on token i
    if (shift != 0 && std::abs(shift) < n) logits = logits + shifted(z.narrow(2, k * C, C), 1, shift);
  }
  return logits;
}

// A 3 x 3 conv with padding 1 over the cells of x (B, H, W, d): logits (B, H, W, C).
Tensor conv2d_channels_last(const Tensor& x, const Conv2d& conv) {
  const Tensor& w = conv.weight;  // (C, d, 3, 3)
  const int64_t C = w.size(0), d = w.size(1), H = x.size(1), W = x.size(2);
  // Row (ki * 3 + kj) * C + c is tap (ki, kj) of output channel c.
  const Tensor z = linear(x, w.permute({2, 3, 0, 1}).reshape({9 * C, d}));  // (B, H, W, 9 C)
  Tensor logits = z.narrow(3, 4 * C, C) + conv.bias;  // the centre tap
  for (int64_t ki = 0; ki < 3; ++ki) {
    for (int64_t kj = 0; kj < 3; ++kj) {
      const int64_t shift_i = 1 - ki, shift_j = 1 - kj;  // cell (i + ki - 1, j + kj - 1) lands on (i, j)
      if ((shift_i == 0 && shift_j == 0) || std::abs(shift_i) >= H || std::abs(shift_j) >= W) continue;
      logits = logits + shifted(shifted(z.narrow(3, (ki * 3 + kj) * C, C), 1, shift_i), 2, shift_j);
    }
  }
  return logits;
}

ContextPoolOptions op_options(const ContextPoolModuleOptions& o) {
  return {.causal = o.causal, .window = context_pool_window(o), .stride = o.stride, .eps = o.eps};
}

std::string options_repr(int64_t features_value, const char* features_name, const ContextPoolModuleOptions& o,
                         bool is_2d) {
  std::string s = detail::str(features_name, "=", features_value, ", mode=", to_string(o.mode));
  if (!is_2d) s += detail::str(", causal=", o.causal ? "true" : "false");
  if (learns_size(o.mode)) s += detail::str(", s_min=", o.s_min, ", s_max=", o.s_max);
  else s += detail::str(", size=", o.size);
  s += detail::str(", window=", context_pool_window(o));
  if (is_2d) s += detail::str(", stride=", o.stride);
  return s + detail::str(", residual=", o.residual ? "true" : "false");
}

}  // namespace

// Fixed per module rather than read from s, so the cost of a forward never depends on
// the data; 3 sigma cuts the Gaussian of the largest support below 1.2% of its peak.
int64_t context_pool_window(const ContextPoolModuleOptions& o) {
  if (o.window > 0) return o.window;
  if (o.mode == ContextPoolMode::uniform) return std::llround(o.size);
  const double largest = learns_size(o.mode) ? o.s_max : o.size;
  return static_cast<int64_t>(std::ceil(3.0 * largest));
}

// ---- ContextPool1d ----------------------------------------------------------------------

ContextPool1d::ContextPool1d(int64_t d_model, const ContextPoolModuleOptions& options)
    : d_model_(d_model), options_(options) {
  check_options("ContextPool1d", d_model, options, /*is_2d=*/false);
  if (options.mode == Mode::uniform) return;
  // Kernel 3 over the tokens: the logits of token i read tokens i-1..i+1, or i-2..i when
  // causal. forward() computes the conv itself (see conv1d_channels_last); the module's
  // own forward gives the same logits, channels first, on x^T (B, d, n), left-padded by 2
  // when causal, hence its padding of 0 then.
  const Conv1dOptions conv{.padding = options.causal ? 0 : 1};
  predictor =
      register_module("predictor", std::make_shared<Conv1d>(d_model, predictor_channels(options.mode), 3, conv));
  init_predictor(predictor->weight, predictor->bias, options);
}

ContextPoolOutput ContextPool1d::forward_with_stats(const Tensor& x) const {
  KILN_CHECK(x.dim() == 3 && x.size(2) == d_model_ && x.size(1) > 0, "ContextPool1d: expected input (B, n, ", d_model_,
             ") with n > 0, got ", describe(x));
  const int64_t B = x.size(0), n = x.size(1);
  const Tensor logits = predictor ? conv1d_channels_last(x, *predictor, options_.causal ? 2 : 1) : Tensor();
  auto [m, s] = weights_and_sizes(logits, {B, n}, {B, n}, {.dtype = x.dtype(), .device = x.device()}, options_,
                                  [](const Tensor& b) { return b; });
  Tensor y = context_pool(x, m, s, op_options(options_));
  if (options_.residual) y = x + y;
  return {y, m, s};
}

Tensor ContextPool1d::forward(const Tensor& x) const { return forward_with_stats(x).y; }

std::string ContextPool1d::extra_repr() const { return options_repr(d_model_, "d_model", options_, false); }

// ---- ContextPool2d ----------------------------------------------------------------------

ContextPool2d::ContextPool2d(int64_t channels, const ContextPoolModuleOptions& options)
    : channels_(channels), options_(options) {
  check_options("ContextPool2d", channels, options, /*is_2d=*/true);
  if (options.mode == Mode::uniform) return;
  // 3 x 3 over the grid, zero-padded: the module's own forward on NCHW input gives the
  // logits that forward() computes channels last (conv2d_channels_last).
  const Conv2dOptions conv{.padding = 1};
  predictor =
      register_module("predictor", std::make_shared<Conv2d>(channels, predictor_channels(options.mode), 3, conv));
  init_predictor(predictor->weight, predictor->bias, options);
}

namespace {

// ContextPool2d on x (B, H, W, C), channels last.
ContextPoolOutput pool_2d(const Tensor& nhwc, const Conv2d* predictor, const ContextPoolModuleOptions& o) {
  const int64_t B = nhwc.size(0), H = nhwc.size(1), W = nhwc.size(2), stride = o.stride;
  const int64_t H_out = (H + stride - 1) / stride, W_out = (W + stride - 1) / stride;
  // b is predicted on the full grid, then read at the output cells, each of which sits
  // on input cell (i * stride, j * stride).
  const auto at_outputs = [stride](const Tensor& b) {
    return stride == 1 ? b : b.slice(1, 0, b.size(1), stride).slice(2, 0, b.size(2), stride);
  };
  const Tensor logits = predictor ? conv2d_channels_last(nhwc, *predictor) : Tensor();  // (B, H, W, channels)
  auto [m, s] = weights_and_sizes(logits, {B, H, W}, {B, H_out, W_out},
                                  {.dtype = nhwc.dtype(), .device = nhwc.device()}, o, at_outputs);
  Tensor y = context_pool2d(nhwc, m, s, op_options(o));
  if (o.residual) y = nhwc + y;
  return {y, m, s};
}

}  // namespace

ContextPoolOutput ContextPool2d::forward_with_stats(const Tensor& x) const {
  KILN_CHECK(x.dim() == 4 && x.size(3) == channels_ && x.size(1) > 0 && x.size(2) > 0,
             "ContextPool2d: expected input (B, H, W, ", channels_, ") with H, W > 0, got ", describe(x));
  return pool_2d(x, predictor.get(), options_);
}

Tensor ContextPool2d::forward(const Tensor& x) const { return forward_with_stats(x).y; }

Tensor ContextPool2d::forward_nchw(const Tensor& x) const {
  KILN_CHECK(x.dim() == 4 && x.size(1) == channels_ && x.size(2) > 0 && x.size(3) > 0,
             "ContextPool2d: expected input (N, ", channels_, ", H, W) with H, W > 0, got ", describe(x));
  // Channels last for the predictor's product and the op (one copy, shared by both), and
  // back to (N, C, H_out, W_out), contiguous as any pooling layer's output, so that the
  // next layer can view or flatten it.
  const Tensor nhwc = x.permute({0, 2, 3, 1}).contiguous();
  return pool_2d(nhwc, predictor.get(), options_).y.permute({0, 3, 1, 2}).contiguous();
}

std::string ContextPool2d::extra_repr() const { return options_repr(channels_, "channels", options_, true); }

}  // namespace kiln::nn
