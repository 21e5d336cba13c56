// One GPT training step (forward, cross-entropy, backward, AdamW), timed. Its PyTorch twin,
// bench/torch_train_step.py, builds the same model layer for layer and takes the same
// flags; bench/compare.sh runs both and prints the ratio.
//
//   bench_train_step [--vocab 256] [--d 256] [--layers 4] [--heads 4] [--seq 256] [--batch 16]
//                    [--threads 2] [--steps 10] [--warmup 3] [--context-pool]
//
// The model is nn::GPT (pre-LN blocks, GELU-tanh MLP x4, learned positions, the head tied
// to the token embedding, dropout 0) on random tokens. After the warm-up steps it times
// `steps` steps and prints one line from their median:
//
//   RESULT step_ms=.. tokens_per_s=.. peak_rss_mb=.. impl=kiln vocab=.. d=.. ...
//
// peak_rss_mb is the process's high-water mark (getrusage), warm-up included; base_rss_mb
// the mark before the model was built.
// With KILN_PROFILE=1 the per-op table of the timed steps goes to stderr at exit.
#include <kiln/kiln.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "gpt_step.h"
#include "process_memory.h"

using namespace kiln;

namespace {

using bench::GptTraining;
using bench::peak_rss_mb;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  const bench::GptStepFlags f = bench::parse_gpt_step_flags(argc, argv, "bench_train_step");
  omp_set_num_threads(static_cast<int>(f.threads));
  manual_seed(0);
  const double base_rss_mb = peak_rss_mb();
  GptTraining training(bench::gpt_config(f), f.batch);
  std::fprintf(stderr, "# kiln train_step: GPT vocab=%ld d=%ld layers=%ld heads=%ld seq=%ld batch=%ld, %.2fM params, "
                       "%ld threads%s\n",
               f.vocab, f.d, f.layers, f.heads, f.seq, f.batch, training.model->num_parameters() * 1e-6, f.threads,
               f.context_pool ? ", ContextPool on every block" : "");

  double first_loss = 0, last_loss = 0;
  for (int64_t i = 0; i < f.warmup; ++i) {
    const double loss = training.step();
    if (i == 0) first_loss = loss;
  }
  profiler::reset();  // the profile covers the timed steps only
  std::vector<double> seconds;
  for (int64_t i = 0; i < f.steps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    last_loss = training.step();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  const double step_s = median(seconds);
  std::fprintf(stderr, "# loss %.4f (first warm-up step) -> %.4f (last step); steps %.0f..%.0f ms\n", first_loss,
               last_loss, *std::min_element(seconds.begin(), seconds.end()) * 1e3,
               *std::max_element(seconds.begin(), seconds.end()) * 1e3);
  std::printf("RESULT step_ms=%.1f tokens_per_s=%.0f peak_rss_mb=%.0f impl=kiln vocab=%ld d=%ld layers=%ld heads=%ld "
              "seq=%ld batch=%ld threads=%ld context_pool=%d steps=%ld base_rss_mb=%.0f\n",
              step_s * 1e3, static_cast<double>(f.batch * f.seq) / step_s, peak_rss_mb(), f.vocab, f.d, f.layers,
              f.heads, f.seq, f.batch, f.threads, f.context_pool ? 1 : 0, f.steps, base_rss_mb);
}
