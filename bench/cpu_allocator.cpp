// The CPU caching allocator (core/cpu_allocator.h) on a GPT training step: how often the
// step asks the system for memory, with the cache on and off, and what that costs.
//
//   bench_cpu_allocator [--vocab 256] [--d 256] [--layers 4] [--heads 4] [--seq 256]
//                       [--batch 16] [--threads 2] [--steps 5] [--warmup 2]
//   KILN_CPU_CACHE=0 bench_cpu_allocator ...        the same without the cache
//
// The step is bench_train_step's (nn::GPT, cross-entropy, backward, AdamW, gradients set to
// None). After the warm-up, per timed step: allocations served by the system (all sizes:
// blocks under kCpuCacheMinBytes always go there), cache hits and misses (the large blocks
// served from the cache or not), blocks returned to the system; then the allocator's peaks
// over the timed steps, the process's peak RSS, and its RSS before and after
// cpu_empty_cache() at the end.
//   RESULT bench=cpu_allocator cache=1 ... step_ms=.. system_allocs_per_step=.. cache_hits_per_step=..
//          cache_misses_per_step=.. system_frees_per_step=.. peak_allocated_mb=.. peak_reserved_mb=.. peak_rss_mb=..
//          rss_mb=.. rss_after_empty_cache_mb=..
#include <omp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include <kiln/kiln.h>

using namespace kiln;

namespace {

struct Flags {
  int64_t vocab = 256, d = 256, layers = 4, heads = 4, seq = 256, batch = 16;
  int64_t threads = 2, steps = 5, warmup = 2;
};

Flags parse_flags(int argc, char** argv) {
  Flags f;
  const std::map<std::string, int64_t*> values = {
      {"--vocab", &f.vocab}, {"--d", &f.d},         {"--layers", &f.layers},   {"--heads", &f.heads},
      {"--seq", &f.seq},     {"--batch", &f.batch}, {"--threads", &f.threads}, {"--steps", &f.steps},
      {"--warmup", &f.warmup}};
  for (int i = 1; i + 1 < argc; i += 2) {
    const auto value = values.find(argv[i]);
    const long long v = std::atoll(argv[i + 1]);
    if (value == values.end() || v <= 0) {
      std::fprintf(stderr, "bench_cpu_allocator: bad flag '%s %s'\n", argv[i], argv[i + 1]);
      std::exit(2);
    }
    *value->second = v;
  }
  if (argc % 2 == 0) {
    std::fprintf(stderr, "bench_cpu_allocator: flag '%s' needs a value\n", argv[argc - 1]);
    std::exit(2);
  }
  return f;
}

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

// The resident set now (the second field of /proc/self/statm, in pages).
double rss_mb() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1 << 20);
}

}  // namespace

int main(int argc, char** argv) {
  const Flags f = parse_flags(argc, argv);
  omp_set_num_threads(static_cast<int>(f.threads));
  manual_seed(0);
  const nn::GPTConfig config{.vocab_size = f.vocab, .block_size = f.seq, .n_layer = f.layers, .n_head = f.heads,
                             .d_model = f.d, .dropout = 0.0};
  auto model = std::make_shared<nn::GPT>(config);
  nn::optim::AdamW optimizer(model->parameters(), {.lr = 1e-4});
  const Tensor idx = randint(0, f.vocab, {f.batch, f.seq}), targets = randint(0, f.vocab, {f.batch, f.seq});
  auto step = [&] {
    optimizer.zero_grad();
    const Tensor logits = model->forward(idx);
    cross_entropy(logits.view({-1, f.vocab}), targets.view({-1})).backward();
    optimizer.step();
  };

  for (int64_t i = 0; i < f.warmup; ++i) step();
  reset_peak_cpu_memory_stats();
  const CpuMemoryStats before = cpu_memory_stats();
  std::vector<double> ms;
  for (int64_t i = 0; i < f.steps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    step();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  const CpuMemoryStats after = cpu_memory_stats();
  const double rss_before_empty = rss_mb();
  cpu_empty_cache();  // the model, its gradients and AdamW's moments stay
  const double rss_after_empty = rss_mb();
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
      static_cast<double>(after.peak_reserved) / (1 << 20), peak_rss_mb(), rss_before_empty, rss_after_empty);
}
