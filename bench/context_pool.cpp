// ContextPool: the fused op (ops/context_pool.h) against the same formula as a dense
// composition of kiln Tensor ops, the way one would write it without a fused kernel:
//
//   G = exp(-(i - j)^2 / (2 s_i^2)) * window_mask      (n x n)
//   W = G * m;   y = (W @ x) / (rowsum(W) + eps)
//
// forward, and forward + backward (gradients of x, m and s), f32, 1-D, bidirectional
// (--causal for causal), s ~ U(0.5, s_max) and the window W = ceil(3 s_max) for both.
//
// Memory. Each case runs in its own forked child, so cases cannot inherit each other's
// heap. The child starts its OpenMP threads, builds its inputs, resets its peak-RSS
// counter (writing 5 to /proc/self/clear_refs), reads its current RSS as the baseline,
// runs the case once and reports VmHWM - baseline: the extra memory one call needed at its
// peak, outputs, gradients and the dense form's n x n constants (built after the
// baseline) included. Then it times the case.
// The parent never runs an OpenMP region itself, since a fork after libgomp has started
// its thread pool leaves the child without one.
//
// Usage: bench_context_pool [--n=256,1024,4096] [--d=256] [--batch=1] [--s-max=4]
//                           [--causal] [--no-dense] [--seconds=0.5] [--cpu-time]
// --cpu-time times with the process's CPU time instead of wall time: on a shared, busy
// machine run `OMP_NUM_THREADS=1 bench_context_pool --cpu-time` for numbers that mean
// something (wall time there counts the other processes' time slices).
// Prints a table and one `RESULT bench=context_pool ...` line per case.
#include <kiln/kiln.h>
#include <kiln/ops/context_pool.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

using namespace kiln;

namespace {

struct Settings {
  std::vector<int64_t> lengths = {256, 1024, 4096};
  int64_t channels = 256, batch = 1;
  double s_max = 4.0;
  bool causal = false, dense = true;
  bool cpu_time = false;  // time with CPU time instead of wall time
  double seconds = 0.5;  // timing budget per measurement
};

enum class Method { fused, dense };
enum class Pass { forward, forward_backward };

struct Measurement {
  bool ok = false;
  double ms = 0;
  double peak_mib = 0;
};

// ---- timing and memory ---------------------------------------------------------------------

// Wall time, or with --cpu-time the process's CPU time (all threads), which a busy
// machine inflates much less: with OMP_NUM_THREADS=1 it is the op's own time.
double now_seconds(bool cpu_time) {
  if (!cpu_time) return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

double seconds_of(const std::function<void()>& f, bool cpu_time) {
  const double t0 = now_seconds(cpu_time);
  f();
  return now_seconds(cpu_time) - t0;
}

// Median over as many repetitions as fit in `budget` seconds (3 to 51), after a warm-up.
double median_ms(const std::function<void()>& f, double budget, bool cpu_time) {
  const double first = seconds_of(f, cpu_time);  // the warm-up
  const int reps = std::clamp(static_cast<int>(budget / std::max(first, 1e-6)), 3, 51);
  std::vector<double> t(static_cast<size_t>(reps));
  for (double& s : t) s = seconds_of(f, cpu_time);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2] * 1e3;
}

// A /proc/self/status field in KiB ("VmRSS", "VmHWM").
double status_kib(const char* field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  const std::string key = std::string(field) + ":";
  while (std::getline(status, line))
    if (line.rfind(key, 0) == 0) return std::strtod(line.c_str() + key.size(), nullptr);
  return 0;
}

// Makes VmHWM restart from the current RSS; false where the kernel does not allow it.
bool reset_peak_rss() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
  clear.flush();
  return static_cast<bool>(clear);
}

// ---- the two implementations -----------------------------------------------------------------

// Inputs of one case; x, m, s require grad for the backward pass.
struct Problem {
  Tensor x, m, s, upstream;
  int64_t window;
};

Problem make_problem(const Settings& st, int64_t n) {
  manual_seed(0);
  Problem p;
  p.x = randn({st.batch, n, st.channels}).requires_grad_();
  p.m = uniform(0.05, 1.0, {st.batch, n}).requires_grad_();
  p.s = uniform(0.5, st.s_max, {st.batch, n}).requires_grad_();
  p.upstream = randn({st.batch, n, st.channels});
  p.window = static_cast<int64_t>(std::ceil(3 * st.s_max));
  return p;
}

// The dense form's constants: squared distances (i - j)^2 and the window mask, n x n.
struct DenseConstants {
  Tensor squared_distance, mask;
};

DenseConstants dense_constants(int64_t n, int64_t window, bool causal) {
  const Tensor i = arange(static_cast<double>(n)).reshape({n, 1}), j = arange(static_cast<double>(n)).reshape({1, n});
  const Tensor diff = i - j;  // i - j, so causal keeps diff >= 0
  Tensor mask = le(abs(diff), static_cast<double>(window)).to(f32);
  if (causal) mask = mask * ge(diff, 0.0).to(f32);
  return {diff * diff, mask};
}

