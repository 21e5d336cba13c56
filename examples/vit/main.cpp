// vit: trains a small Vision Transformer to classify images, with ContextPool as a switch.
//
//   vit                                  the generated shapes task (nn/data/shapes.h), defaults
//   vit --context-pool --depth 2         ContextPool2d on the patch grid after each attention
//   vit --data data/mnist --patch 4      MNIST (IDX files) or CIFAR-10 (binary) from a folder
//   vit --checkpoint-dir ckpt ...; vit --checkpoint-dir ckpt --resume ...
//   vit --device cuda                    train and evaluate on the first GPU
//
// Prints the parameter count, FLOPs per image, train loss and test accuracy as it goes,
// and test accuracy per class at the end. README.md in this folder has the details.
#include <omp.h>

#include <cstdio>
#include <memory>

#include <kiln/core/error.h>
#include <kiln/core/random.h>

#include "../common/flags.h"
#include "../common/image_classification.h"
#include "vit_model.h"

using namespace kiln;

namespace {

struct ModelFlags {
  int64_t patch = 4, d_model = 64, depth = 4, heads = 4;
  double mlp_ratio = 2, dropout = 0;
  std::string placement = "after_attention";

  void add_to(examples::Flags& flags) {
    flags.section("model");
    flags.add("--patch", patch, "patch side in pixels (must divide the image side)");
    flags.add("--d-model", d_model, "token width (a multiple of --heads)");
    flags.add("--depth", depth, "transformer blocks");
    flags.add("--heads", heads, "attention heads");
    flags.add("--mlp-ratio", mlp_ratio, "MLP hidden width in units of --d-model");
    flags.add("--dropout", dropout, "dropout on attention probabilities and sub-layer outputs");
  }
  void add_placement_to(examples::Flags& flags) {
    flags.add("--pool-placement", placement, "where each block pools: after its attention (the paper's) or its output",
              {"after_attention", "after_block"});
  }
  void check(const examples::Flags& flags) const {
    if (patch < 1 || d_model < 1 || depth < 1 || heads < 1)
      flags.fail("--patch, --d-model, --depth and --heads must be >= 1");
    if (d_model % heads != 0)
      flags.fail("--d-model " + std::to_string(d_model) + " is not a multiple of --heads " + std::to_string(heads));
    if (mlp_ratio <= 0) flags.fail("--mlp-ratio must be > 0");
    if (dropout < 0 || dropout >= 1) flags.fail("--dropout must be in [0, 1)");
  }
};

}  // namespace

int main(int argc, char** argv) {
  examples::ImageTrainingFlags training;
  ModelFlags model_flags;
  examples::ContextPoolFlags pool;
  examples::Flags flags("vit", "Trains a Vision Transformer (patch embedding, pre-LN blocks, mean-pooled head) "
                               "on images; --context-pool adds ContextPool2d on the patch grid to every block.");
  training.add_to(flags);
  model_flags.add_to(flags);
  pool.add_to(flags);
  model_flags.add_placement_to(flags);
  flags.parse(argc, argv);
  training.check(flags);
  model_flags.check(flags);
  if (training.threads > 0) omp_set_num_threads(static_cast<int>(training.threads));

  try {
    const examples::ImageData data = examples::load_image_data(training);
    if (data.image_size % model_flags.patch != 0)
      flags.fail("--patch " + std::to_string(model_flags.patch) + " does not divide the " + data.name +
                 " image side " + std::to_string(data.image_size));
    const vit::VitConfig config{.image_size = data.image_size,
                                .in_chans = data.channels,
                                .num_classes = data.num_classes,
                                .patch_size = model_flags.patch,
                                .d_model = model_flags.d_model,
                                .depth = model_flags.depth,
                                .num_heads = model_flags.heads,
                                .mlp_ratio = model_flags.mlp_ratio,
                                .dropout = model_flags.dropout,
                                .context_pool = pool.options(),
                                .context_pool_placement = model_flags.placement};
    manual_seed(training.seed);
    auto model = std::make_shared<vit::VisionTransformer>(config);
    std::printf("vit: %s\n", model->extra_repr().c_str());
    examples::train_image_classifier(
        *model, [&](const Tensor& images) { return model->forward(images); }, data, training,
        vit::forward_flops_per_image(config), "vit");
  } catch (const Error& e) {
    std::fprintf(stderr, "vit: %s\n", e.what());
    return 1;
  }
  return 0;
}
