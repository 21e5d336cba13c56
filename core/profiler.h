// The per-op profiler: where does a training step go?
//
//   KILN_PROFILE=1 ./build/bench/bench_train_step     a table on stderr when the program exits
//
// Every public op opens a scope on its first line, naming the tensors it reads:
//
//   Tensor matmul(const Tensor& a, const Tensor& b) {
//     KILN_PROFILE_SCOPE("matmul", a, b);
//     ...
//
// and the autograd engine opens one around each node's backward, under the node's op name,
// so "matmul" gets a forward row and a backward row. Per (op, pass) the table shows:
//   time   SELF (exclusive) time: the scope's wall time minus that of the scopes nested in
//          it, so nothing is counted twice and the rows add up to the profiled time. A
//          forward op that calls other ops (mean calls sum and mul) keeps only its own
//          share. Backward and `other` scopes are opaque: the Tensor ops a backward rule runs
//          are counted in it, not on rows of their own, so "matmul backward" is the whole
//          cost of matmul's gradient.
//   calls  how many times the scope ran.
//   bytes  forward: the total size of the tensors the scope names (an op's inputs, what it
//          reads; views name none, as they move no data); backward: the total size of the
//          gradients it produced (which have the forward inputs' shapes).
// On a GPU, ops only queue kernels, so a scope's wall time would be its launch cost. While
// the profiler is on, every scope therefore waits for all GPU work kiln queued (on every
// device it has used) when it starts and when it ends: a row's time is then the GPU time
// of the kernels it queued, plus the host work, plus ~10 us of waiting per scope. A
// profiled step runs slower than an unprofiled one (no overlap of host and GPU); the
// shares are what the table is for.
// Ops running in several threads (the DataLoader's thread, OpenMP workers) add to their own
// thread's table; report() sums them all, so with overlapping threads the total can exceed
// the wall time.
//
// Off (the default) a scope costs one relaxed atomic load and a branch: the switch is read
// from the environment once at startup. Tests switch it with set_enabled().
#pragma once

#include <atomic>
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/core/tensor.h"

namespace kiln::profiler {

enum class Pass { forward, backward, other };  // other: outside the graph, e.g. an optimizer step
const char* pass_name(Pass pass);

namespace detail {
extern std::atomic<bool> g_enabled;
}

inline bool enabled() { return detail::g_enabled.load(std::memory_order_relaxed); }
void set_enabled(bool on);

// One row of the table: totals over all threads since the last reset().
struct Entry {
  std::string name;
  Pass pass = Pass::forward;
  int64_t calls = 0;
  double seconds = 0;  // self time
  int64_t bytes = 0;
};

std::vector<Entry> entries();  // sorted by time, largest first
void reset();                  // forget everything measured so far
// The table, sorted by time, with each row's share of the total.
void report(std::ostream& os);

// Sizes in bytes of what a scope names; undefined tensors count 0.
int64_t bytes_of(const Tensor& t);
int64_t bytes_of(const std::vector<Tensor>& ts);

// Times the code from its construction to the end of its C++ scope. Use the macro below
// for ops; construct one directly for other passes.
class Scope {
 public:
  explicit Scope(std::string_view name, Pass pass = Pass::forward) {
    if (enabled()) begin(name, pass, 0);
  }
  // A forward op's scope; `inputs` (Tensors or vectors of them) give its bytes.
  template <class... Inputs>
  explicit Scope(std::string_view name, const Inputs&... inputs) {
    if (enabled()) begin(name, Pass::forward, (int64_t{0} + ... + bytes_of(inputs)));
  }
  ~Scope() {
    if (active_) end();
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

  void add_bytes(int64_t n) { bytes_ += n; }

 private:
  void begin(std::string_view name, Pass pass, int64_t bytes);
  void end();

  bool active_ = false;
  Pass pass_ = Pass::forward;
  std::string_view name_;
  Scope* parent_ = nullptr;  // the enclosing active scope of this thread
  int64_t start_ns_ = 0;
  int64_t nested_ns_ = 0;  // wall time of the scopes directly inside this one
  int64_t bytes_ = 0;
};

}  // namespace kiln::profiler

#define KILN_PROFILE_CONCAT_INNER(a, b) a##b
#define KILN_PROFILE_CONCAT(a, b) KILN_PROFILE_CONCAT_INNER(a, b)
// KILN_PROFILE_SCOPE("op", input tensors...): times the rest of the enclosing block as op "op".
#define KILN_PROFILE_SCOPE(...) \
  ::kiln::profiler::Scope KILN_PROFILE_CONCAT(kiln_profile_scope_, __LINE__)(__VA_ARGS__)
