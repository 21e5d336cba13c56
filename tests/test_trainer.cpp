// The Trainer (nn/train/): resuming from a checkpoint is bit-identical to never stopping,
// gradient accumulation equals one big batch, a NaN loss stops cleanly with the last good
// checkpoint on disk, the JSON Lines metrics log and the progress display, and clear
// errors for bad options and missing or corrupt checkpoints.
#include <kiln/nn/activation.h>
#include <kiln/nn/data/corpus.h>
#include <kiln/nn/data/dataloader.h>
#include <kiln/nn/linear.h>
#include <kiln/nn/optim/adam.h>
#include <kiln/nn/optim/lr_scheduler.h>
#include <kiln/nn/optim/sgd.h>
#include <kiln/nn/serialize.h>
#include <kiln/nn/train/progress.h>
#include <kiln/nn/train/trainer.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

#include "helpers.h"
#include "temp_dir.h"

using namespace kiln;
using namespace kiln::testing;
namespace fs = std::filesystem;

namespace {

// 4 -> 16 -> 3 with dropout in between, so the global generator's state matters.
struct TinyNet : nn::Module {
  std::shared_ptr<nn::Linear> fc1, fc2;
  std::shared_ptr<nn::Dropout> drop;
  explicit TinyNet(double dropout = 0.25) {
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(4, 16));
    drop = register_module("drop", std::make_shared<nn::Dropout>(dropout));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(16, 3));
  }
  Tensor forward(const Tensor& x) const { return fc2->forward(drop->forward(relu(fc1->forward(x)))); }
};

// 64 labelled points, the same on every call (as if read from a file).
std::shared_ptr<nn::data::TensorDataset> make_dataset() {
  manual_seed(123);
  Tensor x = randn({64, 4});
  Tensor y = randint(0, 3, {64});
  return std::make_shared<nn::data::TensorDataset>(x, y);
}

// Everything a training process builds, from scratch. Only `seed` differs between the
// "processes" of a test: the checkpoint alone must bring back the weights and the RNG.
struct Setup {
  std::shared_ptr<TinyNet> model;
  std::unique_ptr<nn::optim::AdamW> optimizer;
  std::unique_ptr<nn::optim::WarmupCosineLR> schedule;
  nn::data::DataLoader loader;

  Setup(uint64_t seed, double dropout = 0.25, int64_t batch_size = 8, bool shuffle = true)
      : loader(make_dataset(), {.batch_size = batch_size, .shuffle = shuffle, .seed = 7, .prefetch = 2}) {
    manual_seed(seed);
    model = std::make_shared<TinyNet>(dropout);
    optimizer = std::make_unique<nn::optim::AdamW>(model->parameters(), nn::optim::AdamWOptions{.lr = 1e-2});
    schedule = std::make_unique<nn::optim::WarmupCosineLR>(
        *optimizer, nn::optim::WarmupCosineOptions{.warmup_steps = 3, .total_steps = 20, .min_lr = 1e-3});
  }

  nn::Trainer::LossFn loss_fn() const {
    return [model = model](const nn::data::Batch& b) { return cross_entropy(model->forward(b.input), b.target); };
  }
};

nn::TrainerOptions quiet(nn::TrainerOptions options) {
  options.progress = "none";
  return options;
}

// Trains with `setup` and returns the loss of every step this fit() ran, in order.
std::vector<double> train(Setup& setup, const nn::TrainerOptions& options) {
  nn::Trainer trainer(*setup.model, *setup.optimizer, quiet(options));
  trainer.set_lr_schedule(*setup.schedule);
  std::vector<double> losses;
  trainer.set_on_step([&](const nn::StepStats& s) { losses.push_back(s.loss); });
  trainer.fit(setup.loader, setup.loss_fn());
  return losses;
}

void check_same_weights(const nn::Module& a, const nn::Module& b) {
  const nn::StateDict sa = a.state_dict(), sb = b.state_dict();
  REQUIRE(sa.size() == sb.size());
  for (const auto& [name, t] : sa) {
    INFO(name);
    CHECK(t.to_vector<float>() == sb.find(name).to_vector<float>());
  }
}

// Every line parsed as JSON (a line that is not throws); ordered_json keeps the key order.
std::vector<nlohmann::ordered_json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  std::vector<nlohmann::ordered_json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::ordered_json::parse(line));
  return lines;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// ---- a real second process for the resume test ---------------------------------------------
