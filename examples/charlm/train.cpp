#include "train.h"

#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <memory>

#include <kiln/autograd/grad_mode.h>
#include <kiln/core/random.h>
#include <kiln/nn/optim/adam.h>
#include <kiln/nn/optim/lr_scheduler.h>
#include <kiln/nn/train/trainer.h>
#include <kiln/ops/loss.h>

#include "../common/device.h"
#include "model_file.h"

namespace charlm {

namespace {

using namespace kiln;

std::unique_ptr<nn::optim::LRScheduler> make_schedule(nn::optim::Optimizer& optimizer, const TrainSettings& t) {
  if (t.schedule == "constant") return std::make_unique<nn::optim::ConstantLR>(optimizer);
  // The warmup must end before the decay does; a run shorter than the warmup just warms up.
  const int64_t warmup = std::min(t.warmup, t.steps - 1);
  return std::make_unique<nn::optim::WarmupCosineLR>(
      optimizer, nn::optim::WarmupCosineOptions{.warmup_steps = warmup, .total_steps = t.steps, .min_lr = t.min_lr});
}

nn::TrainerOptions trainer_options(const TrainSettings& t, Device device) {
  return {.max_steps = t.steps,
          .clip_grad_norm = t.clip,
          .eval_interval = t.eval_interval,
          .log_interval = std::max<int64_t>(1, std::min<int64_t>(50, t.steps / 10)),
          .checkpoint_dir = t.checkpoint_dir,
          .checkpoint_interval = t.checkpoint_dir.empty() ? 0 : t.checkpoint_interval,
          .resume = t.resume,
          .metrics_path = t.checkpoint_dir.empty() ? "" : t.checkpoint_dir + "/metrics.jsonl",
          .progress = t.progress,
          .throughput_unit = "tokens",
          .device = device};
}

}  // namespace

std::string format_count(double n) {
  char buffer[32];
  if (n >= 1e9) std::snprintf(buffer, sizeof buffer, "%.2fG", n / 1e9);
  else if (n >= 1e6) std::snprintf(buffer, sizeof buffer, "%.2fM", n / 1e6);
  else if (n >= 1e3) std::snprintf(buffer, sizeof buffer, "%.1fk", n / 1e3);
  else std::snprintf(buffer, sizeof buffer, "%.0f", n);
  return buffer;
}

std::string describe(const ModelSettings& m) {
  std::string text = detail::str(m.layers, m.layers == 1 ? " layer" : " layers", ", d_model ", m.d_model, ", ",
                                 m.heads, " heads, context ", m.seq_len);
  if (m.dropout > 0) text += detail::str(", dropout ", m.dropout);
  if (m.context_pool) text += detail::str(", ContextPool ", m.pool_mode, " (", m.pool_placement, ")");
  return text;
}

std::string describe_cost(int64_t parameters, const FlopCount& flops) {
  return format_count(static_cast<double>(parameters)) + " parameters, " + format_count(flops.training) +
         " FLOPs/token training (" + format_count(flops.forward) + " forward)";
}

TrainOutcome train_model(const Settings& settings, const nn::data::ByteCorpus& corpus, const std::string& name) {
  const ModelSettings& m = settings.model;
  const TrainSettings& t = settings.train;
  manual_seed(t.seed);  // the initial weights and the dropout masks

  TrainOutcome outcome;
  outcome.model = std::make_shared<nn::GPT>(gpt_config(m));
  nn::GPT& model = *outcome.model;
  const Device device = examples::select_device(settings.run.device);
  model.to(device);  // before the optimizer, which keeps the tensors it is given
  outcome.parameters = model.num_parameters();
  outcome.flops = flops_per_token(model);
  std::printf("%s: %s\n%s: %s\n", name.c_str(), describe(m).c_str(), name.c_str(),
              describe_cost(outcome.parameters, outcome.flops).c_str());
  if (!t.checkpoint_dir.empty()) save_model_settings(m, t.checkpoint_dir);

  nn::optim::AdamW optimizer(nn::optim::weight_decay_groups(model),
                             {.lr = t.lr, .betas = {0.9, 0.99}, .weight_decay = t.weight_decay});
  const std::unique_ptr<nn::optim::LRScheduler> schedule = make_schedule(optimizer, t);
  nn::data::RandomWindows windows(corpus, nn::data::Split::train,
                                  {.batch_size = t.batch, .seq_len = m.seq_len, .seed = t.seed});
  const ValidationSet validation(corpus, m.seq_len, t.val_windows, t.batch);
  std::printf("%s: data '%s', %lld bytes (train %zu, validation %zu); val bpc over %lld windows of %lld characters; "
              "%d thread%s\n",
              name.c_str(), corpus.name().c_str(), static_cast<long long>(corpus.size()),
              corpus.split(nn::data::Split::train).size(), corpus.split(nn::data::Split::validation).size(),
              static_cast<long long>(validation.windows()), static_cast<long long>(m.seq_len), omp_get_max_threads(),
              omp_get_max_threads() == 1 ? "" : "s");
  std::fflush(stdout);

  nn::Trainer trainer(model, optimizer, trainer_options(t, device));
  trainer.set_lr_schedule(*schedule);
  trainer.set_eval([&] {
    const Validation v = validation.evaluate(model);
    return nn::Metrics{{"val_loss", v.loss}, {"val_bpc", v.bpc}};
  });
  const nn::TrainResult result = trainer.fit(windows, [&](const nn::data::Batch& batch) {
    const Tensor logits = model.forward(batch.input);  // (B, T, 256)
    return cross_entropy(logits.view({-1, logits.size(-1)}), batch.target.view({-1}));
  });

  model.eval();
  if (result.eval.empty()) {  // a resumed run with nothing left to train did not evaluate
    NoGradGuard no_grad;
    outcome.validation = validation.evaluate(model);
  } else {
    outcome.validation = {.loss = result.eval.at("val_loss"), .bpc = result.eval.at("val_bpc"),
                          .windows = validation.windows(), .predictions = validation.windows() * m.seq_len};
  }
  outcome.seconds = result.seconds;
  std::printf("%s: step %lld, val bpc %.3f (loss %.4f nats) over %lld windows x %lld characters, %.1f s\n",
              name.c_str(), static_cast<long long>(result.step), outcome.validation.bpc, outcome.validation.loss,
              static_cast<long long>(outcome.validation.windows), static_cast<long long>(m.seq_len),
              outcome.seconds);
  std::fflush(stdout);
  return outcome;
}

}  // namespace charlm
