// Timing for the micro-benchmarks: the best wall time of several runs after a warm-up,
// the figure least disturbed by the rest of a shared machine.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>

namespace kiln::bench {

// Best wall time, in seconds, of `repeats` runs of f, after one warm-up run.
inline double best_seconds(const std::function<void()>& f, int repeats) {
  f();
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

}  // namespace kiln::bench
