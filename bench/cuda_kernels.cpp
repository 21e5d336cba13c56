// The GPU kernels that decide a transformer's training speed, each timed alone through
// kiln's public ops: the memory-bound ones (softmax, layer_norm, the fused AdamW update,
// ContextPool in 1-D and 2-D) in GB/s next to the device's peak memory bandwidth, and
// attention forward + backward in TFLOP/s, f32 and under bf16 autocast (tensor cores).
//
//   bench_cuda_kernels [--repeats 20]
//
// Each measurement is the mean GPU time of `repeats` back-to-back runs after a warm-up,
// between two CUDA events on kiln's stream (cuda/event.h): kernel time, not launch or
// host time. One line per measurement:
//
//   RESULT bench=cuda_kernels kernel=softmax pass=forward shape=8192x1024 dtype=f32 ms=.. gb_per_s=..
//          peak_gb_per_s=.. pct_of_peak=.. gpu=..
//   RESULT bench=cuda_kernels kernel=attention pass=forward+backward shape=B8_H12_T1024_hd64 causal=1
//          dtype=f32 ms=.. tflop_per_s=.. gpu=..   (dtype=bf16: the same under AutocastGuard)
//
// Bytes are the least a kernel must move: every input read once, every output written
// once (intermediates a fused kernel keeps on chip do not count), so gb_per_s is an
// effective figure and pct_of_peak how close the kernel gets to the memory system's limit.
// "forward+backward" times the forward with autograd on and the backward from a given
// upstream gradient, and counts both passes' bytes. Attention FLOPs follow FlashAttention's
// convention: forward 4 B H T^2 hd (the two matrix products; half of it when causal),
// backward 2.5x the forward. Without a visible GPU the program prints "skipped: <reason>"
// and exits 0; a benchmark whose op fails prints why on stderr and the exit code is 1.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

#include <kiln/cuda/event.h>
#include <kiln/kiln.h>

#include "result_line.h"

using namespace kiln;