Tensor dense_context_pool(const Problem& p, const DenseConstants& c, double eps) {
  const Tensor s = p.s.unsqueeze(2);                                         // (B, n, 1)
  const Tensor g = exp(c.squared_distance * (-0.5 / (s * s))) * c.mask;      // (B, n, n)
  const Tensor w = g * p.m.unsqueeze(1);                                     // m_j along columns
  return matmul(w, p.x) / (sum(w, {2}, /*keepdim=*/true) + eps);
}

// Starts the OpenMP thread pool, so its stacks are part of the baseline, not of the op.
void start_threads() {
  volatile int sink = 0;
#pragma omp parallel
  sink = sink + 1;
}

Measurement measure(const Settings& st, int64_t n, Method method, Pass pass) {
  start_threads();
  Problem p = make_problem(st, n);
  const ContextPoolOptions options{.causal = st.causal, .window = p.window};
  const bool reset = reset_peak_rss();
  const double baseline_kib = status_kib("VmRSS");
  DenseConstants constants;
  if (method == Method::dense) constants = dense_constants(n, p.window, st.causal);
  auto run_forward = [&] {
    return method == Method::fused ? context_pool(p.x, p.m, p.s, options)
                                   : dense_context_pool(p, constants, options.eps);
  };
  std::function<void()> run_case;
  if (pass == Pass::forward) {
    run_case = [&] {
      NoGradGuard no_grad;
      run_forward();
    };
  } else {
    run_case = [&] {
      p.x.zero_grad(), p.m.zero_grad(), p.s.zero_grad();
      run_forward().backward(p.upstream);
    };
  }
  // The peak of one call, taken before the timing loop: later calls reuse the heap
  // blocks the first one freed, and fragmentation across calls is not the op's cost.
  run_case();
  Measurement r;
  r.peak_mib = reset ? (status_kib("VmHWM") - baseline_kib) / 1024 : -1;
  r.ms = median_ms(run_case, st.seconds, st.cpu_time);
  r.ok = true;
  return r;
}

// Runs measure() in a forked child and returns what it wrote to a pipe.
Measurement measure_in_child(const Settings& st, int64_t n, Method method, Pass pass) {
  int fds[2];
  if (pipe(fds) != 0) return {};
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    Measurement r;
    try {
      r = measure(st, n, method, pass);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "case n=%ld failed: %s\n", n, e.what());
    }
    const ssize_t written = write(fds[1], &r, sizeof r);
    _exit(written == sizeof r ? 0 : 1);
  }
  close(fds[1]);
  Measurement r;
  if (read(fds[0], &r, sizeof r) != static_cast<ssize_t>(sizeof r)) r = {};
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return r;
}

// ---- command line and report --------------------------------------------------------------------

Settings parse(int argc, char** argv) {
  Settings st;
  for (int a = 1; a < argc; ++a) {
    const std::string arg = argv[a];
    auto value = [&](const char* name) -> const char* {
      const std::string prefix = std::string(name) + "=";
      return arg.rfind(prefix, 0) == 0 ? argv[a] + prefix.size() : nullptr;
    };
    if (const char* v = value("--n")) {
      st.lengths.clear();
      std::stringstream list(v);
      for (std::string item; std::getline(list, item, ',');) st.lengths.push_back(std::stoll(item));
    } else if (const char* v = value("--d")) st.channels = std::stoll(v);
    else if (const char* v = value("--batch")) st.batch = std::stoll(v);
    else if (const char* v = value("--s-max")) st.s_max = std::stod(v);
    else if (const char* v = value("--seconds")) st.seconds = std::stod(v);
    else if (arg == "--causal") st.causal = true;
    else if (arg == "--no-dense") st.dense = false;
    else if (arg == "--cpu-time") st.cpu_time = true;
    else {
      std::fprintf(stderr,
                   "usage: %s [--n=256,1024,4096] [--d=256] [--batch=1] [--s-max=4] [--causal] [--no-dense] "
                   "[--seconds=0.5] [--cpu-time]\n",
                   argv[0]);
      std::exit(arg == "--help" ? 0 : 2);
    }
  }
  return st;
}

// "/proc/loadavg"'s three averages, and the 1-minute one as a number.
std::string load_average(double* one_minute) {
  std::ifstream f("/proc/loadavg");
  std::string one, five, fifteen;
  f >> one >> five >> fifteen;
  *one_minute = std::strtod(one.c_str(), nullptr);
  return one + " " + five + " " + fifteen;
}

