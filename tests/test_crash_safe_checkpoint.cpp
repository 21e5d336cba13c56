// Crash safety of checkpoints, tested with real crashes: a child process writes
// checkpoints in a loop and the parent kills it with SIGKILL at a random moment (no
// destructor, no flush, no cleanup runs), many times. Whatever the kill interrupted, the
// checkpoint on disk must load and be exactly the previous one or the new one, never a
// torn mix; and a training run resumed from it must continue with losses bit-identical
// to a run that was never interrupted.
//
// The children are this test binary run again with one hidden test case selected
// (posix_spawn of /proc/self/exe, as in test_trainer.cpp: a fork()ed child of a process
// that has used OpenMP may hang in its thread pool).
//
// A killed save leaves its temporary file ("<path>.tmp.<pid>.<n>") behind; the next save
// of the same path removes it, but never the temporary of a writer that is still alive
// (core/safetensors.cpp: writers hold an flock() on their temporary). Both are tested
// here, the second with a writer that keeps saving while another process saves too.
#include <kiln/nn/activation.h>
#include <kiln/nn/data/dataloader.h>
#include <kiln/nn/linear.h>
#include <kiln/nn/optim/adam.h>
#include <kiln/nn/optim/lr_scheduler.h>
#include <kiln/nn/serialize.h>
#include <kiln/nn/train/trainer.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <thread>
#include <vector>

#include "helpers.h"
#include "temp_dir.h"

using namespace kiln;
namespace fs = std::filesystem;
using kiln::testing::TempDir;

namespace {

// ---- child processes ---------------------------------------------------------------------

// This test binary started again with one hidden test case selected and `variable`=`value`
// added to its environment. The child is killed and reaped at the latest when this
// object goes away, so a failing check never leaves one running (the children loop
// until killed).
class Child {
 public:
  Child(const char* test_case, const char* variable, const std::string& value) {
    const std::string filter = std::string("--test-case=") + test_case;  // no commas: they split filters
    const std::string assignment = std::string(variable) + "=" + value;
    std::vector<char*> argv = {const_cast<char*>("kiln_tests"), const_cast<char*>(filter.c_str()),
                               const_cast<char*>("--no-skip"), const_cast<char*>("--minimal"), nullptr};
    std::vector<char*> envp = {const_cast<char*>(assignment.c_str())};
    for (char** e = environ; *e != nullptr; ++e) envp.push_back(*e);
    envp.push_back(nullptr);
    REQUIRE(posix_spawn(&pid_, "/proc/self/exe", nullptr, nullptr, argv.data(), envp.data()) == 0);
  }
  ~Child() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // Waits until the child creates `marker`, i.e. has started its work. Fails if it
  // exits first or takes over two minutes (a sanitizer build starts slowly).
  void wait_for(const std::string& marker) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
    int status = 0;
    bool exited = false;
    while (!fs::exists(marker) && std::chrono::steady_clock::now() < deadline) {
      if ((exited = waitpid(pid_, &status, WNOHANG) == pid_)) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    REQUIRE_MESSAGE(!exited, "the child exited before starting, status ", status);
    REQUIRE_MESSAGE(fs::exists(marker), "the child did not start within 2 minutes");
  }

  // SIGKILL, then reap: the child must have died of that signal, not of anything else.
  void kill() {
    REQUIRE(::kill(pid_, SIGKILL) == 0);
    int status = 0;
    REQUIRE(waitpid(pid_, &status, 0) == pid_);
    pid_ = -1;
    REQUIRE_MESSAGE((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL),
                    "the child ended on its own before the kill, status ", status);
  }

 private:
  pid_t pid_ = -1;
};

void create_marker(const std::string& path) {
  std::ofstream out(path);
  REQUIRE(out.good());
}

// How many temporary files of saves ("<path>.tmp.<pid>.<n>", see core/safetensors.cpp)
// are in `dir` now.
int count_temp_files(const fs::path& dir) {
  int count = 0;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir))
    count += entry.path().filename().string().find(".tmp.") != std::string::npos;
  return count;
}

// Delays drawn from a fixed seed: the schedule of kills is the same on every run (where
// each kill lands still depends on the machine's timing, which is the point).
class KillClock {
 public:
  explicit KillClock(int max_delay_ms) : delay_(0, max_delay_ms * 1000) {}
  void sleep() { std::this_thread::sleep_for(std::chrono::microseconds(delay_(random_))); }

 private:
  std::mt19937 random_{20240611};
  std::uniform_int_distribution<int> delay_;
};

// ---- part 1: alternating between two known checkpoints -------------------------------------

constexpr const char* kSaverCase = "crash-safe checkpoint: (child process) save two checkpoints in turn until killed";
constexpr const char* kSaverVariable = "KILN_CRASH_TEST_CHECKPOINT";

