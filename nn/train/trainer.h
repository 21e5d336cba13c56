// Trainer: the training loop, written once, with what every real run needs around it:
// gradient accumulation and clipping, an lr schedule, periodic evaluation, a progress bar,
// a JSON Lines metrics log, checkpoints every N steps, resuming exactly where a run
// stopped, and a clean stop when the loss stops being a number.
//
//   auto model = std::make_shared<Mlp>();
//   nn::optim::AdamW opt(model->parameters(), {.lr = 1e-3});
//   nn::data::DataLoader loader(train_set, {.batch_size = 64, .shuffle = true});
//   nn::Trainer trainer(*model, opt, {.max_steps = 1000, .eval_interval = 200,
//                                     .checkpoint_dir = "ckpt", .checkpoint_interval = 200});
//   trainer.set_eval([&] { return nn::Metrics{{"val_loss", validation_loss(*model)}}; });
//   trainer.fit(loader, [&](const nn::data::Batch& b) {
//     return cross_entropy(model->forward(b.input), b.target);
//   });
//
// One step is one optimizer update; steps are counted from 1, and "step k" in messages,
// logs and checkpoints means "after k updates". Step k:
//   1. the lr schedule, if set, sets the lr of update k (its set_step(k - 1));
//   2. grad_accum_steps times: batch = data.next(), loss = loss_fn(batch); a NaN or
//      infinite loss stops the run with a kiln::Error naming the step, before any update,
//      so the model and the last checkpoint still hold good weights; otherwise
//      (loss / grad_accum_steps).backward(): the gradients add up to those of the mean loss;
//   3. with clip_grad_norm > 0, the global gradient norm is clipped (a non-finite norm
//      stops the run like a NaN loss);
//   4. optimizer.step();
//   5. reports: the on_step hook, the progress display, and every log_interval steps a
//      metrics line; eval every eval_interval steps; a checkpoint every
//      checkpoint_interval steps. The last step always evaluates (when an eval function
//      is set) and checkpoints (when checkpoint_dir is set).
//
// Devices. TrainerOptions::device says where the model lives: fit() checks that every
// parameter is there (move the model with model.to(device) before building the optimizer)
// and moves each batch there before the loss function sees it. On a GPU the only waits
// for the device are the ones the loop needs anyway: one per step, reading the step's
// micro-batch losses (the NaN stop and the logged loss) and, when clipping, the gradient
// norm, all in one copy after the last backward.
//
// Checkpoints. checkpoint_dir/latest.ckpt.safetensors holds the model, the optimizer
// (moments, step counts, lrs), kiln's global RNG state (dropout masks), the step and the
// data source's position, written atomically (nn::save_checkpoint), so a crash at any
// moment leaves the previous checkpoint or the new one. With `resume`, fit() loads it
// first and continues: the losses from there on are bit-identical to a run that never
// stopped (same thread count; a parallel GEMM sums in another order with another one).
// A checkpoint is device-neutral: tensors are saved from wherever they live and resumed
// onto the parameters' device, so a run may save on a GPU and resume on the CPU too.
//
// The Trainer lives in kiln::nn, not in a namespace nn::train like the folder: inside a
// class derived from Module, `train` already names Module::train().
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <string>

#include "kiln/core/device.h"
#include "kiln/nn/module.h"
#include "kiln/nn/optim/lr_scheduler.h"
#include "kiln/nn/optim/optimizer.h"
#include "kiln/nn/train/batch_source.h"

