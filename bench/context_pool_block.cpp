// What ContextPool adds to a transformer layer: one TransformerBlock's forward + backward
// (gradients of the input and every parameter) at d = 256, n = 256, batch 16, 4 heads,
// causal, without and with context_pool (after_attention, default options: W = 12), and
// the ContextPool1d module alone on the same activations.
//
// The two blocks are timed in alternation (A B A B ...), so a change in machine load
// while it runs hits both alike; each time is the median of the iterations after one
// warm-up of each. Prints the load average, then
//   RESULT bench=context_pool_block b=16 n=256 d=256 heads=4 iters=.. plain_ms=.. pooled_ms=..
//          overhead_pct=.. pool_module_ms=..
// Usage: bench_context_pool_block [iterations = 15]; threads: OMP_NUM_THREADS.
#include <kiln/kiln.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

using namespace kiln;

namespace {

constexpr int64_t kBatch = 16, kLen = 256, kDModel = 256, kHeads = 4;

double seconds_of(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> t) {
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return one.empty() ? "unknown" : one + " " + five + " " + fifteen;
}

// One training step's worth of work for `block`, minus the optimizer: forward, backward.
void forward_backward(nn::TransformerBlock& block, Tensor& x, const Tensor& upstream) {
  block.zero_grad();
  x.zero_grad();
  block.forward(x).backward(upstream);
}

}  // namespace

int main(int argc, char** argv) {
  const int iterations = argc > 1 ? std::max(1, std::atoi(argv[1])) : 15;
  std::printf("load average before: %s\n", load_average().c_str());

  manual_seed(0);
  nn::TransformerBlock plain(kDModel, kHeads, {.causal = true});
  manual_seed(0);
  nn::TransformerBlock pooled(kDModel, kHeads, {.causal = true, .context_pool = nn::ContextPoolModuleOptions{}});
  Tensor x = randn({kBatch, kLen, kDModel}).requires_grad_();
  const Tensor upstream = randn({kBatch, kLen, kDModel});

  forward_backward(plain, x, upstream);  // warm-up: first-touch allocations, thread pool
  forward_backward(pooled, x, upstream);
  std::vector<double> plain_s, pooled_s;
  for (int i = 0; i < iterations; ++i) {
    plain_s.push_back(seconds_of([&] { forward_backward(plain, x, upstream); }));
    pooled_s.push_back(seconds_of([&] { forward_backward(pooled, x, upstream); }));
  }

  // The module alone, on the block's input (the same shape as what it sees in the block).
  nn::ContextPool1d& pool = *pooled.context_pool;
  std::vector<double> pool_s;
  for (int i = 0; i <= iterations; ++i) {
    const double t = seconds_of([&] {
      pool.zero_grad();
      x.zero_grad();
      pool.forward(x).backward(upstream);
    });
    if (i > 0) pool_s.push_back(t);  // the first one is the warm-up
  }

  const double plain_ms = median(plain_s) * 1e3, pooled_ms = median(pooled_s) * 1e3;
  std::printf("load average after: %s\n", load_average().c_str());
  std::printf(
      "RESULT bench=context_pool_block b=%ld n=%ld d=%ld heads=%ld iters=%d plain_ms=%.2f pooled_ms=%.2f "
      "overhead_pct=%.1f pool_module_ms=%.2f\n",
      kBatch, kLen, kDModel, kHeads, iterations, plain_ms, pooled_ms, 100.0 * (pooled_ms / plain_ms - 1.0),
      median(pool_s) * 1e3);
}