// The parent trains 10 steps, then runs this test binary again with only the child case
// selected; the child resumes from the checkpoint folder named in kChildDirVariable, trains
// to step 20 and writes its losses there as hex floats (exact). posix_spawn, not fork():
// a forked child of a process that has used OpenMP may hang in its thread pool.

constexpr const char* kChildCase = "trainer: (child process) resume from the folder in KILN_TRAINER_CHILD_DIR";
constexpr const char* kChildDirVariable = "KILN_TRAINER_CHILD_DIR";

const nn::TrainerOptions kResumeTestOptions{.max_steps = 20, .grad_accum_steps = 2, .clip_grad_norm = 0.5};

// Runs the child case in a new process; returns the losses it wrote.
std::vector<double> resume_in_child_process(const TempDir& dir) {
  const std::string filter = std::string("--test-case=") + kChildCase;
  const std::string variable = std::string(kChildDirVariable) + "=" + dir.path();
  std::vector<char*> argv = {const_cast<char*>("kiln_tests"), const_cast<char*>(filter.c_str()),
                             const_cast<char*>("--no-skip"), const_cast<char*>("--minimal"), nullptr};
  std::vector<char*> envp = {const_cast<char*>(variable.c_str())};
  for (char** e = environ; *e != nullptr; ++e) envp.push_back(*e);
  envp.push_back(nullptr);

  pid_t child = 0;
  REQUIRE(posix_spawn(&child, "/proc/self/exe", nullptr, nullptr, argv.data(), envp.data()) == 0);
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  REQUIRE_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0), "the child process failed, status ", status);

  std::ifstream in(dir.file("child_losses.txt"));
  std::vector<double> losses;
  for (std::string line; std::getline(in, line);) losses.push_back(std::strtod(line.c_str(), nullptr));
  return losses;
}

}  // namespace

TEST_CASE(kChildCase * doctest::skip()) {
  const char* dir = std::getenv(kChildDirVariable);
  if (dir == nullptr) {  // selected by --no-skip alone: there is no parent to answer
    MESSAGE("run only as the child of the resume test");
    return;
  }
  nn::TrainerOptions options = kResumeTestOptions;
  options.checkpoint_dir = dir;
  options.resume = true;
  Setup fresh(/*seed=*/999);
  const std::vector<double> losses = train(fresh, options);
  std::ofstream out(fs::path(dir) / "child_losses.txt");
  for (double loss : losses) out << std::hexfloat << loss << '\n';
  REQUIRE(out.good());
}

TEST_CASE("trainer: 10 steps, checkpoint, resume in a fresh setup, 10 more == 20 straight, bit for bit") {
  // Dropout (RNG state), a shuffling DataLoader with prefetch (data position), AdamW
  // (moments), a warmup-cosine schedule (lr by step), clipping and accumulation (2
  // micro-batches per step: the position is not the step) all have to come back.
  const nn::TrainerOptions base = kResumeTestOptions;
  Setup straight(/*seed=*/1);
  const std::vector<double> expected = train(straight, base);
  REQUIRE(expected.size() == 20);

  SUBCASE("stop after step 10, resume to 20") {
    TempDir dir;
    nn::TrainerOptions first = base;
    first.max_steps = 10;
    first.checkpoint_dir = dir.path();
    Setup before(/*seed=*/1);
    const std::vector<double> head = train(before, first);
    CHECK(std::vector<double>(expected.begin(), expected.begin() + 10) == head);
    CHECK(nn::load_checkpoint(dir.file("latest.ckpt.safetensors")).step == 10);

    nn::TrainerOptions second = base;
    second.checkpoint_dir = dir.path();
    second.resume = true;
    Setup after(/*seed=*/999);  // other initial weights and another RNG state
    const std::vector<double> tail = train(after, second);
    CHECK(std::vector<double>(expected.begin() + 10, expected.end()) == tail);  // exact ==
    check_same_weights(*straight.model, *after.model);
  }

  SUBCASE("stop after step 10, resume to 20 in a new process") {
    TempDir dir;
    nn::TrainerOptions first = base;
    first.max_steps = 10;
    first.checkpoint_dir = dir.path();
    Setup before(/*seed=*/1);
    train(before, first);
    const std::vector<double> tail = resume_in_child_process(dir);
    CHECK(std::vector<double>(expected.begin() + 10, expected.end()) == tail);
  }

  SUBCASE("crash at step 13 with checkpoints every 5 steps, resume from step 10") {
    TempDir dir;
    nn::TrainerOptions crashing = base;
    crashing.checkpoint_dir = dir.path();
    crashing.checkpoint_interval = 5;
    Setup doomed(/*seed=*/1);
    nn::Trainer trainer(*doomed.model, *doomed.optimizer, quiet(crashing));
    trainer.set_lr_schedule(*doomed.schedule);
    trainer.set_on_step([](const nn::StepStats& s) {
      if (s.step == 13) throw std::runtime_error("simulated crash");
    });
    CHECK_THROWS_WITH(trainer.fit(doomed.loader, doomed.loss_fn()), "simulated crash");

    nn::TrainerOptions resumed = base;
    resumed.checkpoint_dir = dir.path();
    resumed.resume = true;
    Setup after(/*seed=*/999);
    const std::vector<double> tail = train(after, resumed);
    CHECK(std::vector<double>(expected.begin() + 10, expected.end()) == tail);
    check_same_weights(*straight.model, *after.model);
  }
}

