// convnet: trains a small ConvNet to classify images; --context-pool replaces its max
// pooling layers by ContextPool2d with stride 2 (the paper's ConvNet use).
//
//   convnet                                   the generated shapes task, max pooling
//   convnet --context-pool                    the same net, ContextPool2d downsampling
//   convnet --data data/cifar-10-batches-bin  CIFAR-10 (binary) or MNIST (IDX) from a folder
//   convnet --device cuda                     train and evaluate on the first GPU
//
// Prints the parameter count, FLOPs per image, train loss and test accuracy as it goes,
// and test accuracy per class at the end. README.md in this folder has the details.
#include <omp.h>

#include <cstdio>
#include <memory>
#include <sstream>

#include <kiln/core/error.h>
#include <kiln/core/random.h>

#include "../common/flags.h"
#include "../common/image_classification.h"
#include "convnet_model.h"

using namespace kiln;

namespace {

// "32,64,128" -> {32, 64, 128}; an empty list or a width < 1 is a usage mistake (exit 2).
std::vector<int64_t> parse_widths(const std::string& text, const examples::Flags& flags) {
  std::vector<int64_t> widths;
  std::stringstream items(text);
  std::string item;
  while (std::getline(items, item, ',')) {
    size_t used = 0;
    long long width = 0;
    try {
      width = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size() || width < 1)
      flags.fail("--channels expects positive integers separated by commas, e.g. 32,64,128; got '" + text + "'");
    widths.push_back(width);
  }
  if (widths.empty()) flags.fail("--channels needs at least one width");
  return widths;
}

}  // namespace

int main(int argc, char** argv) {
  examples::ImageTrainingFlags training;
  examples::ContextPoolFlags pool;
  // A pooling layer that replaces a 2 x 2 max pool needs a smaller reach than token
  // pooling in a ViT: s up to 1.5 cells, a window of +-5 cells (and half the cost of s_max 3).
  pool.s_max = 1.5;
  std::string channels = "32,64,128";
  examples::Flags flags("convnet", "Trains a ConvNet (3x3 conv, ReLU, downsample by 2, per stage; global average "
                                   "pooling; linear head) on images; --context-pool downsamples with ContextPool2d.");
  training.add_to(flags);
  flags.section("model");
  flags.add("--channels", channels, "conv widths, one stage each, comma-separated");
  pool.add_to(flags);
  flags.parse(argc, argv);
  training.check(flags);
  const std::vector<int64_t> widths = parse_widths(channels, flags);
  if (training.threads > 0) omp_set_num_threads(static_cast<int>(training.threads));

  try {
    const examples::ImageData data = examples::load_image_data(training);
    const convnet::ConvNetConfig config{.image_size = data.image_size,
                                        .in_chans = data.channels,
                                        .num_classes = data.num_classes,
                                        .channels = widths,
                                        .context_pool = pool.options()};  // Downsample sets stride 2
    manual_seed(training.seed);
    auto model = std::make_shared<convnet::ConvNet>(config);
    std::printf("convnet: %s\n", model->extra_repr().c_str());
    examples::train_image_classifier(
        *model, [&](const Tensor& images) { return model->forward(images); }, data, training,
        convnet::forward_flops_per_image(config), "convnet");
  } catch (const Error& e) {
    std::fprintf(stderr, "convnet: %s\n", e.what());
    return 1;
  }
  return 0;
}
