// ConvNet: a small image classifier in the classic shape, whose pooling layers can be
// ContextPool2d instead of max pooling (the paper's ConvNet use: Huang et al., ICML 2022).
//
//   stage k:  conv 3x3 (padding 1) -> ReLU -> downsample by 2     for each width in `channels`
//   head:     global average pooling -> Linear(channels.back(), num_classes)
//
// "downsample" is MaxPool2d(2), or with context_pool set, ContextPool2d with stride 2
// (forward_nchw): every output cell is a learned, per-cell weighted Gaussian average of
// the feature map around it instead of the max of a fixed 2x2 window.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <kiln/nn/context_pool.h>
#include <kiln/nn/conv.h>
#include <kiln/nn/linear.h>
#include <kiln/nn/module.h>
#include <kiln/nn/pooling.h>
#include <kiln/nn/sequential.h>

namespace convnet {

struct ConvNetConfig {
  int64_t image_size = 32;  // square images
  int64_t in_chans = 1;
  int64_t num_classes = 4;
  std::vector<int64_t> channels = {32, 64, 128};  // one stage per entry
  // Set: every stage downsamples with ContextPool2d(these options, stride 2).
  std::optional<kiln::nn::ContextPoolModuleOptions> context_pool;
};

// Halves the feature map: MaxPool2d(2) (the side rounds down), or ContextPool2d with
// stride 2 (the side rounds up: ceil(n / 2)).
class Downsample : public kiln::nn::Module {
 public:
  Downsample(int64_t channels, const std::optional<kiln::nn::ContextPoolModuleOptions>& context_pool);
  kiln::Tensor forward(const kiln::Tensor& x) const;  // (N, C, H, W) -> (N, C, H / 2, W / 2)
  static int64_t output_side(int64_t side, bool context_pool) { return context_pool ? (side + 1) / 2 : side / 2; }

  std::shared_ptr<kiln::nn::MaxPool2d> max_pool;          // set without context_pool
  std::shared_ptr<kiln::nn::ContextPool2d> context_pool;  // set with it
};

class ConvNet : public kiln::nn::Module {
 public:
  explicit ConvNet(const ConvNetConfig& config);
  // images (N, in_chans, image_size, image_size) -> logits (N, num_classes).
  kiln::Tensor forward(const kiln::Tensor& images) const;
  std::string extra_repr() const override;

  const ConvNetConfig& config() const { return config_; }

  std::shared_ptr<kiln::nn::Sequential> features;  // the stages: conv, ReLU, downsample, ...
  std::shared_ptr<kiln::nn::Linear> head;

 private:
  ConvNetConfig config_;
};

// Floating-point operations of one forward pass on one image (a multiply-add counts 2):
// the convolutions, ContextPool's predictor and pooling when on, and the head. ReLU,
// max pooling and the global average are O(activations) and left out. Training costs
// about 3x this.
double forward_flops_per_image(const ConvNetConfig& config);

}  // namespace convnet
