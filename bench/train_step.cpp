// One GPT training step (forward, cross-entropy, backward, AdamW), timed on the CPU or a
// GPU. Its PyTorch twin, bench/torch_train_step.py, builds the same model layer for layer
// and takes the same flags; bench/compare.sh (CPU) and bench/gpu_compare.sh (GPU) run both
// and print the ratios.
//
//   bench_train_step [--vocab 256] [--d 256] [--layers 4] [--heads 4] [--seq 256] [--batch 16]
//                    [--threads 2] [--steps 10] [--warmup 3] [--context-pool]
//                    [--device cpu|cuda] [--bf16]
//
// The model is nn::GPT (pre-LN blocks, GELU-tanh MLP x4, learned positions, the head tied
// to the token embedding, dropout 0) on random tokens. After the warm-up steps it times
// `steps` steps and prints one line from their median:
//
//   RESULT step_ms=.. tokens_per_s=.. peak_rss_mb=.. impl=kiln vocab=.. d=.. ... device=cpu
//
// peak_rss_mb is the process's high-water mark (getrusage), warm-up included; base_rss_mb
// the mark before the model was built. With --device cuda the line also names the GPU
// (gpu=, spaces as underscores) and kiln's peak GPU memory over the whole run, warm-up
// included (peak_alloc_mb: held by tensors; peak_reserved_mb: obtained from CUDA by the
// caching allocator), the figures torch.cuda.max_memory_allocated / _reserved give.
// A GPU step is timed from a synchronised device to a synchronised device, so the time
// is the kernels', not the launches'. Without a visible GPU, --device cuda prints
// "skipped: <reason>" and exits 0. --bf16 (GPU only) runs the step under AutocastGuard: the
// matrix products and attention on bf16 tensor cores with f32 accumulation, the rest in f32
// (core/autocast.h).
// With KILN_PROFILE=1 the per-op table of the timed steps goes to stderr at exit.
#include <kiln/cuda/memory.h>
#include <kiln/kiln.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "gpt_step.h"
#include "process_memory.h"
#include "result_line.h"

using namespace kiln;

namespace {

using bench::GptTraining;
using bench::peak_rss_mb;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Waits for the GPU's queued work; nothing to wait for on the CPU.
void wait_for(Device device) {
  if (device.is_cuda()) cuda::synchronize(device.index);
}

// The GPU's name and kiln's peak memory on it, as RESULT fields ("" on the CPU).
std::string gpu_fields(Device device) {
  if (!device.is_cuda()) return "";
  const cuda::MemoryStats m = cuda::memory_stats(device.index);
  return detail::str(" gpu=", bench::as_token(cuda::device_name(device.index)), " peak_alloc_mb=",
                     static_cast<int64_t>(bench::to_mib(m.peak_allocated)),
                     " peak_reserved_mb=", static_cast<int64_t>(bench::to_mib(m.peak_reserved)));
}

}  // namespace

int main(int argc, char** argv) {
  const bench::GptStepFlags f = bench::parse_gpt_step_flags(argc, argv, "bench_train_step");
  if (f.device == "cuda" && !cuda::is_available()) {
    std::printf("bench_train_step: skipped: --device cuda: %s\n", cuda::unavailable_reason().c_str());
    return 0;
  }
  if (f.bf16 && f.device != "cuda") {
    std::fprintf(stderr, "bench_train_step: --bf16 needs --device cuda (on the CPU kiln computes in f32 only)\n");
    return 1;
  }
  const Device device = bench::step_device(f);
  const AutocastGuard mixed_precision(f.bf16);  // the matrix products in bf16 (core/autocast.h)
  omp_set_num_threads(static_cast<int>(f.threads));
  manual_seed(0);
  const double base_rss_mb = peak_rss_mb();
  if (device.is_cuda()) cuda::reset_peak_memory_stats(device.index);
  GptTraining training(bench::gpt_config(f), f.batch, device);
  std::fprintf(stderr, "# kiln train_step: GPT vocab=%ld d=%ld layers=%ld heads=%ld seq=%ld batch=%ld, %.2fM params, "
                       "%ld threads%s on %s\n",
               f.vocab, f.d, f.layers, f.heads, f.seq, f.batch, training.model->num_parameters() * 1e-6, f.threads,
               f.context_pool ? ", ContextPool on every block" : "",
               device.is_cuda() ? cuda::device_name(device.index).c_str() : "the CPU");

  Tensor first_loss, last_loss;
  for (int64_t i = 0; i < f.warmup; ++i) {
    const Tensor loss = training.step();
    if (i == 0) first_loss = loss;
  }
  profiler::reset();  // the profile covers the timed steps only
  std::vector<double> seconds;
  for (int64_t i = 0; i < f.steps; ++i) {
    wait_for(device);
    const auto start = std::chrono::steady_clock::now();
    last_loss = training.step();
    wait_for(device);
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  const double step_s = median(seconds);
  std::fprintf(stderr, "# loss %.4f (first warm-up step) -> %.4f (last step); steps %.0f..%.0f ms\n",
               first_loss.item<double>(), last_loss.item<double>(),  // item() waits for a GPU
               *std::min_element(seconds.begin(), seconds.end()) * 1e3,
               *std::max_element(seconds.begin(), seconds.end()) * 1e3);
  std::printf("RESULT step_ms=%.1f tokens_per_s=%.0f peak_rss_mb=%.0f impl=kiln vocab=%ld d=%ld layers=%ld heads=%ld "
              "seq=%ld batch=%ld threads=%ld context_pool=%d steps=%ld base_rss_mb=%.0f device=%s dtype=%s%s\n",
              step_s * 1e3, static_cast<double>(f.batch * f.seq) / step_s, peak_rss_mb(), f.vocab, f.d, f.layers,
              f.heads, f.seq, f.batch, f.threads, f.context_pool ? 1 : 0, f.steps, base_rss_mb, f.device.c_str(),
              f.bf16 ? "bf16" : "fp32", gpu_fields(device).c_str());
}
