#include "kiln/nn/train/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <iostream>
#include <limits>
#include <system_error>

#include "kiln/autograd/grad_mode.h"
#include "kiln/core/random.h"
#include "kiln/cuda/device.h"
#include "kiln/nn/optim/clip_grad.h"
#include "kiln/nn/serialize.h"
#include "kiln/nn/train/metrics_log.h"
#include "kiln/nn/train/progress.h"
#include "kiln/ops/elementwise.h"
#include "kiln/ops/shape.h"

namespace kiln::nn {

namespace {

using Clock = std::chrono::steady_clock;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr const char* kCheckpointFile = "latest.ckpt.safetensors";
// Checkpoint metadata the trainer adds, so elapsed time keeps counting across resumes.
constexpr const char* kElapsedKey = "trainer.elapsed_s";
// The bar shows the mean loss of this many recent steps: one step's loss is too noisy to read.
constexpr size_t kBarLossSteps = 20;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// True after the steps that are multiples of `interval` (0: never), and after the last one.
bool is_due(int64_t step, int64_t interval, int64_t last_step) {
  return (interval > 0 && step % interval == 0) || step == last_step;
}

// "NaN", "inf" or "-inf" (the sign of a NaN means nothing; printf would show "-nan").
std::string describe_non_finite(double value) {
  if (std::isnan(value)) return "NaN";
  return value > 0 ? "inf" : "-inf";
}

std::string format_metric(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.4f", value);
  return buffer;
}

// The batch with its tensors on `device` (a host-to-device copy is queued on the device's
// stream; the loss function's kernels queue after it).
data::Batch batch_on(const data::Batch& batch, Device device) {
  auto moved = [&](const Tensor& t) { return t.defined() ? t.to(device) : t; };
  return {.input = moved(batch.input), .target = moved(batch.target)};
}

// How C++ code names the device: "Device::cpu()", "Device::cuda(0)".
std::string device_expression(Device device) {
  return device.is_cpu() ? "Device::cpu()" : detail::str("Device::cuda(", device.index, ")");
}

// Puts the model in eval mode for the scope, then back in the mode it was in.
class EvalModeGuard {
 public:
  explicit EvalModeGuard(Module& model) : model_(model), was_training_(model.is_training()) { model_.eval(); }
  ~EvalModeGuard() { model_.train(was_training_); }
  EvalModeGuard(const EvalModeGuard&) = delete;
  EvalModeGuard& operator=(const EvalModeGuard&) = delete;

 private:
  Module& model_;
  bool was_training_;
};

// Sums over a stretch of steps: the mean loss and the throughput of its training time
// (evals and checkpoints are not counted).
struct StepTotals {
  double loss_sum = 0;
  int64_t steps = 0;
  int64_t items = 0;
  double seconds = 0;

  void add(const StepStats& s) {
    loss_sum += s.loss;
    steps += 1;
    items += s.items;
    seconds += s.seconds;
  }
  double mean_loss() const { return loss_sum / static_cast<double>(steps); }
  double rate() const { return static_cast<double>(items) / seconds; }
};

// The values of one-element tensors on one device, read in one copy (on a GPU, one wait).
std::vector<double> read_scalars(const std::vector<Tensor>& scalars) {
  std::vector<Tensor> flat;
  flat.reserve(scalars.size());
  for (const Tensor& t : scalars) flat.push_back(t.reshape({1}));
  return cat(flat).to(Device::cpu()).to_vector<double>();
}

}  // namespace

// The counters of one fit().
struct Trainer::Run {
  Run(std::ostream& out, ProgressStyle style, const std::string& metrics_path, bool append_metrics)
      : progress(out, style), metrics(metrics_path, append_metrics) {}

  ProgressPrinter progress;
  MetricsLog metrics;
  Clock::time_point started = Clock::now();
  double elapsed_before = 0;  // wall time of the runs this one resumed, from the checkpoint

