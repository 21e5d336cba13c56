// The memory soak: 10 000 training steps of a small GPT (bench/soak_loop.h: dropout,
// AdamW, gradient clipping, a warmup-cosine schedule, a fresh random batch every step),
// printing the resident set size as it goes. Flat memory means the RSS stops growing once
// the first steps have sized malloc's heap; docs/reliability.md has the figures.
//
//   bench_soak [--steps 10000] [--every 1000] [--threads 1]
//
// --threads sets the OpenMP threads, 1 by default: this model's ops are too small to gain
// from more, and on a machine whose cores are busy with other work each parallel region
// waits for a free core (measured: 1.2 ms per step on one thread, 95 ms on two), which
// would make `make bench` take many minutes. 10 000 steps take about 12 s.
// Prints "step N rss_mib=.. loss=.." every `every` steps (and at steps 1, 10, 100), then
//
//   RESULT steps=.. threads=.. seconds=.. ms_per_step=.. rss_mib_100=.. rss_mib_1000=.. rss_mib_5000=..
//          rss_mib_end=.. growth_mib_after_1000=.. final_loss=..
//
// (an rss_mib_N only when the run reaches step N).
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "soak_loop.h"

using namespace kiln;

namespace {

struct Flags {
  int64_t steps = 10000, every = 1000, threads = 1;
};

[[noreturn]] void usage_error(const char* message) {
  std::fprintf(stderr, "bench_soak: %s\nusage: bench_soak [--steps N] [--every N] [--threads N]\n", message);
  std::exit(2);
}

Flags parse_flags(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    const bool has_value = i + 1 < argc;
    int64_t* target = std::strcmp(argv[i], "--steps") == 0   ? &flags.steps
                      : std::strcmp(argv[i], "--every") == 0   ? &flags.every
                      : std::strcmp(argv[i], "--threads") == 0 ? &flags.threads
                                                               : nullptr;
    if (target == nullptr) usage_error((std::string("unknown flag ") + argv[i]).c_str());
    if (!has_value) usage_error("a flag needs a value");
    char* end = nullptr;
    *target = std::strtoll(argv[++i], &end, 10);
    if (*end != '\0' || *target <= 0) usage_error("values must be positive integers");
  }
  return flags;
}

double mib(int64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

}  // namespace

int main(int argc, char** argv) {
  const Flags flags = parse_flags(argc, argv);
  omp_set_num_threads(static_cast<int>(flags.threads));
  soak::SoakLoop loop({.total_steps = flags.steps});
  std::map<int64_t, double> rss;  // step -> MiB, at the steps the RESULT line reports
  double loss = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t step = 1; step <= flags.steps; ++step) {
    loss = loop.step();
    const bool reported = step == 100 || step == 1000 || step == 5000 || step == flags.steps;
    const bool printed = step == 1 || step == 10 || step == 100 || step % flags.every == 0 || step == flags.steps;
    if (!reported && !printed) continue;
    const double now = mib(soak::resident_bytes());
    if (reported) rss[step] = now;
    if (printed) std::printf("step %lld rss_mib=%.2f loss=%.4f\n", static_cast<long long>(step), now, loss);
    std::fflush(stdout);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::printf("RESULT steps=%lld threads=%d seconds=%.1f ms_per_step=%.3f", static_cast<long long>(flags.steps),
              omp_get_max_threads(), seconds, 1000.0 * seconds / static_cast<double>(flags.steps));
  for (int64_t at : {100, 1000, 5000})
    if (rss.count(at)) std::printf(" rss_mib_%lld=%.2f", static_cast<long long>(at), rss[at]);
  std::printf(" rss_mib_end=%.2f", rss[flags.steps]);
  if (rss.count(1000)) std::printf(" growth_mib_after_1000=%.2f", rss[flags.steps] - rss[1000]);
  std::printf(" final_loss=%.4f\n", loss);
  return 0;
}