namespace kiln::nn {

struct TrainerOptions {
  int64_t max_steps = 0;                    // optimizer updates in the whole run (required, > 0)
  int64_t grad_accum_steps = 1;             // micro-batches per update
  double clip_grad_norm = 0;                // max global L2 norm of the gradients; 0 = no clipping
  int64_t eval_interval = 0;                // steps between evals; 0 = only after the last step
  int64_t log_interval = 10;                // steps between progress lines and metrics lines; 0 = none
  std::string checkpoint_dir;               // where latest.ckpt.safetensors goes; empty = no checkpoints
  int64_t checkpoint_interval = 0;          // steps between checkpoints; 0 = only after the last step
  bool resume = false;                      // continue from checkpoint_dir's checkpoint (it must exist)
  std::string metrics_path;                 // JSON Lines metrics log; empty = none. Appended to on resume
  std::string progress = "auto";            // "auto" (bar on a terminal, else lines), "bar", "lines", "none"
  std::string throughput_unit = "samples";  // "samples" (batch rows) or "tokens" (target elements)
  std::ostream* output = nullptr;           // where progress goes; nullptr = std::cerr
  Device device = Device::cpu();            // where the model is and the batches go
};

// Named numbers an eval function returns, e.g. {{"val_loss", 1.23}, {"accuracy", 0.98}}.
using Metrics = std::map<std::string, double>;

// What one optimizer step did, as the on_step hook sees it.
struct StepStats {
  int64_t step = 0;      // 1-based: the updates done, this one included
  double loss = 0;       // mean of the micro-batches' losses
  double lr = 0;         // the lr this update used (parameter group 0)
  double grad_norm = 0;  // the global norm before clipping; NaN when clipping is off
  int64_t items = 0;     // samples or tokens trained on (see TrainerOptions::throughput_unit)
  double seconds = 0;    // wall time of the step
};

// What fit() did.
struct TrainResult {
  int64_t start_step = 0;  // where it started: 0, or the resumed checkpoint's step
  int64_t step = 0;        // where it ended: max_steps (or the checkpoint's step, if past it)
  double loss = 0;         // the last step's loss; NaN when no step ran
  Metrics eval;            // the last evaluation's metrics; empty when none ran
  double seconds = 0;      // wall time of this fit()
};

class Trainer {
 public:
  // Computes the loss of one (micro-)batch; it must return a scalar that requires grad.
  using LossFn = std::function<Tensor(const data::Batch&)>;
  // Runs with the model in eval mode and grad mode off; the trainer restores both.
  using EvalFn = std::function<Metrics()>;
  using StepFn = std::function<void(const StepStats&)>;

  // The trainer keeps references: model and optimizer must outlive it. Options are
  // checked here; a bad one is a kiln::Error naming it.
  Trainer(Module& model, optim::Optimizer& optimizer, TrainerOptions options);

  // The schedule sets the optimizer's lr before every step (it must drive `optimizer`).
  void set_lr_schedule(optim::LRScheduler& schedule) { schedule_ = &schedule; }
  void set_eval(EvalFn eval) { eval_ = std::move(eval); }
  // Called after every step, e.g. to record losses or sample from a language model.
  void set_on_step(StepFn on_step) { on_step_ = std::move(on_step); }

  // Trains from step 0, or from the checkpoint with options.resume, up to max_steps, with
  // the model in training mode. Each call is a run of its own: its steps count from 0
  // (or the checkpoint's step), while the model and optimizer go on from where they are.
  TrainResult fit(BatchSource& data, const LossFn& loss_fn);
  TrainResult fit(data::DataLoader& loader, const LossFn& loss_fn);
  TrainResult fit(data::RandomWindows& windows, const LossFn& loss_fn);

  const TrainerOptions& options() const { return options_; }
  // checkpoint_dir/latest.ckpt.safetensors (empty when checkpoint_dir is).
  std::string checkpoint_path() const;

 private:
  struct Run;  // the counters of one fit(), in trainer.cpp

  void check_options() const;
  void check_model_device() const;
  data::Batch next_batch(BatchSource& data) const;
  void resume(Run& run, BatchSource& data);
  std::string plan_message(const Run& run) const;
  StepStats train_step(const Run& run, BatchSource& data, const LossFn& loss_fn);
  Tensor backward_micro_batch(const Run& run, const data::Batch& batch, const LossFn& loss_fn);
  double mean_loss(const Run& run, const std::vector<double>& values) const;
  [[noreturn]] void stop_on_non_finite(const Run& run, const std::string& what, double value) const;
  void report_step(Run& run, const StepStats& stats);
  void evaluate(Run& run);
  void write_checkpoint(Run& run, const BatchSource& data);
  int64_t count_items(const data::Batch& batch) const;

  Module& model_;
  optim::Optimizer& optimizer_;
  TrainerOptions options_;
  optim::LRScheduler* schedule_ = nullptr;
  EvalFn eval_;
  StepFn on_step_;
};

}  // namespace kiln::nn