namespace {

// Plain SGD: unlike Adam, its update scales with the gradient, so a missing 1/accum shows.
std::vector<double> train_sgd(Setup& setup, const nn::TrainerOptions& options) {
  nn::optim::SGD sgd(setup.model->parameters(), {.lr = 0.5});
  nn::Trainer trainer(*setup.model, sgd, quiet(options));
  std::vector<double> losses;
  trainer.set_on_step([&](const nn::StepStats& s) { losses.push_back(s.loss); });
  trainer.fit(setup.loader, setup.loss_fn());
  return losses;
}

}  // namespace

TEST_CASE("trainer: grad_accum_steps = 2 with batch 8 makes the update of one batch of 16") {
  // No dropout and no shuffle: both runs see the same 16 rows per step.
  Setup big(/*seed=*/5, /*dropout=*/0, /*batch_size=*/16, /*shuffle=*/false);
  Setup accumulated(/*seed=*/5, /*dropout=*/0, /*batch_size=*/8, /*shuffle=*/false);
  const std::vector<double> big_losses = train_sgd(big, {.max_steps = 3});
  const std::vector<double> accumulated_losses = train_sgd(accumulated, {.max_steps = 3, .grad_accum_steps = 2});

  REQUIRE(accumulated_losses.size() == 3);
  for (size_t i = 0; i < 3; ++i) CHECK(accumulated_losses[i] == doctest::Approx(big_losses[i]).epsilon(1e-6));
  const nn::StateDict a = big.model->state_dict(), b = accumulated.model->state_dict();
  for (const auto& [name, t] : a) {
    INFO(name);
    check_close(b.find(name), t, 1e-6, 1e-5);
  }
  // The two runs moved the same distance from the same start: not trivially equal.
  Setup untrained(/*seed=*/5, 0);
  CHECK(big.model->fc1->weight.to_vector<float>() != untrained.model->fc1->weight.to_vector<float>());
}

