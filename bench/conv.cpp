// conv2d throughput: forward, and forward + backward (gradients of input, weight and
// bias), on the configs of bench/conv_torch.py, which times PyTorch on the same ones.
//
// Prints one line per config:
//   RESULT bench=conv2d n=.. c=.. hw=.. o=.. k=.. stride=.. pad=.. fwd_ms=.. fwd_bwd_ms=..
//          fwd_min_ms=.. fwd_bwd_min_ms=.. gflops_fwd=..
// (medians, then minimums; gflops from the minimum; the backward does twice the forward's
// multiply-adds). Threads: OMP_NUM_THREADS,
// e.g. `OMP_NUM_THREADS=2 ./bench_conv`.
#include <kiln/kiln.h>
#include <kiln/ops/conv.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <vector>

using namespace kiln;

namespace {

struct Config {
  int64_t n, c, hw, o, k, stride, pad;
};

double seconds_of(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Timing {
  double median, min;  // seconds; on a busy machine the minimum is the steadier figure
};

// Times f over enough repetitions for ~2 s (at least 11), after a warm-up call.
Timing time_of(const std::function<void()>& f) {
  const double first = seconds_of(f);
  const int reps = std::clamp(static_cast<int>(2.0 / std::max(first, 1e-6)), 11, 201);
  std::vector<double> t(static_cast<size_t>(reps));
  for (double& s : t) s = seconds_of(f);
  std::sort(t.begin(), t.end());
  return {t[t.size() / 2], t.front()};
}

void run(const Config& cfg) {
  manual_seed(0);
  Tensor x = randn({cfg.n, cfg.c, cfg.hw, cfg.hw}).requires_grad_();
  Tensor w = (randn({cfg.o, cfg.c, cfg.k, cfg.k}) * 0.05).requires_grad_();
  Tensor b = zeros({cfg.o}).requires_grad_();
  const Conv2dOptions options{.stride = cfg.stride, .padding = cfg.pad};
  const Tensor upstream = randn_like(conv2d(x.detach(), w.detach(), b.detach(), options));

  const Timing fwd = time_of([&] {
    NoGradGuard no_grad;
    conv2d(x, w, b, options);
  });
  const Timing fwd_bwd = time_of([&] {
    x.zero_grad(), w.zero_grad(), b.zero_grad();
    conv2d(x, w, b, options).backward(upstream);
  });
  const double macs = static_cast<double>(upstream.numel()) * static_cast<double>(cfg.c * cfg.k * cfg.k);
  std::printf(
      "RESULT bench=conv2d n=%ld c=%ld hw=%ld o=%ld k=%ld stride=%ld pad=%ld fwd_ms=%.3f fwd_bwd_ms=%.3f "
      "fwd_min_ms=%.3f fwd_bwd_min_ms=%.3f gflops_fwd=%.1f\n",
      cfg.n, cfg.c, cfg.hw, cfg.o, cfg.k, cfg.stride, cfg.pad, fwd.median * 1e3, fwd_bwd.median * 1e3, fwd.min * 1e3,
      fwd_bwd.min * 1e3, 2 * macs / fwd.min * 1e-9);
}

}  // namespace

int main() {
  const std::vector<Config> configs = {
      {8, 64, 32, 64, 3, 1, 1},   // a ResNet-style 3x3 layer
      {8, 64, 32, 128, 3, 2, 1},  // a downsampling 3x3
      {8, 64, 32, 256, 1, 1, 0},  // a pointwise (1x1) layer: no im2col
      {8, 3, 32, 192, 4, 4, 0},   // a ViT patch embedding (4x4 patches)
  };
  for (const Config& c : configs) run(c);
}
