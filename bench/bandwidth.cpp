// Memory-bound ops against the machine's memory bandwidth, measured in the same binary.
//
// For each shape, a STREAM-like copy (a = b) and triad (a = b + s * c) with OpenMP over
// arrays of the shape's size give the bandwidth a plain streaming loop reaches on that
// footprint (the best of the two is the "peak"; measuring at the same size keeps cache
// and TLB effects alike). Then kiln's ops run on f32 tensors of that shape and each
// reports the GB/s it reaches, counting every tensor it reads and writes once, as STREAM
// does:
//   add, mul: 3 tensors   exp, gelu, softmax, layer_norm: 2   sum: 1
// variant=op runs the public op, which allocates its output each call as in real use;
// variant=kernel runs the bare CPU kernel on preallocated buffers. Times are the best of
// several runs after a warm-up. Prints one line per case:
//   RESULT bench=bandwidth op=softmax variant=op shape=4096x1024 gbps=.. fraction_of_peak=..
// Threads: OMP_NUM_THREADS. Shapes: `./bench_bandwidth 4096x1024 16384x1024` (default:
// both; an f32 tensor of 4096x1024 is 16 MiB, so part of the traffic may hit a large L3).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <kiln/kiln.h>
#include <kiln/ops/cpu/layer_norm.h>
#include <kiln/ops/cpu/loops.h>
#include <kiln/ops/cpu/softmax.h>

#include "timing.h"

using namespace kiln;

namespace {

constexpr int kRepeats = 30;

double best_seconds(const std::function<void()>& f, int repeats = kRepeats) {
  return kiln::bench::best_seconds(f, repeats);
}

struct Stream {
  double copy_gbps, triad_gbps;
  double peak() const { return std::max(copy_gbps, triad_gbps); }
};

// STREAM copy and triad over three arrays of `n` floats (first touched in parallel, as
// the loops will use them, so no page faults are timed).
Stream measure_stream(int64_t n) {
  float* a = static_cast<float*>(std::aligned_alloc(64, n * sizeof(float)));
  float* b = static_cast<float*>(std::aligned_alloc(64, n * sizeof(float)));
  float* c = static_cast<float*>(std::aligned_alloc(64, n * sizeof(float)));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) a[i] = 0.0f, b[i] = 1.0f, c[i] = 2.0f;
  const double bytes = static_cast<double>(n) * sizeof(float);
  const double copy = best_seconds([&] {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) a[i] = b[i];
  });
  const double triad = best_seconds([&] {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) a[i] = b[i] + 3.0f * c[i];
  });
  if (a[1] != 7.0f) std::printf("# stream check failed: a[1] = %g\n", a[1]);  // keeps the loops observable
  std::free(a), std::free(b), std::free(c);
  return {2 * bytes / copy / 1e9, 3 * bytes / triad / 1e9};
}

// One op, run through kiln's public API (`op`: argument checks, output allocation,
// dispatch) and, where given, as its bare CPU kernel on preallocated buffers (`kernel`).
// The difference between the two is what the layers above the kernel cost; for large
// tensors it is dominated by the allocator handing out fresh pages (page faults).
struct OpCase {
  const char* name;
  int tensors_moved;  // tensors of the input's size read + written
  std::function<void()> op;
  std::function<void()> kernel;
};

void report(const char* name, const char* variant, const std::string& shape_name, double gbps, double peak_gbps) {
  std::printf("RESULT bench=bandwidth op=%s variant=%s shape=%s gbps=%.2f fraction_of_peak=%.2f\n", name, variant,
              shape_name.c_str(), gbps, gbps / peak_gbps);
}

void run_shape(const Shape& shape, const std::string& shape_name) {
  const int64_t cols = shape.back(), rows = numel_of(shape) / cols;
  const Stream stream = measure_stream(numel_of(shape));
  std::printf("RESULT bench=bandwidth op=stream_copy shape=%s threads=%d gbps=%.2f\n", shape_name.c_str(),
              omp_get_max_threads(), stream.copy_gbps);
  std::printf("RESULT bench=bandwidth op=stream_triad shape=%s threads=%d gbps=%.2f\n", shape_name.c_str(),
              omp_get_max_threads(), stream.triad_gbps);
  const double peak_gbps = stream.peak();

  const Tensor a = randn(shape), b = randn(shape);
  const Tensor weight = randn({cols}), bias = randn({cols});
  // Preallocated outputs for the bare kernels, touched once so no page faults remain.
  const Tensor out = zeros(shape), row_mean = zeros({rows}), row_rstd = zeros({rows});
  const std::vector<OpCase> cases = {
      {"add", 3, [&] { a + b; },
       [&] {
         const Shape strides = contiguous_strides(shape);
         cpu::binary_loop(out.data<float>(), strides.data(), a.data<float>(), strides.data(), b.data<float>(),
                          strides.data(), shape, [](float x, float y) { return x + y; });
       }},
      {"mul", 3, [&] { a * b; }, nullptr},
      {"exp", 2, [&] { exp(a); }, nullptr},
      {"gelu", 2, [&] { gelu(a); }, nullptr},
      {"sum", 1, [&] { sum(a); }, nullptr},
      {"softmax", 2, [&] { softmax(a, -1); },
       [&] { cpu::softmax_forward(a.data<float>(), out.data<float>(), rows, cols, int64_t{1}); }},
      {"layer_norm", 2, [&] { layer_norm(a, {cols}, weight, bias); },
       [&] {
         cpu::layer_norm_forward(a.data<float>(), weight.data<float>(), bias.data<float>(), out.data<float>(),
                                 row_mean.data<float>(), row_rstd.data<float>(), rows, cols, 1e-5);
       }},
  };
  const double bytes = static_cast<double>(a.numel()) * sizeof(float);
  for (const OpCase& c : cases) {
    report(c.name, "op", shape_name, c.tensors_moved * bytes / best_seconds(c.op) / 1e9, peak_gbps);
    if (c.kernel)
      report(c.name, "kernel", shape_name, c.tensors_moved * bytes / best_seconds(c.kernel) / 1e9, peak_gbps);
  }
}

// "4096x1024" -> {4096, 1024}
Shape parse_shape(const std::string& text) {
  Shape shape;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t x = text.find('x', start);
    shape.push_back(std::stoll(text.substr(start, x == std::string::npos ? std::string::npos : x - start)));
    if (x == std::string::npos) break;
    start = x + 1;
  }
  return shape;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> shapes;
  for (int i = 1; i < argc; ++i) shapes.push_back(argv[i]);
  if (shapes.empty()) shapes = {"4096x1024", "16384x1024"};

  NoGradGuard no_grad;  // forward only: no graph
  for (const std::string& s : shapes) run_shape(parse_shape(s), s);
  return 0;
}
