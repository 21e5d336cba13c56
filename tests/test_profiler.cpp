// The per-op profiler (core/profiler.h): off by default, exact call counts per op and
// pass, self time without double counting, opaque backward scopes, every thread counted.
#include <chrono>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <thread>

#include <kiln/core/profiler.h>
#include <omp.h>

#include "helpers.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

// Profiling on for one test, from a clean table, and off again afterwards.
struct ProfilingOn {
  ProfilingOn() {
    profiler::reset();
    profiler::set_enabled(true);
  }
  ~ProfilingOn() {
    profiler::set_enabled(false);
    profiler::reset();
  }
};

// The row of (name, pass), or nullopt when the profiler has none.
std::optional<profiler::Entry> row(const std::string& name, profiler::Pass pass) {
  for (const profiler::Entry& e : profiler::entries())
    if (e.name == name && e.pass == pass) return e;
  return std::nullopt;
}

int64_t calls(const std::string& name, profiler::Pass pass) {
  const auto r = row(name, pass);
  return r ? r->calls : 0;
}

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

}  // namespace

using profiler::Pass;

TEST_CASE("the profiler is off by default and records nothing") {
  if (std::getenv("KILN_PROFILE") != nullptr) {
    MESSAGE("KILN_PROFILE is set for this run: the default cannot be checked");
    return;
  }
  CHECK_FALSE(profiler::enabled());
  profiler::reset();
  Tensor x = randn({4, 4}).requires_grad_();
  sum(relu(matmul(x, x))).backward();
  CHECK(profiler::entries().empty());
  std::ostringstream os;
  profiler::report(os);
  CHECK(os.str().find("nothing recorded") != std::string::npos);
}

TEST_CASE("forward ops and their backward nodes are counted exactly, with their bytes") {
  ProfilingOn on;
  Tensor a = randn({4, 3}).requires_grad_(), b = randn({3, 5}).requires_grad_();
  Tensor loss = sum(relu(matmul(a, b)));
  add(a, a);
  add(a, a);
  loss.backward();

  CHECK(calls("matmul", Pass::forward) == 1);
  CHECK(calls("relu", Pass::forward) == 1);
  CHECK(calls("sum", Pass::forward) == 1);
  CHECK(calls("add", Pass::forward) == 2);
  CHECK(calls("sum", Pass::backward) == 1);
  CHECK(calls("relu", Pass::backward) == 1);
  CHECK(calls("matmul", Pass::backward) == 1);
  CHECK(calls("AccumulateGrad", Pass::backward) == 2);  // a and b
  // Forward bytes: the inputs read (f32); backward bytes: the gradients produced.
  CHECK(row("matmul", Pass::forward)->bytes == (12 + 15) * 4);
  CHECK(row("relu", Pass::forward)->bytes == 20 * 4);
  CHECK(row("matmul", Pass::backward)->bytes == (12 + 15) * 4);
  // relu's backward multiplies by a mask: that mul is part of "relu backward", not a row.
  CHECK(calls("mul", Pass::forward) == 0);
  CHECK(calls("mul", Pass::backward) == 0);
}

TEST_CASE("a node reached twice has its incoming gradients summed under the engine's row") {
  ProfilingOn on;
  Tensor x = randn({3}).requires_grad_();
  Tensor y = exp(x);
  sum(y * y).backward();  // y feeds mul twice: two gradients for exp's node to add up
  CHECK(calls("(sum of incoming grads)", Pass::backward) == 1);
  CHECK(calls("exp", Pass::backward) == 1);
  CHECK(calls("mul", Pass::backward) == 1);
}

TEST_CASE("nested scopes report self time: nothing is counted twice") {
  ProfilingOn on;
  const auto start = std::chrono::steady_clock::now();
  {
    profiler::Scope outer("outer");
    sleep_ms(20);
    {
      profiler::Scope inner("inner");
      sleep_ms(30);
    }
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto outer = row("outer", Pass::forward), inner = row("inner", Pass::forward);
  REQUIRE(outer);
  REQUIRE(inner);
  CHECK(outer->calls == 1);
  CHECK(inner->calls == 1);
  CHECK(inner->seconds >= 0.030);
  CHECK(outer->seconds >= 0.020);
  // Inclusive time would count the inner 30 ms twice and overshoot the wall time.
  CHECK(outer->seconds + inner->seconds <= wall);
}

TEST_CASE("an `other` scope (an optimizer step) owns the ops run inside it") {
  ProfilingOn on;
  Tensor p = randn({8});
  {
    profiler::Scope step("Optimizer.step", Pass::other);
    p.mul_(0.5);
    p.add_(p);
  }
  CHECK(calls("Optimizer.step", Pass::other) == 1);
  CHECK(calls("mul_", Pass::forward) == 0);
  CHECK(calls("add_", Pass::forward) == 0);
  p.mul_(2.0);  // outside the step: a row of its own
  CHECK(calls("mul_", Pass::forward) == 1);
}

TEST_CASE("ops in other threads are counted, also after the thread has exited") {
  ProfilingOn on;
  const Tensor x = randn({16});
  std::thread worker([&] {
    for (int i = 0; i < 3; ++i) neg(x);
  });
  worker.join();
  CHECK(calls("neg", Pass::forward) == 3);

  int team = 0;
#pragma omp parallel num_threads(2)
  {
    neg(x);
#pragma omp single
    team = omp_get_num_threads();
  }
  CHECK(calls("neg", Pass::forward) == 3 + team);
}

TEST_CASE("report() prints a table sorted by time with shares, and reset() empties it") {
  ProfilingOn on;
  {
    profiler::Scope slow("slow_op");
    sleep_ms(5);
  }
  {
    profiler::Scope fast("fast_op");
  }
  std::ostringstream os;
  profiler::report(os);
  const std::string table = os.str();
  const size_t slow = table.find("slow_op"), fast = table.find("fast_op");
  REQUIRE(slow != std::string::npos);
  REQUIRE(fast != std::string::npos);
  CHECK(slow < fast);  // the slower row comes first
  CHECK(table.find('%') != std::string::npos);
  CHECK(table.find("total") != std::string::npos);
  CHECK(table.find("forward") != std::string::npos);

  profiler::reset();
  CHECK(profiler::entries().empty());
}