std::string cell(const Measurement& m, bool ms) {
  if (!m.ok) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, ms ? "%.2f" : "%.1f", ms ? m.ms : m.peak_mib);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  const Settings st = parse(argc, argv);
  const char* threads = std::getenv("OMP_NUM_THREADS");
  double load = 0;
  const std::string loads = load_average(&load);
  std::printf("context_pool vs dense n x n composition: f32, B=%ld, d=%ld, s ~ U(0.5, %.1f), window %ld, %s, "
              "OMP_NUM_THREADS=%s, load average %s\n",
              st.batch, st.channels, st.s_max, static_cast<int64_t>(std::ceil(3 * st.s_max)),
              st.causal ? "causal" : "bidirectional", threads ? threads : "(default)", loads.c_str());
  const long cores = sysconf(_SC_NPROCESSORS_ONLN);
  if (load > 0.5 * static_cast<double>(cores))
    std::printf("WARNING: load %.1f on %ld cores: timings are unreliable, multi-threaded ones the most (an OpenMP "
                "region waits for every thread to get a time slice). Rerun on an idle machine, or compare with "
                "OMP_NUM_THREADS=1 --cpu-time.\n",
                load, cores);
  std::printf("times: median %s ms; peak = extra resident memory at the peak, MiB (see the file comment)\n\n",
              st.cpu_time ? "CPU-time" : "wall-clock");
  std::printf("%6s | %-24s | %-24s | %-24s | %-24s\n", "", "forward ms", "forward peak MiB", "fwd+bwd ms",
              "fwd+bwd peak MiB");
  std::printf("%6s | %11s %12s | %11s %12s | %11s %12s | %11s %12s\n", "n", "fused", "dense", "fused", "dense",
              "fused", "dense", "fused", "dense");

  std::map<int64_t, std::map<Pass, std::map<Method, Measurement>>> results;
  for (const int64_t n : st.lengths) {
    for (const Pass pass : {Pass::forward, Pass::forward_backward}) {
      results[n][pass][Method::fused] = measure_in_child(st, n, Method::fused, pass);
      if (st.dense) results[n][pass][Method::dense] = measure_in_child(st, n, Method::dense, pass);
    }
    std::printf("%6ld", n);
    for (const Pass pass : {Pass::forward, Pass::forward_backward})
      for (const bool ms : {true, false})
        std::printf(" | %11s %12s", cell(results[n][pass][Method::fused], ms).c_str(),
                    cell(results[n][pass][Method::dense], ms).c_str());
    std::printf("\n");
    std::fflush(stdout);
  }
  std::printf("\n");
  for (const int64_t n : st.lengths) {
    auto& r = results[n];
    for (const Pass pass : {Pass::forward, Pass::forward_backward}) {
      const Measurement &f = r[pass][Method::fused], &d = r[pass][Method::dense];
      std::printf("RESULT bench=context_pool n=%ld d=%ld batch=%ld causal=%d pass=%s fused_ms=%.3f dense_ms=%.3f "
                  "fused_peak_mib=%.1f dense_peak_mib=%.1f\n",
                  n, st.channels, st.batch, st.causal ? 1 : 0, pass == Pass::forward ? "fwd" : "fwd_bwd", f.ms,
                  d.ok ? d.ms : -1.0, f.peak_mib, d.ok ? d.peak_mib : -1.0);
    }
  }
  if (st.dense && results.count(1024)) {
    auto& r = results[1024];
    for (const Pass pass : {Pass::forward, Pass::forward_backward}) {
      const Measurement &f = r[pass][Method::fused], &d = r[pass][Method::dense];
      if (f.ok && d.ok)
        std::printf("speedup at n=1024, %s: %.1fx (target >= 10x)\n", pass == Pass::forward ? "forward" : "fwd+bwd",
                    d.ms / f.ms);
    }
  }
  // Linear memory: the peak per token stays flat as n grows for the fused op, and grows
  // like n for the dense form.
  for (const Method method : {Method::fused, Method::dense}) {
    if (method == Method::dense && !st.dense) continue;
    std::printf("%s fwd+bwd peak per token (KiB):", method == Method::fused ? "fused" : "dense");
    for (const int64_t n : st.lengths) {
      const Measurement& r = results[n][Pass::forward_backward][method];
      std::printf(" n=%ld: %.2f", n, r.ok ? r.peak_mib * 1024 / static_cast<double>(n * st.batch) : -1.0);
    }
    std::printf("\n");
  }
  if (st.lengths.size() >= 2) {
    const int64_t first = st.lengths.front(), last = st.lengths.back();
    const Measurement &a = results[first][Pass::forward_backward][Method::fused],
                      &b = results[last][Pass::forward_backward][Method::fused];
    const double growth = (b.peak_mib / static_cast<double>(last)) / (a.peak_mib / static_cast<double>(first));
    std::printf("fused memory grows linearly in n: %s (peak per token x%.2f from n=%ld to n=%ld)\n",
                a.ok && b.ok && growth <= 1.5 ? "yes" : "NO", growth, first, last);
  }
  return 0;
}
