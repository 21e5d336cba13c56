// image_classification.h: what the vit and convnet examples share (header-only): the
// data (MNIST IDX or CIFAR-10 binary from a folder, else the generated shapes task of
// nn/data/shapes.h), the training and ContextPool flags, and the run itself: a Trainer
// over a shuffling DataLoader, test accuracy as the eval, and the final report. Each
// example adds its model and its FLOP count.
//
//   kiln::examples::ImageTrainingFlags training;  // set example-specific defaults here
//   training.add_to(flags);
//   flags.parse(argc, argv);
//   training.check(flags);
//   ImageData data = load_image_data(training);
//   auto model = ...;
//   train_image_classifier(*model, forward, data, training, flops, "vit");  // moves the model to --device
#pragma once

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <kiln/autograd/grad_mode.h>
#include <kiln/core/factory.h>
#include <kiln/nn/context_pool.h>
#include <kiln/nn/data/cifar.h>
#include <kiln/nn/data/dataloader.h>
#include <kiln/nn/data/mnist.h>
#include <kiln/nn/data/shapes.h>
#include <kiln/nn/optim/adam.h>
#include <kiln/nn/optim/lr_scheduler.h>
#include <kiln/nn/train/trainer.h>
#include <kiln/ops/elementwise.h>
#include <kiln/ops/loss.h>
#include <kiln/ops/reduce.h>
#include <kiln/ops/shape.h>

#include "device.h"
#include "flags.h"

namespace kiln::examples {

// ---- flags --------------------------------------------------------------------------------

// The data and training flags of both examples. Each example may change a default before
// add_to(); --help shows the values held then.
struct ImageTrainingFlags {
  // data
  std::string data;  // a folder with MNIST IDX or CIFAR-10 binary files; empty = the shapes task
  int64_t train_size = 16384, test_size = 2048, image_size = 32;  // shapes only
  double noise = 0.15;                                           // shapes only
  // training
  int64_t steps = 1000, epochs = 0, batch = 64, warmup = 50;
  double lr = 1e-3, min_lr = 1e-4, weight_decay = 0.05, clip = 1.0;
  std::string schedule = "cosine";
  uint64_t seed = 0;
  int64_t threads = 0;
  std::string device = "cpu";  // "cpu" or "cuda" (the first GPU)
  bool bf16 = false;           // matrix products in bf16 on the GPU (core/autocast.h)
  // reporting and checkpoints
  int64_t eval_interval = 250, log_interval = 50;
  std::string checkpoint_dir, metrics;
  bool resume = false;

  void add_to(Flags& flags) {
    flags.section("data");
    flags.add("--data", data,
              "folder with MNIST (train-images-idx3-ubyte, ...) or CIFAR-10 (data_batch_1.bin, ...) files; "
              "none = the generated shapes task");
    flags.add("--train-size", train_size, "shapes: training images");
    flags.add("--test-size", test_size, "shapes: test images");
    flags.add("--image-size", image_size, "shapes: image side in pixels (>= 16)");
    flags.add("--noise", noise, "shapes: standard deviation of the pixel noise");
    flags.section("training");
    flags.add("--steps", steps, "optimizer updates (ignored when --epochs is given)");
    flags.add("--epochs", epochs, "passes over the training set; 0 = use --steps");
    flags.add("--batch", batch, "images per update");
    flags.add("--lr", lr, "peak learning rate (AdamW)");
    flags.add("--schedule", schedule, "learning-rate schedule", {"cosine", "constant"});
    flags.add("--warmup", warmup, "cosine: linear warmup steps");
    flags.add("--min-lr", min_lr, "cosine: the learning rate at the last step");
    flags.add("--weight-decay", weight_decay, "AdamW's decoupled weight decay");
    flags.add("--clip", clip, "max global gradient norm; 0 = no clipping");
    flags.add("--seed", seed, "seed of the weights, the data order and the shapes task");
    flags.add("--threads", threads, "OpenMP threads; 0 = OpenMP's default");
    flags.add("--device", device, kDeviceHelp, {"cpu", "cuda"});
    flags.add("--bf16", bf16, kBf16Help);
    flags.section("reporting and checkpoints");
    flags.add("--eval-interval", eval_interval, "steps between test-set evaluations; 0 = only at the end");
    flags.add("--log-interval", log_interval, "steps between progress lines");
    flags.add("--checkpoint-dir", checkpoint_dir, "where to keep latest.ckpt.safetensors; none = no checkpoints");
    flags.add("--resume", resume, "continue from the checkpoint in --checkpoint-dir");
    flags.add("--metrics", metrics, "JSON Lines metrics log; none = no log");
  }