TEST_CASE("trainer: a NaN loss stops before the update, naming the step; the last checkpoint stays good") {
  TempDir dir;
  Setup setup(/*seed=*/3);
  int64_t calls = 0;
  const auto base_loss = setup.loss_fn();

  SUBCASE("NaN at step 5, checkpoints every 2 steps") {
    nn::Trainer trainer(*setup.model, *setup.optimizer,
                        quiet({.max_steps = 10, .checkpoint_dir = dir.path(), .checkpoint_interval = 2}));
    auto loss_fn = [&](const nn::data::Batch& b) {
      const Tensor loss = base_loss(b);
      return ++calls == 5 ? loss * std::numeric_limits<double>::quiet_NaN() : loss;
    };
    CHECK_THROWS_KILN(trainer.fit(setup.loader, loss_fn), "Trainer: the loss is NaN at step 5");
  }

  SUBCASE("the checkpoint on disk is step 4's and the model still holds step 4's weights") {
    nn::Trainer trainer(*setup.model, *setup.optimizer,
                        quiet({.max_steps = 10, .checkpoint_dir = dir.path(), .checkpoint_interval = 2}));
    auto loss_fn = [&](const nn::data::Batch& b) {
      const Tensor loss = base_loss(b);
      return ++calls == 5 ? loss * std::numeric_limits<double>::infinity() : loss;
    };
    CHECK_THROWS_KILN(trainer.fit(setup.loader, loss_fn),
                      ("the loss is inf at step 5; stopped before the optimizer step, so the model holds the weights "
                      "of step 4 and the last checkpoint, '" +
                          trainer.checkpoint_path() + "', holds step 4")
                         .c_str());
    const nn::TrainingCheckpoint c = nn::load_checkpoint(trainer.checkpoint_path());
    CHECK(c.step == 4);
    for (const auto& [name, t] : setup.model->state_dict()) {
      INFO(name);
      CHECK(c.model.find(name).to_vector<float>() == t.to_vector<float>());
    }
  }

  SUBCASE("with accumulation the message names the micro-batch; without checkpoints it says so") {
    nn::Trainer trainer(*setup.model, *setup.optimizer, quiet({.max_steps = 10, .grad_accum_steps = 2}));
    auto loss_fn = [&](const nn::data::Batch& b) {
      const Tensor loss = base_loss(b);
      return ++calls == 6 ? loss * std::numeric_limits<double>::quiet_NaN() : loss;
    };
    CHECK_THROWS_KILN(trainer.fit(setup.loader, loss_fn),
                      "the loss of micro-batch 2 of 2 is NaN at step 3; stopped before the optimizer step, so the "
                      "model holds the weights of step 2 and checkpoints are off");
  }

  SUBCASE("a non-finite gradient norm stops the run too (with clipping on)") {
    nn::Trainer trainer(*setup.model, *setup.optimizer, quiet({.max_steps = 10, .clip_grad_norm = 1.0}));
    auto loss_fn = [&](const nn::data::Batch& b) {
      // sqrt(0 * w) is 0, but its gradient 0 * (1 / (2 sqrt(0))) is NaN.
      const Tensor loss = base_loss(b);
      return ++calls == 2 ? loss + sum(sqrt(setup.model->fc1->weight * 0.0)) : loss;
    };
    CHECK_THROWS_KILN(trainer.fit(setup.loader, loss_fn), "Trainer: the gradient norm is NaN at step 2");
  }
}

TEST_CASE("trainer: the metrics log has one JSON object per line, train and eval events, keys in order") {
  TempDir dir;
  Setup setup(/*seed=*/4);
  nn::Trainer trainer(
      *setup.model, *setup.optimizer,
      quiet({.max_steps = 10, .eval_interval = 5, .log_interval = 3, .metrics_path = dir.file("metrics.jsonl")}));
  std::vector<double> losses;
  trainer.set_on_step([&](const nn::StepStats& s) { losses.push_back(s.loss); });
  int evals = 0;
  trainer.set_eval([&] {
    ++evals;
    CHECK_FALSE(setup.model->is_training());  // eval mode and no graph while evaluating
    CHECK_FALSE(GradMode::is_enabled());
    return nn::Metrics{{"val_loss", 0.5 * evals}, {"accuracy", 0.25}};
  });
  const nn::TrainResult result = trainer.fit(setup.loader, setup.loss_fn());
  CHECK(setup.model->is_training());
  CHECK(evals == 2);  // steps 5 and 10
  CHECK(result.step == 10);
  CHECK(result.eval.at("val_loss") == 1.0);
  CHECK(result.loss == losses.back());

  const std::vector<nlohmann::ordered_json> lines = read_jsonl(dir.file("metrics.jsonl"));
  std::vector<std::pair<std::string, int64_t>> events;
  for (const nlohmann::ordered_json& j : lines) events.emplace_back(j.at("event"), j.at("step"));
  CHECK(events == std::vector<std::pair<std::string, int64_t>>{
                      {"train", 3}, {"eval", 5}, {"train", 6}, {"train", 9}, {"train", 10}, {"eval", 10}});

  std::vector<std::string> train_keys, eval_keys;
  for (const auto& [key, value] : lines[0].items()) train_keys.push_back(key);
  CHECK(train_keys == std::vector<std::string>{"event", "step", "loss", "lr", "samples_per_s", "elapsed_s"});
  for (const auto& [key, value] : lines[1].items()) eval_keys.push_back(key);
  CHECK(eval_keys == std::vector<std::string>{"event", "step", "elapsed_s", "accuracy", "val_loss"});
  CHECK(lines[1]["val_loss"] == 0.5);

  // A train event's loss is the mean over the steps since the previous one.
  CHECK(lines[0]["loss"].get<double>() == doctest::Approx((losses[0] + losses[1] + losses[2]) / 3).epsilon(1e-12));
  CHECK(lines[4]["loss"].get<double>() == doctest::Approx(losses[9]).epsilon(1e-12));
  CHECK(lines[0]["lr"].get<double>() == setup.optimizer->lr(0));  // no schedule given to the trainer
  CHECK(lines[0]["samples_per_s"].get<double>() > 0);
  CHECK(lines[4]["elapsed_s"].get<double>() >= lines[0]["elapsed_s"].get<double>());
}

