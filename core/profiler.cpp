// The per-op profiler (see profiler.h for what is measured).
//
// Each thread keeps its own table and its own stack of open scopes, so recording never
// contends with another thread: the table's mutex is only ever taken by a second thread
// when report(), entries() or reset() read it. A thread that exits hands its totals to
// the registry, so the DataLoader's rows survive it.
#include "kiln/core/profiler.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <mutex>
#include <unordered_map>

#include "kiln/cuda/device.h"

namespace kiln::profiler {

namespace detail {
std::atomic<bool> g_enabled{false};
}

namespace {

struct Stats {
  int64_t calls = 0;
  int64_t self_ns = 0;
  int64_t bytes = 0;

  void add(const Stats& o) {
    calls += o.calls;
    self_ns += o.self_ns;
    bytes += o.bytes;
  }
};

// Looks rows up by string_view without building a std::string per call.
struct NameHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using PassTable = std::unordered_map<std::string, Stats, NameHash, std::equal_to<>>;
constexpr size_t kPasses = 3;

struct ThreadTable {
  std::mutex mutex;
  std::array<PassTable, kPasses> by_pass;

  ThreadTable();
  ~ThreadTable();
};

// Every live thread's table, plus the totals of threads that have exited. Lock order:
// the registry's mutex, then a table's.
struct Registry {
  std::mutex mutex;
  std::vector<ThreadTable*> live;
  std::array<PassTable, kPasses> exited;
};

Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: threads may exit after main's statics die
  return *r;
}

void merge_into(std::array<PassTable, kPasses>& into, const std::array<PassTable, kPasses>& from) {
  for (size_t p = 0; p < kPasses; ++p)
    for (const auto& [name, stats] : from[p]) into[p][name].add(stats);
}

ThreadTable::ThreadTable() {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.live.push_back(this);
}

ThreadTable::~ThreadTable() {
  Registry& r = registry();
  std::lock_guard registry_lock(r.mutex);
  std::lock_guard lock(mutex);
  merge_into(r.exited, by_pass);
  std::erase(r.live, this);
}

ThreadTable& this_thread_table() {
  thread_local ThreadTable table;
  return table;
}

void record(std::string_view name, Pass pass, int64_t self_ns, int64_t bytes) {
  ThreadTable& t = this_thread_table();
  std::lock_guard lock(t.mutex);
  PassTable& table = t.by_pass[static_cast<size_t>(pass)];
  auto it = table.find(name);
  if (it == table.end()) it = table.emplace(std::string(name), Stats{}).first;
  it->second.add({.calls = 1, .self_ns = self_ns, .bytes = bytes});
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The innermost open scope of this thread: nested scopes charge their time to it.
thread_local Scope* t_innermost = nullptr;

// KILN_PROFILE=1 (anything but empty or "0") switches profiling on for the whole run and
// prints the table to stderr at exit. Decided once, before main().
void print_at_exit() { report(std::cerr); }

const bool g_enabled_from_env = [] {
  const char* v = std::getenv("KILN_PROFILE");
  const bool on = v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
  if (on) {
    detail::g_enabled.store(true, std::memory_order_relaxed);
    std::atexit(print_at_exit);
  }
  return on;
}();

}  // namespace

const char* pass_name(Pass pass) {
  switch (pass) {
    case Pass::forward: return "forward";
    case Pass::backward: return "backward";
    case Pass::other: return "other";
  }
  return "?";
}

void set_enabled(bool on) { detail::g_enabled.store(on, std::memory_order_relaxed); }

int64_t bytes_of(const Tensor& t) {
  return t.defined() ? t.numel() * static_cast<int64_t>(element_size(t.dtype())) : 0;
}

int64_t bytes_of(const std::vector<Tensor>& ts) {
  int64_t total = 0;
  for (const Tensor& t : ts) total += bytes_of(t);
  return total;
}

void Scope::begin(std::string_view name, Pass pass, int64_t bytes) {
  // Inside a backward (or other) scope everything is that scope's cost: see profiler.h.
  if (t_innermost != nullptr && t_innermost->pass_ != Pass::forward) return;
  active_ = true;
  name_ = name;
  pass_ = pass;
  bytes_ = bytes;
  parent_ = t_innermost;
  t_innermost = this;
  cuda::wait_for_all_devices();  // the GPU work queued before this scope is not its cost
  start_ns_ = now_ns();
}

void Scope::end() {
  cuda::wait_for_all_devices();  // ... and the work queued inside it is (see profiler.h)
  const int64_t elapsed = now_ns() - start_ns_;
  t_innermost = parent_;
  if (parent_ != nullptr) parent_->nested_ns_ += elapsed;
  record(name_, pass_, elapsed - nested_ns_, bytes_);
}

std::vector<Entry> entries() {
  std::array<PassTable, kPasses> total;
  {
    Registry& r = registry();
    std::lock_guard registry_lock(r.mutex);
    merge_into(total, r.exited);
    for (ThreadTable* t : r.live) {
      std::lock_guard lock(t->mutex);
      merge_into(total, t->by_pass);
    }
  }
  std::vector<Entry> rows;
  for (size_t p = 0; p < kPasses; ++p)
    for (const auto& [name, s] : total[p])
      rows.push_back({.name = name, .pass = static_cast<Pass>(p), .calls = s.calls,
                      .seconds = static_cast<double>(s.self_ns) * 1e-9, .bytes = s.bytes});
  std::sort(rows.begin(), rows.end(), [](const Entry& a, const Entry& b) {
    return a.seconds != b.seconds ? a.seconds > b.seconds : a.name < b.name;
  });
  return rows;
}

void reset() {
  Registry& r = registry();
  std::lock_guard registry_lock(r.mutex);
  for (PassTable& t : r.exited) t.clear();
  for (ThreadTable* t : r.live) {
    std::lock_guard lock(t->mutex);
    for (PassTable& p : t->by_pass) p.clear();
  }
}

namespace {

void print_row(std::ostream& os, const char* name, const char* pass, int64_t calls, double seconds, double share,
               int64_t bytes) {
  char line[200];
  std::snprintf(line, sizeof line, "%-32s %-8s %9lld %11.2f %6.1f%% %11.1f %11.1f\n", name, pass,
                static_cast<long long>(calls), seconds * 1e3, share * 100,
                calls ? seconds * 1e6 / static_cast<double>(calls) : 0.0, static_cast<double>(bytes) * 1e-6);
  os << line;
}

}  // namespace

void report(std::ostream& os) {
  const std::vector<Entry> rows = entries();
  if (rows.empty()) {
    os << "kiln profile: nothing recorded\n";
    return;
  }
  double total_seconds = 0;
  int64_t total_calls = 0, total_bytes = 0;
  for (const Entry& e : rows) {
    total_seconds += e.seconds;
    total_calls += e.calls;
    total_bytes += e.bytes;
  }
  os << "kiln profile: self time per op and pass, all threads summed (bytes: forward = inputs read,\n"
        "backward = gradients produced; see core/profiler.h)\n";
  char header[200];
  std::snprintf(header, sizeof header, "%-32s %-8s %9s %11s %7s %11s %11s\n", "op", "pass", "calls", "time ms",
                "share", "us/call", "MB");
  os << header;
  for (const Entry& e : rows)
    print_row(os, e.name.c_str(), pass_name(e.pass), e.calls, e.seconds,
              total_seconds > 0 ? e.seconds / total_seconds : 0.0, e.bytes);
  print_row(os, "total", "", total_calls, total_seconds, 1.0, total_bytes);
}

}  // namespace kiln::profiler