  // Range checks after parsing; a mistake exits with code 2.
  void check(const Flags& flags) const {
    auto require = [&](bool ok, const std::string& message) {
      if (!ok) flags.fail(message);
    };
    require(train_size >= 1 && test_size >= 1, "--train-size and --test-size must be >= 1");
    require(image_size >= 16, "--image-size must be >= 16, got " + std::to_string(image_size));
    require(noise >= 0, "--noise must be >= 0");
    require(steps >= 1, "--steps must be >= 1, got " + std::to_string(steps));
    require(epochs >= 0, "--epochs must be >= 0, got " + std::to_string(epochs));
    require(batch >= 1, "--batch must be >= 1, got " + std::to_string(batch));
    require(lr > 0 && min_lr >= 0 && min_lr <= lr, "need --lr > 0 and 0 <= --min-lr <= --lr");
    require(warmup >= 0, "--warmup must be >= 0");
    require(weight_decay >= 0 && clip >= 0, "--weight-decay and --clip must be >= 0");
    require(threads >= 0, "--threads must be >= 0");
    require(eval_interval >= 0 && log_interval >= 0, "--eval-interval and --log-interval must be >= 0");
    require(!resume || !checkpoint_dir.empty(), "--resume needs --checkpoint-dir (where the checkpoint is)");
  }
};

// --context-pool and its options, for a ContextPool2d on a grid (ViT tokens, conv features).
struct ContextPoolFlags {
  bool enabled = false;
  std::string mode = "adaptive";
  double s_min = 0.25, s_max = 3.0, size = 1.0;
  int64_t window = 0;

  void add_to(Flags& flags) {
    flags.section("ContextPool (Huang et al., ICML 2022)");
    flags.add("--context-pool", enabled, "pool with ContextPool2d (learned weights and support sizes)");
    flags.add("--pool-mode", mode, "what is learned (the paper's module: adaptive; the rest are ablations)",
              {"adaptive", "fixed_size", "weights_only", "size_only", "uniform"});
    flags.add("--pool-s-min", s_min, "smallest learned support size, in grid cells");
    flags.add("--pool-s-max", s_max, "largest learned support size, in grid cells");
    flags.add("--pool-size", size, "the fixed size of fixed_size / weights_only; uniform's half-width");
    flags.add("--pool-window", window, "the op's half-width; 0 = ceil(3 x the largest size)");
  }