TEST_CASE("trainer: progress is plain lines when the output is not a terminal, a \\r bar when asked") {
  Setup setup(/*seed=*/6);
  std::ostringstream out;

  SUBCASE("auto on a stream that is not a terminal: lines") {
    nn::Trainer trainer(*setup.model, *setup.optimizer,
                        {.max_steps = 10, .eval_interval = 10, .log_interval = 4, .output = &out});
    trainer.set_eval([] { return nn::Metrics{{"val_loss", 1.5}}; });
    trainer.fit(setup.loader, setup.loss_fn());
    const std::string text = out.str();
    CHECK(text.find('\r') == std::string::npos);
    CHECK(text.find("\033[") == std::string::npos);
    std::vector<std::string> step_lines;
    for (const std::string& line : split_lines(text))
      if (line.starts_with("step ")) step_lines.push_back(line);
    REQUIRE(step_lines.size() == 3);  // steps 4, 8, 10
    CHECK(step_lines[0].starts_with("step  4/10 | loss "));
    CHECK(step_lines[2].starts_with("step 10/10 | loss "));
    CHECK(step_lines[2].find(" samples/s | elapsed ") != std::string::npos);
    CHECK(step_lines[2].find(" | ETA ") != std::string::npos);
    CHECK(text.find("Trainer: steps 1..10 with AdamW, 131 parameters\n") != std::string::npos);
    CHECK(text.find("eval step 10 | val_loss 1.5000\n") != std::string::npos);
    CHECK(text.find("Trainer: done, step 10 in ") != std::string::npos);
  }

  SUBCASE("bar: redrawn in place with \\r, ended by a newline") {
    nn::Trainer trainer(*setup.model, *setup.optimizer,
                        {.max_steps = 10, .progress = "bar", .throughput_unit = "tokens", .output = &out});
    trainer.fit(setup.loader, setup.loss_fn());
    const std::string text = out.str();
    CHECK(text.find("\rstep 10/10 [####################] 100% | loss ") != std::string::npos);
    CHECK(text.find(" tokens/s | ETA ") != std::string::npos);
    CHECK(text.find("step  4/10 | loss") == std::string::npos);  // no plain lines
    CHECK(text.find("\033[K\n") != std::string::npos);           // the bar's line is ended
  }

  SUBCASE("none: silent") {
    nn::Trainer trainer(*setup.model, *setup.optimizer, {.max_steps = 3, .progress = "none", .output = &out});
    trainer.fit(setup.loader, setup.loss_fn());
    CHECK(out.str().empty());
  }
}

TEST_CASE("trainer: resume without a checkpoint, or from a corrupt one, is a clear error") {
  TempDir dir;
  Setup setup(/*seed=*/2);
  const nn::TrainerOptions options = quiet({.max_steps = 4, .checkpoint_dir = dir.path(), .resume = true});
  nn::Trainer trainer(*setup.model, *setup.optimizer, options);
  CHECK_THROWS_KILN(trainer.fit(setup.loader, setup.loss_fn()),
                    ("Trainer: cannot resume: there is no checkpoint at '" + trainer.checkpoint_path() +
                     "' (train once without .resume to create one)")
                        .c_str());

  std::ofstream(trainer.checkpoint_path()) << "not a safetensors file";
  CHECK_THROWS_KILN(trainer.fit(setup.loader, setup.loss_fn()),
                    ("Trainer: cannot resume from '" + trainer.checkpoint_path() + "': ").c_str());

  // A checkpoint of another model: the error says which file and which keys.
  nn::Linear other(4, 2);
  nn::save_checkpoint(trainer.checkpoint_path(), {.model = other.state_dict(), .step = 2});
  CHECK_THROWS_KILN(trainer.fit(setup.loader, setup.loss_fn()), "Trainer: cannot resume from '");
}