namespace {

const Device kGpu = Device::cuda(0);
constexpr double kF32 = 4;  // bytes

struct Context {
  int repeats = 20;
  std::string gpu;       // the device's name, spaces as underscores
  double peak_gb_per_s = 0;  // cuda::device_memory_bandwidth, in GB/s
};

// Mean GPU milliseconds of one run of `f`, over ctx.repeats runs queued back to back after
// one warm-up run (which also fills the caching allocator).
double gpu_ms(const Context& ctx, const std::function<void()>& f) {
  f();
  cuda::Event start(kGpu.index), stop(kGpu.index);
  start.record();
  for (int r = 0; r < ctx.repeats; ++r) f();
  stop.record();
  return start.elapsed_ms(stop) / ctx.repeats;
}

void report_bandwidth(const Context& ctx, const char* kernel, const char* pass, const std::string& shape,
                      double bytes, double ms) {
  const double gb_per_s = bytes / (ms * 1e-3) / 1e9;
  std::printf("RESULT bench=cuda_kernels kernel=%s pass=%s shape=%s dtype=f32 ms=%.4f gb_per_s=%.0f "
              "peak_gb_per_s=%.0f pct_of_peak=%.1f gpu=%s\n",
              kernel, pass, shape.c_str(), ms, gb_per_s, ctx.peak_gb_per_s, 100 * gb_per_s / ctx.peak_gb_per_s,
              ctx.gpu.c_str());
  std::fflush(stdout);
}

// A random f32 tensor on the GPU (drawn on the CPU, so every run sees the same numbers).
Tensor gpu_randn(const Shape& shape) { return randn(shape).to(kGpu); }

// A leaf on the GPU that requires grad, for the forward+backward timings.
Tensor gpu_leaf(const Tensor& values) { return values.to(kGpu).detach().requires_grad_(); }

// ---- memory-bound kernels -------------------------------------------------------------------------

// softmax over the last dim. Forward: read x, write y. Backward: read y and dy, write dx.
void bench_softmax(const Context& ctx, int64_t rows, int64_t cols) {
  const std::string shape = detail::str(rows, "x", cols);
  const double n = static_cast<double>(rows * cols);
  const Tensor x = gpu_randn({rows, cols});
  {
    NoGradGuard no_grad;
    report_bandwidth(ctx, "softmax", "forward", shape, 2 * n * kF32, gpu_ms(ctx, [&] { (void)softmax(x, -1); }));
  }
  Tensor leaf = gpu_leaf(x);
  const Tensor dy = gpu_randn({rows, cols});
  const double ms = gpu_ms(ctx, [&] {
    leaf.zero_grad();
    softmax(leaf, -1).backward(dy);
  });
  report_bandwidth(ctx, "softmax", "forward+backward", shape, 5 * n * kF32, ms);
}

// layer_norm over the last dim with a gain and a bias. Forward: read x, write y. Backward:
// read x and dy, write dx (the per-row statistics and the (d) parameter gradients are
// small next to them and not counted).
void bench_layer_norm(const Context& ctx, int64_t rows, int64_t d) {
  const std::string shape = detail::str(rows, "x", d);
  const double n = static_cast<double>(rows * d);
  const Tensor x = gpu_randn({rows, d}), weight = gpu_randn({d}), bias = gpu_randn({d});
  {
    NoGradGuard no_grad;
    report_bandwidth(ctx, "layer_norm", "forward", shape, 2 * n * kF32,
                     gpu_ms(ctx, [&] { (void)layer_norm(x, {d}, weight, bias); }));
  }
  Tensor leaf = gpu_leaf(x), w = gpu_leaf(weight), b = gpu_leaf(bias);
  const Tensor dy = gpu_randn({rows, d});
  const double ms = gpu_ms(ctx, [&] {
    leaf.zero_grad();
    w.zero_grad();
    b.zero_grad();
    layer_norm(leaf, {d}, w, b).backward(dy);
  });
  report_bandwidth(ctx, "layer_norm", "forward+backward", shape, 5 * n * kF32, ms);
}

// One AdamW step of one parameter of n elements: read the parameter, its gradient and
// both moments, write the parameter and both moments: 7 n floats.
void bench_adamw(const Context& ctx, int64_t n) {
  Tensor param = gpu_leaf(randn({n}));
  param.set_grad(gpu_randn({n}));
  nn::optim::AdamW optimizer({param}, {.lr = 1e-4, .weight_decay = 0.01});
  report_bandwidth(ctx, "adamw", "step", std::to_string(n), 7 * static_cast<double>(n) * kF32,
                   gpu_ms(ctx, [&] { optimizer.step(); }));
}

// m in (0, 1) and s in (s_lo, s_hi) as the ContextPool module produces them.
Tensor pool_weights(const Shape& shape) { return sigmoid(randn(shape)).to(kGpu); }
Tensor pool_sizes(const Shape& shape, double lo, double hi) { return uniform(lo, hi, shape).to(kGpu); }

// The pooling op over `cells` tokens of width d per batch row. Forward: read x, m and s,
// write y. Backward: read x, m, s and dy, write dx, dm and ds. The window's reuse of x
// stays in cache and is not counted.
void bench_context_pool_pass(const Context& ctx, const char* kernel, const std::string& shape, double cells,
                             double d, const std::function<Tensor(const Tensor&, const Tensor&, const Tensor&)>& pool,
                             const Tensor& x, const Tensor& m, const Tensor& s) {
  {
    NoGradGuard no_grad;
    report_bandwidth(ctx, kernel, "forward", shape, (2 * cells * d + 2 * cells) * kF32,
                     gpu_ms(ctx, [&] { (void)pool(x, m, s); }));
  }
  Tensor lx = gpu_leaf(x), lm = gpu_leaf(m), ls = gpu_leaf(s);
  const Tensor dy = gpu_randn(pool(x, m, s).shape());
  const double ms = gpu_ms(ctx, [&] {
    lx.zero_grad();
    lm.zero_grad();
    ls.zero_grad();
    pool(lx, lm, ls).backward(dy);
  });
  report_bandwidth(ctx, kernel, "forward+backward", shape, (5 * cells * d + 6 * cells) * kF32, ms);
}

// Causal 1-D pooling as in a ContextPool GPT (sizes up to 4 tokens: window 12), and 2-D
// pooling on a ViT-like grid (sizes up to 3 cells: window 9).
void bench_context_pool(const Context& ctx) {
  const int64_t B = 64, n = 1024, d = 256;
  bench_context_pool_pass(
      ctx, "context_pool", detail::str("B", B, "_n", n, "_d", d, "_causal_W12"), static_cast<double>(B * n),
      static_cast<double>(d),
      [](const Tensor& x, const Tensor& m, const Tensor& s) {
        return context_pool(x, m, s, {.causal = true, .window = 12});
      },
      gpu_randn({B, n, d}), pool_weights({B, n}), pool_sizes({B, n}, 0.25, 4.0));
  const int64_t H = 32, W = 32;
  bench_context_pool_pass(
      ctx, "context_pool2d", detail::str("B", B, "_", H, "x", W, "_d", d, "_W9"), static_cast<double>(B * H * W),
      static_cast<double>(d),
      [](const Tensor& x, const Tensor& m, const Tensor& s) { return context_pool2d(x, m, s, {.window = 9}); },
      gpu_randn({B, H, W, d}), pool_weights({B, H, W}), pool_sizes({B, H, W}, 0.25, 3.0));
}

// ---- attention -------------------------------------------------------------------------------------

// bf16: under AutocastGuard, i.e. the tensor-core kernels of cuda/attention_bf16.cu.
void bench_attention(const Context& ctx, int64_t B, int64_t H, int64_t T, int64_t hd, bool causal, bool bf16) {
  AutocastGuard autocast(bf16);
  const std::string shape = detail::str("B", B, "_H", H, "_T", T, "_hd", hd);
  const double forward_flops =
      4.0 * static_cast<double>(B * H) * static_cast<double>(T) * static_cast<double>(T) * static_cast<double>(hd) *
      (causal ? 0.5 : 1.0);
  auto report = [&](const char* pass, double flops, double ms) {
    std::printf("RESULT bench=cuda_kernels kernel=attention pass=%s shape=%s causal=%d dtype=%s ms=%.4f "
                "tflop_per_s=%.2f gpu=%s\n",
                pass, shape.c_str(), causal ? 1 : 0, bf16 ? "bf16" : "f32", ms, flops / (ms * 1e-3) / 1e12,
                ctx.gpu.c_str());
    std::fflush(stdout);
  };
  const Tensor q = gpu_randn({B, H, T, hd}), k = gpu_randn({B, H, T, hd}), v = gpu_randn({B, H, T, hd});
  {
    NoGradGuard no_grad;
    report("forward", forward_flops,
           gpu_ms(ctx, [&] { (void)scaled_dot_product_attention(q, k, v, {.causal = causal}); }));
  }
  Tensor lq = gpu_leaf(q), lk = gpu_leaf(k), lv = gpu_leaf(v);
  const Tensor dy = gpu_randn({B, H, T, hd});
  const double ms = gpu_ms(ctx, [&] {
    lq.zero_grad();
    lk.zero_grad();
    lv.zero_grad();
    scaled_dot_product_attention(lq, lk, lv, {.causal = causal}).backward(dy);
  });
  report("forward+backward", 3.5 * forward_flops, ms);
}

// Runs one benchmark; a failure (an op without its CUDA kernel yet, out of memory) is
// reported and the others still run.
bool run(const char* name, const std::function<void()>& benchmark) {
  try {
    benchmark();
    return true;
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_cuda_kernels: %s failed: %s\n", name, e.what());
    return false;
  }
}

[[noreturn]] void usage(const std::string& message) {
  std::fprintf(stderr, "bench_cuda_kernels: %s\nusage: bench_cuda_kernels [--repeats N]\n", message.c_str());
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  Context ctx;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--repeats") != 0) usage(detail::str("unknown flag '", argv[i], "'"));
    if (i + 1 >= argc) usage("--repeats needs a value");
    ctx.repeats = std::atoi(argv[++i]);
    if (ctx.repeats <= 0) usage("--repeats needs a positive integer");
  }
  if (!cuda::is_available()) {
    std::printf("bench_cuda_kernels: skipped: %s\n", cuda::unavailable_reason().c_str());
    return 0;
  }
  ctx.gpu = bench::as_token(cuda::device_name(kGpu.index));
  ctx.peak_gb_per_s = cuda::device_memory_bandwidth(kGpu.index) / 1e9;
  std::fprintf(stderr, "# bench_cuda_kernels on %s, peak memory bandwidth %.0f GB/s, %d repeats\n", ctx.gpu.c_str(),
               ctx.peak_gb_per_s, ctx.repeats);
  manual_seed(0);

