// train_your_own: the README's "Train your own model" example, built by CMake so that it
// keeps compiling. A small MLP learns which of three rings a point of the plane lies in,
// with nn::Module layers, a shuffling DataLoader, AdamW with warmup + cosine, and the
// Trainer: progress, evals, a metrics log and checkpoints. Stop it at any moment and run
// `train_your_own --resume`: it continues from the last checkpoint.
#include <kiln/kiln.h>
#include <kiln/nn/activation.h>
#include <kiln/nn/data/dataloader.h>
#include <kiln/nn/linear.h>
#include <kiln/nn/optim/adam.h>
#include <kiln/nn/optim/lr_scheduler.h>
#include <kiln/nn/serialize.h>
#include <kiln/nn/train/trainer.h>

#include <cstdio>
#include <numbers>
#include <string>

using namespace kiln;

// 2 -> 64 -> 64 -> 3, with dropout after each hidden layer.
struct RingClassifier : nn::Module {
  std::shared_ptr<nn::Linear> fc1, fc2, fc3;
  std::shared_ptr<nn::Dropout> drop;
  RingClassifier() {
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(2, 64));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(64, 64));
    fc3 = register_module("fc3", std::make_shared<nn::Linear>(64, 3));
    drop = register_module("drop", std::make_shared<nn::Dropout>(0.1));
  }
  Tensor forward(const Tensor& x) const {
    Tensor h = drop->forward(relu(fc1->forward(x)));
    h = drop->forward(relu(fc2->forward(h)));
    return fc3->forward(h);  // logits
  }
};

// n points of the disc of radius 3, labelled by ring: 0 inside radius 1, 1 up to 2, 2 beyond.
std::shared_ptr<nn::data::TensorDataset> make_rings(int64_t n) {
  Tensor radius = uniform(0, 3, {n}), angle = uniform(0, 2 * std::numbers::pi, {n});
  Tensor points = stack({radius * cos(angle), radius * sin(angle)}, 1);  // (n, 2)
  Tensor ring = ge(radius, 1.0).to(i64) + ge(radius, 2.0).to(i64);       // (n)
  return std::make_shared<nn::data::TensorDataset>(points, ring);
}

int main(int argc, char** argv) {
  const bool resume = argc > 1 && std::string(argv[1]) == "--resume";
  try {
    manual_seed(0);
    auto train_set = make_rings(4096), val_set = make_rings(1024);
    auto model = std::make_shared<RingClassifier>();
    nn::optim::AdamW opt(model->parameters(), {.lr = 3e-3, .weight_decay = 0.01});
    nn::optim::WarmupCosineLR schedule(opt, {.warmup_steps = 20, .total_steps = 300, .min_lr = 3e-4});
    nn::data::DataLoader loader(train_set, {.batch_size = 64, .shuffle = true, .seed = 1});

    nn::Trainer trainer(*model, opt,
                        {.max_steps = 300, .clip_grad_norm = 1.0, .eval_interval = 100, .log_interval = 50,
                         .checkpoint_dir = "train_your_own_ckpt", .checkpoint_interval = 100, .resume = resume,
                         .metrics_path = "train_your_own_ckpt/metrics.jsonl"});
    trainer.set_lr_schedule(schedule);
    trainer.set_eval([&] {  // runs in eval mode (no dropout), without building a graph
      Tensor logits = model->forward(val_set->inputs());
      Tensor correct = eq(argmax(logits, 1), val_set->targets()).to(f32);
      return nn::Metrics{{"val_loss", cross_entropy(logits, val_set->targets()).item()},
                         {"val_acc", mean(correct).item()}};
    });
    nn::TrainResult result = trainer.fit(loader, [&](const nn::data::Batch& batch) {
      return cross_entropy(model->forward(batch.input), batch.target);
    });

    nn::save(*model, "train_your_own_ckpt/model.safetensors");  // the weights alone, for inference
    if (!result.eval.empty())  // empty when a resumed run had nothing left to train
      std::printf("validation accuracy %.3f at step %lld\n", result.eval.at("val_acc"),
                  static_cast<long long>(result.step));
  } catch (const Error& e) {
    std::fprintf(stderr, "train_your_own: %s\n", e.what());
    return 1;
  }
  return 0;
}