  // The module options (stride 1), or nothing without --context-pool.
  std::optional<nn::ContextPoolModuleOptions> options() const {
    if (!enabled) return std::nullopt;
    return nn::ContextPoolModuleOptions{
        .mode = nn::context_pool_mode_from_string(mode), .s_min = s_min, .s_max = s_max, .size = size, .window = window};
  }
};

// ---- data -----------------------------------------------------------------------------------

struct ImageData {
  std::string name;  // "shapes", "MNIST" or "CIFAR-10"
  std::shared_ptr<nn::data::TensorDataset> train, test;
  int64_t channels = 1, image_size = 32, num_classes = 4;
  std::vector<std::string> class_names;
};

// Scales both splits by the training images' mean and standard deviation (one number
// each, over every pixel): inputs of mean 0 and variance 1, whatever the data set.
inline void standardize(ImageData& data) {
  const Tensor& train_images = data.train->inputs();
  const double mean_value = mean(train_images).item();
  const Tensor centred = train_images - mean_value;
  const double std_value = std::max(std::sqrt(mean(centred * centred).item()), 1e-6);
  auto scaled = [&](const nn::data::TensorDataset& set) {
    return std::make_shared<nn::data::TensorDataset>((set.inputs() - mean_value) / std_value, set.targets());
  };
  data.train = scaled(*data.train);
  data.test = scaled(*data.test);
}

inline ImageData shapes_data(const ImageTrainingFlags& flags) {
  namespace data = nn::data;
  const data::ShapesOptions train{
      .count = flags.train_size, .image_size = flags.image_size, .noise = flags.noise, .seed = flags.seed};
  data::ShapesOptions test = train;
  test.count = flags.test_size;
  ImageData out{.name = "shapes",
                .train = std::make_shared<data::TensorDataset>(data::make_shapes(train, /*train=*/true)),
                .test = std::make_shared<data::TensorDataset>(data::make_shapes(test, /*train=*/false)),
                .channels = 1,
                .num_classes = data::kShapesNumClasses};
  for (int64_t c = 0; c < data::kShapesNumClasses; ++c) out.class_names.push_back(data::shapes_class_name(c));
  return out;
}

inline ImageData mnist_data(const std::string& folder) {
  return {.name = "MNIST",
          .train = std::make_shared<nn::data::TensorDataset>(nn::data::load_mnist(folder, /*train=*/true)),
          .test = std::make_shared<nn::data::TensorDataset>(nn::data::load_mnist(folder, /*train=*/false)),
          .channels = 1,
          .num_classes = 10};
}

inline ImageData cifar10_data(const std::string& folder) {
  return {.name = "CIFAR-10",
          .train = std::make_shared<nn::data::TensorDataset>(nn::data::load_cifar10(folder, /*train=*/true)),
          .test = std::make_shared<nn::data::TensorDataset>(nn::data::load_cifar10(folder, /*train=*/false)),
          .channels = 3,
          .num_classes = 10};
}

// The shapes task when flags.data is empty; else MNIST when that folder holds
// train-images-idx3-ubyte, CIFAR-10 when it holds data_batch_1.bin, and a kiln::Error
// when it holds neither. Standardised, with image_size and class names filled in.
inline ImageData load_image_data(const ImageTrainingFlags& flags) {
  namespace fs = std::filesystem;
  const fs::path folder = flags.data;
  ImageData out;
  if (flags.data.empty()) out = shapes_data(flags);
  else if (fs::is_regular_file(folder / "train-images-idx3-ubyte")) out = mnist_data(flags.data);
  else if (fs::is_regular_file(folder / "data_batch_1.bin")) out = cifar10_data(flags.data);
  else
    throw Error("--data '" + flags.data +
                "' holds neither MNIST (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                "t10k-labels-idx1-ubyte, gunzipped) nor CIFAR-10 binary files (data_batch_1.bin .. "
                "data_batch_5.bin, test_batch.bin)");
  const Tensor& images = out.train->inputs();
  KILN_CHECK(images.size(2) == images.size(3), "the images must be square, got ", images.size(2), " x ",
             images.size(3));
  out.image_size = images.size(2);
  if (out.class_names.empty())
    for (int64_t c = 0; c < out.num_classes; ++c) out.class_names.push_back(std::to_string(c));
  standardize(out);
  return out;
}

// ---- training -------------------------------------------------------------------------------

// Test-set accuracy and loss, in batches computed on `device` (the model's); `per_class`,
// when given, gets each class's accuracy. The loss and the predictions stay on the device
// until the last batch, so the GPU runs the whole evaluation before the host waits, once.
inline nn::Metrics evaluate_classifier(const std::function<Tensor(const Tensor&)>& forward, const ImageData& data,
                                       Device device, std::vector<double>* per_class = nullptr) {
  const Tensor& images = data.test->inputs();
  const Tensor& labels = data.test->targets();
  const int64_t n = images.size(0), chunk = 500;
  KILN_CHECK(n > 0, "evaluate_classifier: the test set is empty");
  Tensor loss_sum;  // on `device`
  std::vector<Tensor> predictions;
  for (int64_t start = 0; start < n; start += chunk) {
    const int64_t len = std::min(chunk, n - start);
    const Tensor logits = forward(images.narrow(0, start, len).to(device)).detach();
    const Tensor chunk_loss = cross_entropy(logits, labels.narrow(0, start, len).to(device)) * static_cast<double>(len);
    loss_sum = loss_sum.defined() ? loss_sum + chunk_loss : chunk_loss;
    predictions.push_back(argmax(logits, 1));
  }
  const std::vector<int64_t> predicted = cat(predictions, 0).to_vector<int64_t>();
  const std::vector<int64_t> truth = labels.to_vector<int64_t>();
  std::vector<double> correct(data.num_classes, 0), seen(data.num_classes, 0);
  for (int64_t i = 0; i < n; ++i) {
    seen[truth[i]] += 1;
    correct[truth[i]] += predicted[i] == truth[i] ? 1 : 0;
  }
  double total_correct = 0;
  for (double c : correct) total_correct += c;
  if (per_class != nullptr) {
    per_class->clear();
    for (int64_t c = 0; c < data.num_classes; ++c) per_class->push_back(seen[c] > 0 ? correct[c] / seen[c] : 0.0);
  }
  return {{"test_acc", total_correct / static_cast<double>(n)}, {"test_loss", loss_sum.item() / static_cast<double>(n)}};
}

inline std::string with_thousands(double value) {
  std::string digits = std::to_string(static_cast<long long>(std::llround(value)));
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3) digits.insert(static_cast<size_t>(i), ",");
  return digits;
}