// Two checkpoints that differ in every part a torn write could mix up: tensor sizes (so
// the files differ in length and layout), values, the step and the metadata. Around
// 4 MB each, so that a save takes long enough for most kills to land inside one.
nn::TrainingCheckpoint known_checkpoint(int which) {
  const int64_t rows = which == 0 ? 512 : 520;
  nn::TrainingCheckpoint c;
  c.model.insert("weight", arange(0, rows * 1024, 1, {.dtype = f32}).reshape({rows, 1024}) * (which + 1.0));
  c.model.insert("bias", full({rows}, which == 0 ? -1.0 : 2.0));
  c.optimizer.insert("exp_avg", full({rows, 1024}, which == 0 ? 0.25 : 0.5));
  c.optimizer.insert("step", full({}, which == 0 ? 10.0 : 11.0, {.dtype = i64}));
  c.rng = {.seed = 7, .offset = which == 0 ? 100u : 200u};
  c.step = which == 0 ? 10 : 11;
  c.data_position = which == 0 ? 40 : 44;
  c.metadata = {{"which", which == 0 ? "old" : "new"}};
  return c;
}

bool same_tensors(const nn::StateDict& a, const nn::StateDict& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [name, t] : a) {
    const Tensor other = b.find(name);
    if (!other.defined() || other.shape() != t.shape() || other.dtype() != t.dtype()) return false;
    if (t.to_vector<double>() != other.to_vector<double>()) return false;
  }
  return true;
}

bool same_checkpoint(const nn::TrainingCheckpoint& a, const nn::TrainingCheckpoint& b) {
  return a.step == b.step && a.data_position == b.data_position && a.rng.seed == b.rng.seed &&
         a.rng.offset == b.rng.offset && a.metadata == b.metadata && same_tensors(a.model, b.model) &&
         same_tensors(a.optimizer, b.optimizer);
}

}  // namespace

TEST_CASE(kSaverCase * doctest::skip()) {
  const char* path = std::getenv(kSaverVariable);
  if (path == nullptr) {  // selected by --no-skip alone: there is no parent to kill it
    MESSAGE("run only as the child of the crash-safe checkpoint test");
    return;
  }
  const nn::TrainingCheckpoint checkpoints[2] = {known_checkpoint(0), known_checkpoint(1)};
  for (int i = 1;; ++i) {  // the parent has written checkpoint 0: start with 1
    nn::save_checkpoint(path, checkpoints[i % 2]);
    if (i == 1) create_marker(std::string(path) + ".started");
  }
}

TEST_CASE("crash-safe checkpoint: SIGKILL at random moments of a save leaves the old or the new file") {
  constexpr int kKills = 16;
  TempDir dir;
  const std::string path = dir.file("latest.ckpt.safetensors");
  const nn::TrainingCheckpoint old_one = known_checkpoint(0), new_one = known_checkpoint(1);

  // How long one save takes here sets the range of the kill delays: up to two saves.
  const auto start = std::chrono::steady_clock::now();
  nn::save_checkpoint(path, old_one);
  const auto save_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  KillClock clock(static_cast<int>(2 * save_ms.count() + 2));

  int found_old = 0, found_new = 0, killed_mid_write = 0;
  for (int kill = 0; kill < kKills; ++kill) {
    CAPTURE(kill);
    nn::save_checkpoint(path, old_one);
    CHECK(count_temp_files(dir.path()) == 0);  // this save removed what the last kill left
    fs::remove(path + ".started");
    Child child(kSaverCase, kSaverVariable, path);
    child.wait_for(path + ".started");
    clock.sleep();
    child.kill();

    // A temporary file left behind means the kill landed inside a save, before its rename.
    if (count_temp_files(dir.path()) > 0) ++killed_mid_write;
    nn::TrainingCheckpoint on_disk;
    REQUIRE_NOTHROW(on_disk = nn::load_checkpoint(path));
    const bool is_old = same_checkpoint(on_disk, old_one), is_new = same_checkpoint(on_disk, new_one);
    CHECK_MESSAGE((is_old || is_new), "the checkpoint on disk is neither the old nor the new one (step ",
                  on_disk.step, ")");
    found_old += is_old;
    found_new += is_new;
  }
  nn::save_checkpoint(path, old_one);
  CHECK(count_temp_files(dir.path()) == 0);
  MESSAGE("save takes ", save_ms.count(), " ms; of ", kKills, " kills, ", killed_mid_write,
          " landed inside a save; the file held the old checkpoint ", found_old, " times, the new one ", found_new);
  // Without kills inside a save the test would prove nothing; both outcomes must occur.
  CHECK(killed_mid_write > 0);
  CHECK(found_old > 0);
  CHECK(found_new > 0);
}

