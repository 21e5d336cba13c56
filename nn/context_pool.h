// ContextPool1d / ContextPool2d: adaptive context pooling as a layer (Huang, Talbott,
// Jaitly, Susskind, ICML 2022). A light predictor (a conv of kernel 3 over the tokens,
// causal when causal) reads the features and gives every token
//
//   m = sigmoid(a)                              its pooling weight, in (0, 1)
//   s = s_min + (s_max - s_min) * sigmoid(b)    its support size, in (s_min, s_max)
//
// and ops/context_pool.h pools: y_i = sum_j g_i(j) m_j x_j / (sum_j g_i(j) m_j + eps),
// g_i(j) = exp(-(i - j)^2 / (2 s_i^2)). Same shape in and out (stride 1), so it drops in
// between transformer layers; TransformerBlockOptions::context_pool switches it on there.
//
//   auto pool = std::make_shared<nn::ContextPool1d>(256, nn::ContextPoolModuleOptions{.causal = true});
//   Tensor y = pool->forward(x);                     // (B, n, 256) -> (B, n, 256)
//   nn::ContextPoolOutput out = pool->forward_with_stats(x);  // y, and the m and s it used
//
// It starts close to the identity: the size predictor's bias starts at init_size_logit,
// so every s starts near s_min, where a token's neighbours get almost no weight and
// y_i ~ x_i; training widens the support where pooling helps. docs/contextpool.md has
// the formulation, every option and what is our reconstruction of the paper.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "kiln/nn/conv.h"
#include "kiln/nn/module.h"
#include "kiln/ops/context_pool.h"

namespace kiln::nn {

// What is learned. The ablations keep the op and the rest of the model the same.
enum class ContextPoolMode {
  adaptive,      // learned m and learned s (the paper's module)
  fixed_size,    // learned m and s, then s replaced by the constant `size`: no size gradient
                 // (weights_only's function with the adaptive module's parameters)
  weights_only,  // learned m, constant s = `size` (the predictor has one output)
  size_only,     // m = 1, learned s
  uniform,       // m = 1 and a flat window of half-width round(`size`): plain average pooling
};
// "adaptive", "fixed_size", "weights_only", "size_only", "uniform"; anything else is a kiln::Error.
ContextPoolMode context_pool_mode_from_string(const std::string& name);
std::string to_string(ContextPoolMode mode);

struct ContextPoolModuleOptions {
  ContextPoolMode mode = ContextPoolMode::adaptive;
  bool causal = false;  // 1-D only: token i pools j <= i, and the predictor sees no later token
  double s_min = 0.25;  // learned sizes lie in (s_min, s_max), in tokens (grid cells in 2-D)
  double s_max = 4.0;
  double size = 1.0;    // the constant s of fixed_size / weights_only; uniform's half-width
  int64_t window = 0;   // the op's half-width W; 0 = ceil(3 * largest s the mode can produce), uniform: round(size)
  bool residual = false;  // output x + y instead of y
  int64_t stride = 1;     // 2-D only: output every stride-th cell, as a pooling layer in a ConvNet
  double init_size_logit = -4.0;  // starting bias of the size predictor: s starts ~ s_min
  double eps = 1e-6;
};

// The op's half-width W a module with these options uses: `window` when set, else
// round(size) in uniform mode, else ceil(3 x the largest s the mode can produce).
int64_t context_pool_window(const ContextPoolModuleOptions& options);

// A forward pass with what it pooled with: m (B, n) and s (B, n_out), or (B, H, W) and
// (B, H_out, W_out) in 2-D. m and s stay attached to the graph.
struct ContextPoolOutput {
  Tensor y, m, s;
};

class ContextPool1d : public Module {
 public:
  ContextPool1d(int64_t d_model, const ContextPoolModuleOptions& options = {});
  Tensor forward(const Tensor& x) const;  // x (B, n, d_model) -> (B, n, d_model)
  ContextPoolOutput forward_with_stats(const Tensor& x) const;
  std::string extra_repr() const override;
  const ContextPoolModuleOptions& options() const { return options_; }

  std::shared_ptr<Conv1d> predictor;  // d_model -> (a, b) per token; absent in uniform mode

 private:
  int64_t d_model_;
  ContextPoolModuleOptions options_;
};

class ContextPool2d : public Module {
 public:
  ContextPool2d(int64_t channels, const ContextPoolModuleOptions& options = {});
  // x (B, H, W, C), channels last as transformer tokens on a grid -> (B, H_out, W_out, C).
  Tensor forward(const Tensor& x) const;
  ContextPoolOutput forward_with_stats(const Tensor& x) const;
  // x (N, C, H, W), as a ConvNet's feature maps -> (N, C, H_out, W_out): a drop-in for
  // MaxPool2d(stride) with options.stride = stride.
  Tensor forward_nchw(const Tensor& x) const;
  std::string extra_repr() const override;
  const ContextPoolModuleOptions& options() const { return options_; }

  std::shared_ptr<Conv2d> predictor;  // channels -> (a, b) per cell; absent in uniform mode

 private:
  int64_t channels_;
  ContextPoolModuleOptions options_;
};

}  // namespace kiln::nn