TEST_CASE("trainer: resuming at or past max_steps trains nothing") {
  TempDir dir;
  Setup setup(/*seed=*/2);
  train(setup, {.max_steps = 3, .checkpoint_dir = dir.path()});
  Setup again(/*seed=*/2);
  nn::Trainer trainer(*again.model, *again.optimizer,
                      quiet({.max_steps = 3, .checkpoint_dir = dir.path(), .resume = true}));
  int steps = 0;
  trainer.set_on_step([&](const nn::StepStats&) { ++steps; });
  const nn::TrainResult result = trainer.fit(again.loader, again.loss_fn());
  CHECK(steps == 0);
  CHECK(result.start_step == 3);
  CHECK(result.step == 3);
  check_same_weights(*setup.model, *again.model);
}

TEST_CASE("trainer: the schedule sets each step's lr; StepStats report it") {
  Setup setup(/*seed=*/8);
  nn::Trainer trainer(*setup.model, *setup.optimizer, quiet({.max_steps = 6}));
  trainer.set_lr_schedule(*setup.schedule);
  std::vector<double> lrs;
  trainer.set_on_step([&](const nn::StepStats& s) { lrs.push_back(s.lr); });
  trainer.fit(setup.loader, setup.loss_fn());
  REQUIRE(lrs.size() == 6);
  for (int64_t k = 0; k < 6; ++k) CHECK(lrs[k] == setup.schedule->lr_at(k, 1e-2));
}

TEST_CASE("trainer: batch sources resume where they were") {
  SUBCASE("DataLoaderSource counts batches across epochs") {
    nn::data::DataLoader loader(make_dataset(), {.batch_size = 24, .shuffle = true, .seed = 3});  // 3 batches/epoch
    nn::DataLoaderSource source(loader);
    std::vector<Tensor> seen;
    for (int i = 0; i < 7; ++i) seen.push_back(source.next().target);
    CHECK(source.position() == 7);
    CHECK(loader.state() == nn::data::DataLoaderState{2, 1});

    nn::data::DataLoader fresh(make_dataset(), {.batch_size = 24, .shuffle = true, .seed = 3});
    nn::DataLoaderSource resumed(fresh);
    resumed.set_position(4);
    for (int i = 4; i < 7; ++i) CHECK(resumed.next().target.to_vector<int64_t>() == seen[i].to_vector<int64_t>());
    CHECK_THROWS_KILN(resumed.set_position(-1), "DataLoaderSource: position must be >= 0, got -1");
  }

  SUBCASE("RandomWindowsSource is the windows' step") {
    std::vector<uint8_t> bytes(1000);
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 7 % 251);
    nn::data::ByteCorpus corpus(bytes, "synthetic");
    nn::data::RandomWindows windows(corpus, nn::data::Split::train, {.batch_size = 2, .seq_len = 8, .seed = 1});
    nn::RandomWindowsSource source(windows);
    source.next();
    source.next();
    CHECK(source.position() == 2);
    const Tensor third = source.next().input;
    source.set_position(2);
    CHECK(source.next().input.to_vector<int64_t>() == third.to_vector<int64_t>());
  }
}

TEST_CASE("trainer: tokens throughput counts target elements") {
  std::vector<uint8_t> bytes(2000);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i % 5);
  nn::data::ByteCorpus corpus(bytes, "synthetic");
  nn::data::RandomWindows windows(corpus, nn::data::Split::train, {.batch_size = 3, .seq_len = 4, .seed = 1});
  manual_seed(0);
  auto embed = std::make_shared<nn::Linear>(1, 5);
  nn::optim::SGD sgd(embed->parameters(), {.lr = 0.1});
  nn::Trainer trainer(*embed, sgd, quiet({.max_steps = 2, .grad_accum_steps = 2, .throughput_unit = "tokens"}));
  std::vector<int64_t> items;
  trainer.set_on_step([&](const nn::StepStats& s) { items.push_back(s.items); });
  trainer.fit(windows, [&](const nn::data::Batch& b) {
    const Tensor logits = embed->forward(b.input.to(f32).unsqueeze(-1));  // (3, 4, 5)
    return cross_entropy(logits.reshape({-1, 5}), b.target.reshape({-1}));
  });
  CHECK(items == std::vector<int64_t>{24, 24});  // 2 micro-batches x 3 rows x 4 tokens
  CHECK(windows.step() == 4);
}

