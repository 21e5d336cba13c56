// The CPU caching allocator (core/cpu_allocator.h) on a GPT training step: how often the
// step asks the system for memory, with the cache on and off, and what that costs.
//
//   bench_cpu_allocator [--vocab 256] [--d 256] [--layers 4] [--heads 4] [--seq 256]
//                       [--batch 16] [--threads 2] [--steps 5] [--warmup 2] [--context-pool]
//   KILN_CPU_CACHE=0 bench_cpu_allocator ...        the same without the cache
//
// The step is bench_train_step's (bench/gpt_step.h: nn::GPT, cross-entropy, backward, AdamW,
// gradients set to None). After the warm-up, per timed step: allocations served by the
// system (all sizes: blocks under kCpuCacheMinBytes always go there), cache hits and misses (the large blocks
// served from the cache or not), blocks returned to the system; then the allocator's peaks
// over the timed steps, the process's peak RSS, and its RSS before and after
// cpu_empty_cache() at the end.
//   RESULT bench=cpu_allocator cache=1 ... step_ms=.. system_allocs_per_step=.. cache_hits_per_step=..
//          cache_misses_per_step=.. system_frees_per_step=.. peak_allocated_mb=.. peak_reserved_mb=.. peak_rss_mb=..
//          rss_mb=.. rss_after_empty_cache_mb=..
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include <kiln/kiln.h>

#include "gpt_step.h"
#include "process_memory.h"

using namespace kiln;

int main(int argc, char** argv) {
  const bench::GptStepFlags f =
      bench::parse_gpt_step_flags(argc, argv, "bench_cpu_allocator", {.steps = 5, .warmup = 2});
  omp_set_num_threads(static_cast<int>(f.threads));
  manual_seed(0);
  bench::GptTraining training(bench::gpt_config(f), f.batch);

  for (int64_t i = 0; i < f.warmup; ++i) training.step();
  reset_peak_cpu_memory_stats();
  const CpuMemoryStats before = cpu_memory_stats();
  std::vector<double> ms;
  for (int64_t i = 0; i < f.steps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    training.step();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  const CpuMemoryStats after = cpu_memory_stats();
  const double rss_before_empty = bench::to_mib(bench::resident_bytes());
  cpu_empty_cache();  // the model, its gradients and AdamW's moments stay
  const double rss_after_empty = bench::to_mib(bench::resident_bytes());
  std::sort(ms.begin(), ms.end());
  const auto per_step = [&](int64_t delta) { return static_cast<double>(delta) / static_cast<double>(f.steps); };
  std::printf(
      "RESULT bench=cpu_allocator cache=%d threads=%ld d=%ld layers=%ld vocab=%ld step_ms=%.1f "
      "system_allocs_per_step=%.1f cache_hits_per_step=%.1f cache_misses_per_step=%.1f system_frees_per_step=%.1f "
      "peak_allocated_mb=%.0f "
      "peak_reserved_mb=%.0f peak_rss_mb=%.0f rss_mb=%.0f rss_after_empty_cache_mb=%.0f\n",
      cpu_cache_enabled() ? 1 : 0, f.threads, f.d, f.layers, f.vocab, ms[ms.size() / 2],
      per_step(after.system_allocs - before.system_allocs), per_step(after.cache_hits - before.cache_hits),
      per_step(after.cache_misses - before.cache_misses), per_step(after.system_frees - before.system_frees), static_cast<double>(after.peak_allocated) / (1 << 20),
      static_cast<double>(after.peak_reserved) / (1 << 20), bench::peak_rss_mb(), rss_before_empty, rss_after_empty);
}