  int64_t start_step = 0;             // the step fit() began at (a resumed checkpoint's)
  int64_t step = 0;                   // updates done
  int64_t last_checkpoint_step = -1;  // -1: no checkpoint holds this run's weights
  double last_loss = kNaN;
  std::deque<double> recent_losses;  // the last kBarLossSteps steps', for the bar
  Metrics last_eval;
  StepTotals since_log;  // the steps since the last log event
  StepTotals all_steps;  // every step of this fit()

  void record(const StepStats& stats) {
    last_loss = stats.loss;
    recent_losses.push_back(stats.loss);
    if (recent_losses.size() > kBarLossSteps) recent_losses.pop_front();
    since_log.add(stats);
    all_steps.add(stats);
  }

  double elapsed() const { return elapsed_before + seconds_since(started); }
  double recent_loss() const {
    double sum = 0;
    for (double loss : recent_losses) sum += loss;
    return sum / static_cast<double>(recent_losses.size());
  }
  // The remaining steps at this fit()'s average pace so far, evals and checkpoints included.
  double eta(int64_t max_steps) const {
    const int64_t done = step - start_step;
    return done > 0 ? static_cast<double>(max_steps - step) * seconds_since(started) / static_cast<double>(done) : kNaN;
  }
};

// ---- setup ---------------------------------------------------------------------------------

Trainer::Trainer(Module& model, optim::Optimizer& optimizer, TrainerOptions options)
    : model_(model), optimizer_(optimizer), options_(std::move(options)) {
  check_options();
}

void Trainer::check_options() const {
  const TrainerOptions& o = options_;
  KILN_CHECK(o.max_steps > 0, "Trainer: max_steps must be positive, got ", o.max_steps);
  KILN_CHECK(o.grad_accum_steps >= 1, "Trainer: grad_accum_steps must be >= 1, got ", o.grad_accum_steps);
  KILN_CHECK(std::isfinite(o.clip_grad_norm) && o.clip_grad_norm >= 0,
             "Trainer: clip_grad_norm must be >= 0 (0 = no clipping), got ", o.clip_grad_norm);
  KILN_CHECK(o.eval_interval >= 0, "Trainer: eval_interval must be >= 0, got ", o.eval_interval);
  KILN_CHECK(o.log_interval >= 0, "Trainer: log_interval must be >= 0, got ", o.log_interval);
  KILN_CHECK(o.checkpoint_interval >= 0, "Trainer: checkpoint_interval must be >= 0, got ", o.checkpoint_interval);
  KILN_CHECK(!o.resume || !o.checkpoint_dir.empty(),
             "Trainer: resume needs checkpoint_dir (where to find the checkpoint)");
  KILN_CHECK(o.checkpoint_interval == 0 || !o.checkpoint_dir.empty(), "Trainer: checkpoint_interval is ",
             o.checkpoint_interval, " but checkpoint_dir is empty (where should checkpoints go?)");
  KILN_CHECK(o.throughput_unit == "samples" || o.throughput_unit == "tokens",
             "Trainer: throughput_unit must be \"samples\" or \"tokens\", got \"", o.throughput_unit, "\"");
  parse_progress_style(o.progress, /*is_terminal=*/false);  // throws on an unknown style
}

// Every parameter and buffer must be on options.device: a model on the CPU fed GPU batches
// (or the reverse) would fail deep inside its first op, naming the op rather than the cause.
void Trainer::check_model_device() const {
  const Device device = options_.device;
  auto refuse = [&](const std::string& what, Device found) {
    std::string message = detail::str("Trainer: ", what, " is on ", found.str(), " but TrainerOptions::device is ",
                                      device.str(), "; move the model with model.to(", device_expression(device),
                                      ") before building the optimizer, or set TrainerOptions::device to ",
                                      found.str());
    if (device.is_cuda() && !cuda::is_available())
      message += detail::str(" (no GPU here: ", cuda::unavailable_reason(), ")");
    throw Error(message);
  };
  for (const auto& [name, p] : model_.named_parameters())
    if (p.device() != device) refuse("parameter '" + name + "'", p.device());
  for (const auto& [name, b] : model_.named_buffers())
    if (b.device() != device) refuse("buffer '" + name + "'", b.device());
  for (const Tensor& p : optimizer_.parameters())
    if (p.device() != device) refuse(detail::str("an optimizer parameter (", describe(p), ")"), p.device());
}

std::string Trainer::checkpoint_path() const {
  if (options_.checkpoint_dir.empty()) return "";
  return (std::filesystem::path(options_.checkpoint_dir) / kCheckpointFile).string();
}

// ---- the loop --------------------------------------------------------------------------------

TrainResult Trainer::fit(data::DataLoader& loader, const LossFn& loss_fn) {
  DataLoaderSource source(loader);
  return fit(source, loss_fn);
}

TrainResult Trainer::fit(data::RandomWindows& windows, const LossFn& loss_fn) {
  RandomWindowsSource source(windows);
  return fit(source, loss_fn);
}

TrainResult Trainer::fit(BatchSource& data, const LossFn& loss_fn) {
  KILN_CHECK(static_cast<bool>(loss_fn), "Trainer: the loss function is empty");
  std::ostream& out = options_.output != nullptr ? *options_.output : std::cerr;
  const bool terminal = options_.output == nullptr && ::isatty(STDERR_FILENO) == 1;
  check_model_device();
  Run run(out, parse_progress_style(options_.progress, terminal), options_.metrics_path, options_.resume);

  if (options_.resume) resume(run, data);
  if (!options_.checkpoint_dir.empty()) {
    std::error_code error;
    std::filesystem::create_directories(options_.checkpoint_dir, error);
    KILN_CHECK(!error, "Trainer: cannot create checkpoint_dir '", options_.checkpoint_dir, "': ", error.message());
  }
  run.progress.message(plan_message(run));

  model_.train();
  while (run.step < options_.max_steps) {
    const StepStats stats = train_step(run, data, loss_fn);
    run.step = stats.step;
    report_step(run, stats);
    if (eval_ && is_due(run.step, options_.eval_interval, options_.max_steps)) evaluate(run);
    if (!options_.checkpoint_dir.empty() && is_due(run.step, options_.checkpoint_interval, options_.max_steps))
      write_checkpoint(run, data);
  }

  const double seconds = seconds_since(run.started);
  run.progress.finish();
  if (run.step > run.start_step)
    run.progress.message(detail::str("Trainer: done, step ", run.step, " in ", format_duration(seconds)));
  return {
      .start_step = run.start_step, .step = run.step, .loss = run.last_loss, .eval = run.last_eval, .seconds = seconds};
}

// "Trainer: steps 1..1000 with AdamW, 4547 parameters", or why there is nothing to do.
std::string Trainer::plan_message(const Run& run) const {
  if (run.step >= options_.max_steps)
    return detail::str("Trainer: the checkpoint is at step ", run.step, ", max_steps is ", options_.max_steps,
                       ": nothing to train");
  std::string message = detail::str("Trainer: steps ", run.step + 1, "..", options_.max_steps, " with ",
                                    optimizer_.name(), ", ", model_.num_parameters(), " parameters");
  if (options_.grad_accum_steps > 1) message += detail::str(", ", options_.grad_accum_steps, " micro-batches per step");
  return message;
}

StepStats Trainer::train_step(const Run& run, BatchSource& data, const LossFn& loss_fn) {
  const Clock::time_point started = Clock::now();
  StepStats stats;
  stats.step = run.step + 1;
  if (schedule_ != nullptr) schedule_->set_step(run.step);  // schedules count updates from 0
  stats.lr = optimizer_.lr(0);

  optimizer_.zero_grad();
  // Each micro-batch's loss, then the gradient norm: left on the device until all are queued.
  std::vector<Tensor> scalars;
  for (int64_t micro = 0; micro < options_.grad_accum_steps; ++micro) {
    const data::Batch batch = next_batch(data);
    stats.items += count_items(batch);
    scalars.push_back(backward_micro_batch(run, batch, loss_fn));
  }
  // The gradient norm is queued behind the last backward and read in the same copy as the
  // losses: on a GPU, the step's one wait for the device. It goes to the losses' device
  // (with no gradient at all it is a CPU zero; a loss function may compute elsewhere).
  const bool clipping = options_.clip_grad_norm > 0;
  if (clipping)
    scalars.push_back(
        optim::get_total_norm(optim::gradients(optimizer_.parameters())).to(scalars.front().device()));
  const std::vector<double> values = read_scalars(scalars);

  stats.loss = mean_loss(run, values);
  stats.grad_norm = kNaN;
  if (clipping) {
    stats.grad_norm = values.back();
    if (!std::isfinite(stats.grad_norm)) stop_on_non_finite(run, "the gradient norm", stats.grad_norm);
    optim::clip_grads_with_norm_(optimizer_.parameters(), options_.clip_grad_norm, stats.grad_norm);
  }
  optimizer_.step();
  stats.seconds = seconds_since(started);
  return stats;
}

data::Batch Trainer::next_batch(BatchSource& data) const {
  return batch_on(data.next(), options_.device);
}

// Computes one micro-batch's loss and adds its share of the gradient; returns the loss,
// detached, in f64, where it was computed (mean_loss checks it).
Tensor Trainer::backward_micro_batch(const Run& run, const data::Batch& batch, const LossFn& loss_fn) {
  const int64_t step = run.step + 1, accum = options_.grad_accum_steps;
  const Tensor loss = loss_fn(batch);
  KILN_CHECK(loss.defined(), "Trainer: the loss function returned an undefined tensor at step ", step);
  KILN_CHECK(loss.numel() == 1, "Trainer: the loss function must return a scalar, got shape ", shape_str(loss.shape()),
             " at step ", step);
  KILN_CHECK(loss.requires_grad(), "Trainer: the loss at step ", step,
             " does not require grad (computed under NoGradGuard, from detached tensors, or by a model whose "
             "parameters do not require grad?)");

  // Each micro-batch's loss is a mean over its own rows; scaling by 1/accum makes the
  // accumulated gradient that of the mean over all of them, as one big batch would.
  (accum == 1 ? loss : loss / static_cast<double>(accum)).backward();
  return loss.detach().to(f64);
}

// The mean of the step's micro-batch losses, the first grad_accum_steps `values`; stops on
// the first that is not finite. The optimizer has not stepped yet, so a stop leaves the
// weights untouched.
double Trainer::mean_loss(const Run& run, const std::vector<double>& values) const {
  const int64_t accum = options_.grad_accum_steps;
  double sum = 0;
  for (int64_t micro = 0; micro < accum; ++micro) {
    const double value = values[static_cast<size_t>(micro)];
    if (!std::isfinite(value))
      stop_on_non_finite(run, accum > 1 ? detail::str("the loss of micro-batch ", micro + 1, " of ", accum) : "the loss",
                         value);
    sum += value;
  }
  return sum / static_cast<double>(accum);
}

void Trainer::stop_on_non_finite(const Run& run, const std::string& what, double value) const {
  const std::string checkpoint =
      run.last_checkpoint_step >= 0
          ? detail::str("the last checkpoint, '", checkpoint_path(), "', holds step ", run.last_checkpoint_step)
          : std::string(options_.checkpoint_dir.empty() ? "checkpoints are off (set checkpoint_dir)"
                                                        : "no checkpoint has been written yet");
  const char* hint = options_.clip_grad_norm > 0 ? "Try a lower lr or check the data"
                                                 : "Try a lower lr, clip_grad_norm, or check the data";
  throw Error(detail::str("Trainer: ", what, " is ", describe_non_finite(value), " at step ", run.step + 1,
                          "; stopped before the optimizer step, so the model holds the weights of step ", run.step,
                          " and ", checkpoint, ". ", hint));
}

int64_t Trainer::count_items(const data::Batch& batch) const {
  if (options_.throughput_unit == "tokens") {
    // A language model predicts one token per target element.
    if (batch.target.defined()) return batch.target.numel();
    return batch.input.defined() ? batch.input.numel() : 0;
  }
  if (!batch.input.defined()) return 0;
  return batch.input.dim() > 0 ? batch.input.size(0) : 1;
}

// ---- reports ---------------------------------------------------------------------------------

void Trainer::report_step(Run& run, const StepStats& stats) {
  run.record(stats);
  if (on_step_) on_step_(stats);

  // The bar: the recent loss and the throughput of the whole run so far.
  ProgressReport report{.step = run.step,
                        .max_steps = options_.max_steps,
                        .loss = run.recent_loss(),
                        .lr = stats.lr,
                        .rate = run.all_steps.rate(),
                        .unit = options_.throughput_unit,
                        .elapsed_s = run.elapsed(),
                        .eta_s = run.eta(options_.max_steps)};
  run.progress.step(report, /*force=*/run.step == options_.max_steps);
  if (options_.log_interval == 0 || !is_due(run.step, options_.log_interval, options_.max_steps)) return;

  // A log event: lines and the metrics log cover the steps since the previous one.
  report.loss = run.since_log.mean_loss();
  report.rate = run.since_log.rate();
  run.progress.log(report);
  std::vector<std::pair<std::string, double>> values = {{"loss", report.loss}, {"lr", report.lr}};
  if (options_.clip_grad_norm > 0) values.emplace_back("grad_norm", stats.grad_norm);
  values.emplace_back(options_.throughput_unit + "_per_s", report.rate);
  values.emplace_back("elapsed_s", report.elapsed_s);
  run.metrics.write("train", run.step, values);
  run.since_log = {};
}

void Trainer::evaluate(Run& run) {
  Metrics metrics;
  {
    EvalModeGuard eval_mode(model_);
    NoGradGuard no_grad;
    metrics = eval_();
  }
  run.last_eval = metrics;

  std::string line = detail::str("eval step ", run.step);
  std::vector<std::pair<std::string, double>> values = {{"elapsed_s", run.elapsed()}};
  for (const auto& [name, value] : metrics) {
    KILN_CHECK(name != "event" && name != "step" && name != "elapsed_s",
               "Trainer: the eval function returned a metric named '", name, "', a name the metrics log uses itself");
    line += " | " + name + " " + format_metric(value);
    values.emplace_back(name, value);
  }
  run.progress.message(line);
  run.metrics.write("eval", run.step, values);
}

// ---- checkpoints ------------------------------------------------------------------------------

void Trainer::write_checkpoint(Run& run, const BatchSource& data) {
  nn::save_checkpoint(checkpoint_path(), {.model = model_.state_dict(),
                                          .optimizer = optimizer_.state_dict(),
                                          .rng = default_generator().state(),
                                          .step = run.step,
                                          .data_position = data.position(),
                                          .metadata = {{kElapsedKey, std::to_string(run.elapsed())}}});
  run.last_checkpoint_step = run.step;
  run.progress.message(detail::str("checkpoint step ", run.step, " -> ", checkpoint_path()));
}

void Trainer::resume(Run& run, BatchSource& data) {
  const std::string path = checkpoint_path();
  KILN_CHECK(std::filesystem::exists(path), "Trainer: cannot resume: there is no checkpoint at '", path,
             "' (train once without .resume to create one)");
  TrainingCheckpoint checkpoint;
  try {
    checkpoint = load_checkpoint(path);
    model_.load_state_dict(checkpoint.model);
    optimizer_.load_state_dict(checkpoint.optimizer);
    data.set_position(checkpoint.data_position);
  } catch (const Error& e) {
    throw Error(detail::str("Trainer: cannot resume from '", path, "': ", e.what()));
  }
  KILN_CHECK(checkpoint.step >= 0, "Trainer: cannot resume from '", path, "': its step is ", checkpoint.step);
  // Last, so that nothing above draws from the generator after it is restored.
  default_generator().set_state(checkpoint.rng);

  run.start_step = run.step = run.last_checkpoint_step = checkpoint.step;
  if (const auto it = checkpoint.metadata.find(kElapsedKey); it != checkpoint.metadata.end())
    run.elapsed_before = std::strtod(it->second.c_str(), nullptr);
  run.progress.message(detail::str("Trainer: resumed from '", path, "' at step ", run.step));
}

}  // namespace kiln::nn