  // Sizes: the model's row widths, with enough rows that every tensor is far larger than
  // the GPU's L2 cache (50 MB on an H100), so the figures are the memory system's.
  bool ok = true;
  // Attention-score rows at GPT-2's T = 1024, vocabulary-sized rows, many short rows.
  ok &= run("softmax", [&] { bench_softmax(ctx, 32768, 1024); });
  ok &= run("softmax", [&] { bench_softmax(ctx, 1024, 50257); });
  ok &= run("softmax", [&] { bench_softmax(ctx, 131072, 256); });
  // GPT-2's residual width and the char-LM's.
  ok &= run("layer_norm", [&] { bench_layer_norm(ctx, 32768, 768); });
  ok &= run("layer_norm", [&] { bench_layer_norm(ctx, 65536, 256); });
  // A quarter of GPT-2-124M's parameters, as one tensor: the fused update is one pass.
  ok &= run("adamw", [&] { bench_adamw(ctx, 32 * 1024 * 1024); });
  ok &= run("context_pool", [&] { bench_context_pool(ctx); });
  // GPT-2-124M (B 8, T 1024) and the char-LM (B 16, T 256, d 256 = 4 heads of 64).
  for (const bool bf16 : {false, true}) {
    ok &= run("attention", [&] { bench_attention(ctx, 8, 12, 1024, 64, /*causal=*/true, bf16); });
    ok &= run("attention", [&] { bench_attention(ctx, 16, 4, 256, 64, /*causal=*/true, bf16); });
  }
  return ok ? 0 : 1;
}