// What is about to run: the data, the model's size and cost, the length of the run.
inline void print_plan(const char* program, const ImageData& data, const nn::Module& model, double forward_flops,
                       int64_t steps, int64_t batch, Device device) {
  std::printf("%s: %s, %lld training / %lld test images of %lld x %lld x %lld, %lld classes\n", program,
              data.name.c_str(), static_cast<long long>(data.train->size()), static_cast<long long>(data.test->size()),
              static_cast<long long>(data.channels), static_cast<long long>(data.image_size),
              static_cast<long long>(data.image_size), static_cast<long long>(data.num_classes));
  std::printf("%s: %s parameters, %.2f MFLOPs per image forward (training ~3x: %.2f MFLOPs)\n", program,
              with_thousands(static_cast<double>(model.num_parameters())).c_str(), forward_flops / 1e6,
              3 * forward_flops / 1e6);
  std::printf("%s: %lld steps of %lld images (%.1f epochs), %d threads\n", program, static_cast<long long>(steps),
              static_cast<long long>(batch),
              static_cast<double>(steps * batch) / static_cast<double>(data.train->size()), omp_get_max_threads());
  if (device.is_cuda())
    std::printf("%s: on %s (%s)\n", program, device.str().c_str(), cuda::device_name(device.index).c_str());
  std::fflush(stdout);  // before the Trainer's progress, which goes to stderr
}

// The final lines: train loss, test accuracy and loss, and each class's test accuracy.
inline void print_report(const char* program, const ImageData& data, const nn::TrainResult& result,
                         const nn::Metrics& test, const std::vector<double>& per_class) {
  std::printf("%s: train loss %.4f at step %lld, %.1f s\n", program, result.loss, static_cast<long long>(result.step),
              result.seconds);
  std::printf("%s: test accuracy %.4f (chance %.4f), test loss %.4f\n", program, test.at("test_acc"),
              1.0 / static_cast<double>(data.num_classes), test.at("test_loss"));
  std::printf("%s: per class:", program);
  for (int64_t c = 0; c < data.num_classes; ++c)
    std::printf("%s %s %.3f", c == 0 ? "" : ",", data.class_names[c].c_str(), per_class[c]);
  std::printf("\n");
}

// Trains `model` (logits = forward(images)) on --device with AdamW and the flags'
// schedule on shuffled batches, evaluating on the test split every eval_interval steps and
// after the last, then prints the report. The model is moved to the device here, before
// its optimizer is built; the data stays on the CPU and goes over batch by batch.
inline void train_image_classifier(nn::Module& model, const std::function<Tensor(const Tensor&)>& forward,
                                  const ImageData& data, const ImageTrainingFlags& flags, double forward_flops,
                                  const char* program) {
  // drop_last keeps every batch the same size, so each step weighs the same.
  nn::data::DataLoader loader(data.train,
                              {.batch_size = flags.batch, .shuffle = true, .drop_last = true, .seed = flags.seed});
  KILN_CHECK(loader.size() > 0, "--batch ", flags.batch, " is larger than the training set (", data.train->size(),
             " images)");
  const int64_t steps = flags.epochs > 0 ? flags.epochs * loader.size() : flags.steps;
  const Device device = select_device(flags.device);
  const AutocastGuard mixed_precision(use_bf16(flags.bf16, device));  // training and evaluation
  model.to(device);
  print_plan(program, data, model, forward_flops, steps, flags.batch, device);

  nn::optim::AdamW optimizer(model.parameters(), {.lr = flags.lr, .weight_decay = flags.weight_decay});
  std::unique_ptr<nn::optim::LRScheduler> schedule;
  if (flags.schedule == "cosine")
    schedule = std::make_unique<nn::optim::WarmupCosineLR>(
        optimizer, nn::optim::WarmupCosineOptions{.warmup_steps = std::min(flags.warmup, steps - 1),
                                                  .total_steps = steps,
                                                  .min_lr = flags.min_lr});
  nn::Trainer trainer(model, optimizer,
                      {.max_steps = steps,
                       .clip_grad_norm = flags.clip,
                       .eval_interval = flags.eval_interval,
                       .log_interval = flags.log_interval,
                       .checkpoint_dir = flags.checkpoint_dir,
                       .checkpoint_interval = flags.checkpoint_dir.empty() ? 0 : flags.eval_interval,
                       .resume = flags.resume,
                       .metrics_path = flags.metrics,
                       .device = device});
  if (schedule) trainer.set_lr_schedule(*schedule);
  std::vector<double> per_class;  // of the latest eval; the trainer always evaluates after the last step
  trainer.set_eval([&] { return evaluate_classifier(forward, data, device, &per_class); });
  const nn::TrainResult result = trainer.fit(loader, [&](const nn::data::Batch& batch) {
    return cross_entropy(forward(batch.input), batch.target);
  });

  nn::Metrics test = result.eval;
  if (test.empty()) {  // a resumed run that found nothing left to train: evaluate the checkpoint
    NoGradGuard no_grad;
    model.eval();
    test = evaluate_classifier(forward, data, device, &per_class);
    model.train();
  }
  print_report(program, data, result, test, per_class);
}

}  // namespace kiln::examples