TEST_CASE("trainer: bad options and bad losses are refused with clear errors") {
  Setup setup(/*seed=*/0);
  auto make = [&](nn::TrainerOptions o) { nn::Trainer t(*setup.model, *setup.optimizer, quiet(o)); };
  CHECK_THROWS_KILN(make({}), "Trainer: max_steps must be positive, got 0");
  CHECK_THROWS_KILN(make({.max_steps = 1, .grad_accum_steps = 0}), "Trainer: grad_accum_steps must be >= 1, got 0");
  CHECK_THROWS_KILN(make({.max_steps = 1, .clip_grad_norm = -1}), "Trainer: clip_grad_norm must be >= 0");
  CHECK_THROWS_KILN(make({.max_steps = 1, .eval_interval = -1}), "Trainer: eval_interval must be >= 0, got -1");
  CHECK_THROWS_KILN(make({.max_steps = 1, .resume = true}), "Trainer: resume needs checkpoint_dir");
  CHECK_THROWS_KILN(make({.max_steps = 1, .checkpoint_interval = 5}), "but checkpoint_dir is empty");
  CHECK_THROWS_KILN(make({.max_steps = 1, .throughput_unit = "pixels"}),
                    "Trainer: throughput_unit must be \"samples\" or \"tokens\", got \"pixels\"");
  {
    nn::TrainerOptions o{.max_steps = 1};
    o.progress = "fancy";
    CHECK_THROWS_KILN((nn::Trainer(*setup.model, *setup.optimizer, o)),
                      "Trainer: progress must be \"auto\", \"bar\", \"lines\" or \"none\", got \"fancy\"");
  }

  nn::Trainer trainer(*setup.model, *setup.optimizer, quiet({.max_steps = 1}));
  CHECK_THROWS_KILN(trainer.fit(setup.loader, [&](const nn::data::Batch& b) { return setup.model->forward(b.input); }),
                    "Trainer: the loss function must return a scalar, got shape [8, 3] at step 1");
  CHECK_THROWS_KILN(trainer.fit(setup.loader,
                                [&](const nn::data::Batch& b) {
                                  NoGradGuard no_grad;
                                  return cross_entropy(setup.model->forward(b.input), b.target);
                                }),
                    "Trainer: the loss at step 1 does not require grad");
  CHECK_THROWS_KILN(trainer.fit(setup.loader, nn::Trainer::LossFn()), "Trainer: the loss function is empty");
}

TEST_CASE("trainer: duration and count formatting") {
  CHECK(nn::format_duration(0.42) == "0.4s");
  CHECK(nn::format_duration(75) == "1m15s");
  CHECK(nn::format_duration(7260) == "2h01m");
  CHECK(nn::format_duration(std::numeric_limits<double>::quiet_NaN()) == "?");
  CHECK(nn::format_count(950) == "950.0");
  CHECK(nn::format_count(12345) == "12.35k");
  CHECK(nn::format_count(4.56e6) == "4.56M");
}

TEST_CASE("trainer: a model that is not on TrainerOptions::device is refused before any step, naming the fix") {
  Setup setup(/*seed=*/0);
  nn::TrainerOptions options = quiet({.max_steps = 1});
  options.device = Device::cuda();
  nn::Trainer trainer(*setup.model, *setup.optimizer, options);
  // Whether or not a GPU is here: the model is on the CPU, so fit() stops at once.
  CHECK_THROWS_KILN(trainer.fit(setup.loader, setup.loss_fn()),
                    "Trainer: parameter 'fc1.weight' is on cpu but TrainerOptions::device is cuda:0; move the "
                    "model with model.to(Device::cuda(0)) before building the optimizer");
  if (!cuda::is_available())
    CHECK_THROWS_KILN(trainer.fit(setup.loader, setup.loss_fn()), "(no GPU here: ");
  CHECK(setup.optimizer->state(0).step == 0);  // nothing was trained
}