// ---- part 1b: the temporaries of killed saves are removed, a live writer's never ---------------

TEST_CASE("crash-safe checkpoint: a save removes dead writers' temporaries, not a live writer's") {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  const std::vector<std::pair<std::string, Tensor>> tensors = {{"w", ones({4})}};
  auto exists = [&](const std::string& name) { return fs::exists(dir.file(name)); };
  auto touch = [&](const std::string& name) { create_marker(dir.file(name)); };

  // Temporaries of writers that died (nobody holds their lock), a live writer's (this
  // test holds its lock, as a writer does from creation to rename), and names that only
  // look like temporaries of this path.
  touch("model.safetensors.tmp.4242.0");
  touch("model.safetensors.tmp.1.17");
  touch("model.safetensors.tmp.77.3");
  const int live = ::open(dir.file("model.safetensors.tmp.77.3").c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(live >= 0);
  REQUIRE(::flock(live, LOCK_EX | LOCK_NB) == 0);
  for (const char* other : {"model.safetensors.tmp.12", "model.safetensors.tmp.x.1", "other.safetensors.tmp.5.0",
                            "model.safetensors.tmp.5.0.bak"})
    touch(other);

  save_safetensors(path, tensors);
  CHECK_FALSE(exists("model.safetensors.tmp.4242.0"));
  CHECK_FALSE(exists("model.safetensors.tmp.1.17"));
  CHECK(exists("model.safetensors.tmp.77.3"));  // its writer is alive
  for (const char* other : {"model.safetensors.tmp.12", "model.safetensors.tmp.x.1", "other.safetensors.tmp.5.0",
                            "model.safetensors.tmp.5.0.bak"})
    CHECK(exists(other));

  ::close(live);  // the writer dies: its lock goes with it
  save_safetensors(path, tensors);
  CHECK_FALSE(exists("model.safetensors.tmp.77.3"));
  CHECK(load_safetensors(path).find("w").to_vector<double>() == std::vector<double>(4, 1.0));
}

TEST_CASE("crash-safe checkpoint: saves from two processes at once never remove each other's temporary") {
  // A child saves checkpoints to the path without end while this process saves to it
  // too, each save first sweeping the folder for abandoned temporaries. If a sweep took
  // the child's open temporary, the child's rename would fail, its test case would end
  // with an error, and it would exit before the kill below.
  constexpr int kParentSaves = 40;
  TempDir dir;
  const std::string path = dir.file("latest.ckpt.safetensors");
  const nn::TrainingCheckpoint old_one = known_checkpoint(0), new_one = known_checkpoint(1);
  nn::save_checkpoint(path, old_one);
  Child child(kSaverCase, kSaverVariable, path);
  child.wait_for(path + ".started");
  int saw_child_temp = 0;
  for (int i = 0; i < kParentSaves; ++i) {
    saw_child_temp += count_temp_files(dir.path()) > 0;
    nn::save_checkpoint(path, i % 2 ? old_one : new_one);
  }
  child.kill();  // requires that the child was still saving, i.e. never failed
  MESSAGE(kParentSaves, " saves beside a live writer; its temporary was there before ", saw_child_temp, " of them");
  CHECK(saw_child_temp > 0);  // otherwise the sweeps never met a live temporary
  const nn::TrainingCheckpoint on_disk = nn::load_checkpoint(path);
  CHECK((same_checkpoint(on_disk, old_one) || same_checkpoint(on_disk, new_one)));
  nn::save_checkpoint(path, old_one);
  CHECK(count_temp_files(dir.path()) == 0);  // the killed child's temporary, if any, is gone
}

// ---- part 2: killing a training run, resuming from what is on disk -------------------------

namespace {

constexpr const char* kTrainerCase = "crash-safe checkpoint: (child process) train with a checkpoint every step";
constexpr const char* kTrainerVariable = "KILN_CRASH_TEST_DIR";

// 4 -> 32 -> 3 with dropout, so the RNG state in the checkpoint matters too.
struct SmallNet : nn::Module {
  std::shared_ptr<nn::Linear> fc1, fc2;
  std::shared_ptr<nn::Dropout> drop;
  SmallNet() {
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(4, 32));
    drop = register_module("drop", std::make_shared<nn::Dropout>(0.25));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(32, 3));
  }
  Tensor forward(const Tensor& x) const { return fc2->forward(drop->forward(relu(fc1->forward(x)))); }
};

// Everything a training process builds from scratch. Only `seed` differs between the
// processes: the checkpoint alone must bring back the weights, optimizer and RNG.
struct Run {
  std::shared_ptr<SmallNet> model;
  std::unique_ptr<nn::optim::AdamW> optimizer;
  std::unique_ptr<nn::optim::WarmupCosineLR> schedule;
  nn::data::DataLoader loader;

