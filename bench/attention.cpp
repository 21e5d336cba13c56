// scaled_dot_product_attention throughput: forward, and forward + backward (gradients of
// q, k and v), on the configs of bench/attention_torch.py, which times PyTorch's explicit
// softmax(q k^T * scale) v on the same ones.
//
// Prints one line per config:
//   RESULT bench=attention b=.. h=.. l=.. d=.. causal=.. fwd_ms=.. fwd_bwd_ms=.. gflops_fwd=..
// (medians; gflops counts the two GEMMs of the forward, all of the matrix for causal too).
// Threads: OMP_NUM_THREADS, e.g. `OMP_NUM_THREADS=2 ./bench_attention`.
#include <kiln/kiln.h>
#include <kiln/ops/attention.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <vector>

using namespace kiln;

namespace {

struct Config {
  int64_t b, h, l, d;
  bool causal;
};

double seconds_of(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Median time of f over enough repetitions for ~1 s, after a warm-up call.
double median_seconds(const std::function<void()>& f) {
  const double first = seconds_of(f);
  const int reps = std::clamp(static_cast<int>(1.0 / std::max(first, 1e-6)), 5, 101);
  std::vector<double> t(static_cast<size_t>(reps));
  for (double& s : t) s = seconds_of(f);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void run(const Config& cfg) {
  manual_seed(0);
  const Shape shape{cfg.b, cfg.h, cfg.l, cfg.d};
  Tensor q = randn(shape).requires_grad_(), k = randn(shape).requires_grad_(), v = randn(shape).requires_grad_();
  const AttentionOptions options{.causal = cfg.causal};
  const Tensor upstream = randn(shape);

  const double fwd = median_seconds([&] {
    NoGradGuard no_grad;
    scaled_dot_product_attention(q, k, v, options);
  });
  const double fwd_bwd = median_seconds([&] {
    q.zero_grad(), k.zero_grad(), v.zero_grad();
    scaled_dot_product_attention(q, k, v, options).backward(upstream);
  });
  const double macs = 2.0 * static_cast<double>(cfg.b * cfg.h * cfg.l * cfg.l * cfg.d);
  std::printf("RESULT bench=attention b=%ld h=%ld l=%ld d=%ld causal=%d fwd_ms=%.3f fwd_bwd_ms=%.3f gflops_fwd=%.1f\n",
              cfg.b, cfg.h, cfg.l, cfg.d, cfg.causal ? 1 : 0, fwd * 1e3, fwd_bwd * 1e3, 2 * macs / fwd * 1e-9);
}

}  // namespace

int main() {
  const std::vector<Config> configs = {
      {16, 4, 256, 64, false},  // the reference config
      {16, 4, 256, 64, true},   // the same, causal (a GPT block)
      {4, 4, 1024, 64, true},   // a longer context
  };
  for (const Config& c : configs) run(c);
}
