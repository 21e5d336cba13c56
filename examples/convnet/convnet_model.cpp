#include "convnet_model.h"

#include <kiln/core/error.h>
#include <kiln/nn/activation.h>
#include <kiln/ops/reduce.h>

#include "../common/context_pool_flops.h"

namespace convnet {

using namespace kiln;

Downsample::Downsample(int64_t channels, const std::optional<nn::ContextPoolModuleOptions>& options) {
  if (options) {
    nn::ContextPoolModuleOptions strided = *options;
    strided.stride = 2;
    context_pool = register_module("context_pool", std::make_shared<nn::ContextPool2d>(channels, strided));
  } else {
    max_pool = register_module("max_pool", std::make_shared<nn::MaxPool2d>(2));
  }
}

Tensor Downsample::forward(const Tensor& x) const {
  return context_pool ? context_pool->forward_nchw(x) : max_pool->forward(x);
}

ConvNet::ConvNet(const ConvNetConfig& config) : config_(config) {
  KILN_CHECK(!config.channels.empty(), "ConvNet: needs at least one stage (channels is empty)");
  features = register_module("features", std::make_shared<nn::Sequential>());
  int64_t in = config.in_chans, side = config.image_size;
  for (int64_t out : config.channels) {
    KILN_CHECK(side >= 2, "ConvNet: ", config.channels.size(), " stages halve a ", config.image_size,
               "-pixel image below 1 pixel; use fewer stages");
    features->push_back(std::make_shared<nn::Conv2d>(in, out, 3, Conv2dOptions{.padding = 1}));
    features->push_back(std::make_shared<nn::ReLU>());
    features->push_back(std::make_shared<Downsample>(out, config.context_pool));
    in = out;
    side = Downsample::output_side(side, config.context_pool.has_value());
  }
  head = register_module("head", std::make_shared<nn::Linear>(in, config.num_classes));
}

Tensor ConvNet::forward(const Tensor& images) const {
  const Tensor maps = features->forward(images);  // (N, C, h, w)
  return head->forward(mean(maps, {2, 3}));       // global average pooling, then the classifier
}

std::string ConvNet::extra_repr() const {
  std::string widths;
  for (int64_t c : config_.channels) {
    if (!widths.empty()) widths += ',';
    widths += std::to_string(c);
  }
  return detail::str("image_size=", config_.image_size, ", channels=", widths,
                     ", downsample=", config_.context_pool ? "ContextPool2d(stride 2)" : "MaxPool2d(2)");
}

double forward_flops_per_image(const ConvNetConfig& config) {
  double flops = 0;
  int64_t in = config.in_chans, side = config.image_size;
  for (int64_t out : config.channels) {
    const double cells = static_cast<double>(side * side);
    flops += 2 * cells * static_cast<double>(out * in * 9);  // the 3x3 conv, padding 1: same size out
    if (config.context_pool) {
      nn::ContextPoolModuleOptions strided = *config.context_pool;
      strided.stride = 2;
      flops += examples::context_pool2d_flops(strided, Size2(side, side), out);
    }
    in = out;
    side = Downsample::output_side(side, config.context_pool.has_value());
  }
  return flops + 2 * static_cast<double>(in * config.num_classes);
}

}  // namespace convnet