  explicit Run(uint64_t seed) : loader(dataset(), {.batch_size = 8, .shuffle = true, .seed = 3, .prefetch = 2}) {
    manual_seed(seed);
    model = std::make_shared<SmallNet>();
    optimizer = std::make_unique<nn::optim::AdamW>(model->parameters(), nn::optim::AdamWOptions{.lr = 1e-2});
    // The schedule spans a fixed number of steps whatever max_steps a run has, so runs
    // of different lengths agree step for step.
    schedule = std::make_unique<nn::optim::WarmupCosineLR>(
        *optimizer, nn::optim::WarmupCosineOptions{.warmup_steps = 5, .total_steps = 100000, .min_lr = 1e-3});
  }

  static std::shared_ptr<nn::data::TensorDataset> dataset() {
    manual_seed(5);
    Tensor x = randn({96, 4});
    Tensor y = randint(0, 3, {96});
    return std::make_shared<nn::data::TensorDataset>(x, y);
  }

  // Trains to `options.max_steps`; returns the loss of every step this fit() ran.
  std::vector<double> train(nn::TrainerOptions options, const std::function<void(int64_t)>& after_step = {}) {
    options.progress = "none";
    nn::Trainer trainer(*model, *optimizer, options);
    trainer.set_lr_schedule(*schedule);
    std::vector<double> losses;
    trainer.set_on_step([&](const nn::StepStats& s) {
      losses.push_back(s.loss);
      if (after_step) after_step(s.step);
    });
    trainer.fit(loader, [this](const nn::data::Batch& b) { return cross_entropy(model->forward(b.input), b.target); });
    return losses;
  }
};

}  // namespace

TEST_CASE(kTrainerCase * doctest::skip()) {
  const char* dir = std::getenv(kTrainerVariable);
  if (dir == nullptr) {
    MESSAGE("run only as the child of the crash-safe checkpoint test");
    return;
  }
  const std::string marker = (fs::path(dir) / "started").string();
  Run run(/*seed=*/1);
  // Runs until killed (max_steps is out of reach). on_step comes before the step's
  // checkpoint, so at step 2 the checkpoint of step 1 is on disk.
  run.train({.max_steps = 1'000'000, .checkpoint_dir = dir, .checkpoint_interval = 1},
            [&](int64_t step) {
              if (step == 2) create_marker(marker);
            });
}

TEST_CASE("crash-safe checkpoint: a run killed while checkpointing resumes with bit-identical losses") {
  constexpr int kKills = 6;
  constexpr int64_t kStepsAfterResume = 8;
  TempDir dir;
  KillClock clock(/*max_delay_ms=*/60);

  std::vector<int64_t> resumed_at;
  std::map<int64_t, std::vector<double>> tails;  // resumed step -> losses of the next steps
  int killed_mid_write = 0;
  for (int kill = 0; kill < kKills; ++kill) {
    CAPTURE(kill);
    fs::remove_all(dir.file("ckpt"));
    const std::string ckpt_dir = dir.file("ckpt");
    fs::create_directories(ckpt_dir);
    Child child(kTrainerCase, kTrainerVariable, ckpt_dir);
    child.wait_for((fs::path(ckpt_dir) / "started").string());
    clock.sleep();
    child.kill();
    if (count_temp_files(ckpt_dir) > 0) ++killed_mid_write;

    // A fresh process (here: fresh objects with other weights) resumes from the file.
    Run resumed(/*seed=*/999);
    const int64_t step = nn::load_checkpoint((fs::path(ckpt_dir) / "latest.ckpt.safetensors").string()).step;
    REQUIRE(step >= 1);
    resumed_at.push_back(step);
    tails[step] = resumed.train({.max_steps = step + kStepsAfterResume, .checkpoint_dir = ckpt_dir, .resume = true});
    CHECK(count_temp_files(ckpt_dir) == 0);  // the resumed run's checkpoint removed the killed one's temporary
  }

  // One uninterrupted run, as long as the latest resume point needs.
  const int64_t last = *std::max_element(resumed_at.begin(), resumed_at.end()) + kStepsAfterResume;
  Run straight(/*seed=*/1);
  const std::vector<double> expected = straight.train({.max_steps = last});
  for (const auto& [step, tail] : tails) {
    CAPTURE(step);
    REQUIRE(tail.size() == static_cast<size_t>(kStepsAfterResume));
    const std::vector<double> reference(expected.begin() + step, expected.begin() + step + kStepsAfterResume);
    CHECK(tail == reference);  // exact ==: bit-identical
  }
  std::string steps;
  for (int64_t s : resumed_at) steps += std::to_string(s) + " ";
  MESSAGE("killed after the checkpoints of steps ", steps, "(", killed_mid_write, " of ", kKills,
          " kills inside a save)");
}
