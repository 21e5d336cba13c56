// Thread safety: kiln may be called from several std::threads at once. Two threads
// running inference on ONE shared model (each under its own NoGradGuard) must get
// exactly, bit for bit, what a single thread gets; grad mode is per thread, so one
// thread's NoGradGuard never changes what another records. kiln's kernels use OpenMP
// inside; each std::thread then gets its own OpenMP team, which is allowed.
//
// What this cannot see by itself is a data race that happens to give the right numbers;
// docs/reliability.md says how to run it under ThreadSanitizer as well.
#include <atomic>
#include <barrier>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <kiln/autograd/node.h>

#include "helpers.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

using Forward = std::function<Tensor(const Tensor&)>;

// Runs `body(thread_index)` on `threads` std::threads at once and joins them. An
// exception in a thread is caught there (it would terminate the process) and fails the test.
void run_threads(int threads, const std::function<void(int)>& body) {
  std::mutex mutex;
  std::vector<std::string> errors;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      try {
        body(t);
      } catch (const std::exception& e) {
        std::lock_guard lock(mutex);
        errors.push_back(e.what());
      }
    });
  }
  for (std::thread& th : pool) th.join();
  for (const std::string& e : errors) FAIL_CHECK("a thread threw: ", e);
}

// The outputs of `forward` on each input, computed by this thread alone: the reference.
std::vector<std::vector<double>> single_threaded(const Forward& forward, const std::vector<Tensor>& inputs) {
  NoGradGuard no_grad;
  std::vector<std::vector<double>> out;
  for (const Tensor& x : inputs) out.push_back(forward(x).to_vector<double>());
  return out;
}

// Two threads each run `rounds` forwards on the shared model, taking the inputs in turn
// (thread t starts at input t, so at any moment they tend to work on different inputs),
// and compare every output with the single-threaded reference, exactly.
void check_shared_inference(const Forward& forward, const std::vector<Tensor>& inputs, int rounds,
                            bool no_grad = true) {
  const std::vector<std::vector<double>> expected = single_threaded(forward, inputs);
  std::atomic<int> mismatches{0}, runs{0};
  run_threads(2, [&](int t) {
    const GradModeGuard mode(!no_grad);
    for (int r = 0; r < rounds; ++r) {
      const size_t i = static_cast<size_t>(t + r) % inputs.size();
      if (forward(inputs[i]).to_vector<double>() != expected[i]) ++mismatches;
      ++runs;
    }
  });
  CHECK(runs == 2 * rounds);
  CHECK(mismatches == 0);
}

std::vector<Tensor> token_batches(int64_t vocab, int64_t count) {
  std::vector<Tensor> batches;
  for (int64_t i = 0; i < count; ++i) batches.push_back(randint(0, vocab, {2, 12}));
  return batches;
}

}  // namespace

TEST_CASE("two threads running inference on one shared GPT get a single thread's logits, bit for bit") {
  manual_seed(21);
  // Dropout is configured but off in eval mode: inference must not draw random numbers.
  auto gpt = std::make_shared<nn::GPT>(
      nn::GPTConfig{.vocab_size = 64, .block_size = 16, .n_layer = 2, .n_head = 2, .d_model = 32, .dropout = 0.1});
  gpt->eval();
  check_shared_inference([&](const Tensor& idx) { return gpt->forward(idx); }, token_batches(64, 3), 20);
}

TEST_CASE("the same holds for a GPT with ContextPool layers and for a small ConvNet") {
  manual_seed(22);
  auto pooled = std::make_shared<nn::GPT>(nn::GPTConfig{.vocab_size = 32,
                                                        .block_size = 16,
                                                        .n_layer = 1,
                                                        .n_head = 2,
                                                        .d_model = 16,
                                                        .context_pool = nn::ContextPoolModuleOptions{}});
  pooled->eval();
  check_shared_inference([&](const Tensor& idx) { return pooled->forward(idx); }, token_batches(32, 3), 15);

  auto convnet = std::make_shared<nn::Sequential>();
  convnet->push_back(std::make_shared<nn::Conv2d>(3, 8, 3, Conv2dOptions{.padding = 1}));
  convnet->push_back(std::make_shared<nn::ReLU>());
  convnet->push_back(std::make_shared<nn::MaxPool2d>(2));
  convnet->push_back(std::make_shared<nn::Conv2d>(8, 4, 3));
  convnet->eval();
  std::vector<Tensor> images;
  for (int i = 0; i < 3; ++i) images.push_back(randn({2, 3, 12, 12}));
  check_shared_inference([&](const Tensor& x) { return convnet->forward(x); }, images, 15);
}

TEST_CASE("inference with grad mode on in both threads (no NoGradGuard) is safe and exact too") {
  // Each thread then records its own graph, and both graphs point at the shared
  // parameters' gradient accumulators, which the first use creates.
  manual_seed(23);
  for (int trial = 0; trial < 5; ++trial) {
    auto block = std::make_shared<nn::TransformerBlock>(16, 2, nn::TransformerBlockOptions{.causal = true});
    block->eval();  // fresh parameters: no accumulator exists yet
    std::vector<Tensor> inputs = {randn({2, 6, 16}), randn({2, 6, 16})};
    check_shared_inference([&](const Tensor& x) { return block->forward(x); }, inputs, 4, /*no_grad=*/false);
    // Every parameter has exactly one accumulator, which both threads' graphs reached.
    for (const Tensor& p : block->parameters()) CHECK(p.unsafe_impl()->grad_accumulator != nullptr);
  }
}

TEST_CASE("two threads recording ops on one fresh leaf at once share one gradient accumulator") {
  // A leaf's accumulator is created by the first op that records an edge to it; here both
  // threads are released by a barrier to make that first op at the same moment, many times.
  constexpr int kTrials = 200;
  for (int trial = 0; trial < kTrials; ++trial) {
    const Tensor w = ones({4}).requires_grad_();
    std::barrier start(2);
    std::shared_ptr<autograd::Node> seen[2];
    run_threads(2, [&](int t) {
      start.arrive_and_wait();
      seen[t] = (w * 2.0).grad_fn()->next[0];  // the edge to w: its accumulator
    });
    REQUIRE(seen[0] != nullptr);
    REQUIRE(seen[0] == seen[1]);  // one accumulator, or one thread's gradient would be lost
  }
}

TEST_CASE("grad mode is per thread: one thread's NoGradGuard does not switch another's off") {
  const Tensor w = ones({3}).requires_grad_();
  // The steps interleave in a fixed order, enforced by a barrier:
  //   1. thread 0 enters NoGradGuard;  2. both compute;  3. thread 1 enters NoGradGuard,
  //   thread 0 leaves its own;  4. both compute again.
  std::barrier sync(2);
  std::atomic<bool> recorded[2][2] = {};  // [thread][phase]: did its result record a graph?
  run_threads(2, [&](int t) {
    // Switched by hand rather than with scoped guards: thread 0 leaves grad-off mode in
    // the middle of the thread's body.
    if (t == 0) GradMode::set_enabled(false);
    sync.arrive_and_wait();
    recorded[t][0] = (w * 2.0).requires_grad();
    sync.arrive_and_wait();
    if (t == 0) GradMode::set_enabled(true);
    if (t == 1) GradMode::set_enabled(false);
    sync.arrive_and_wait();
    recorded[t][1] = (w * 2.0).requires_grad();
    GradMode::set_enabled(true);
  });
  CHECK_FALSE(recorded[0][0]);  // thread 0 under its guard
  CHECK(recorded[1][0]);        // thread 1 untouched by it
  CHECK(recorded[0][1]);        // thread 0 after leaving it
  CHECK_FALSE(recorded[1][1]);  // thread 1 under its own guard
  CHECK(GradMode::is_enabled());  // and this thread never changed
}

TEST_CASE("a new thread starts with grad mode on, whatever the thread that started it has") {
  NoGradGuard no_grad;
  bool enabled_there = false;
  std::thread([&] { enabled_there = GradMode::is_enabled(); }).join();
  CHECK(enabled_there);
  CHECK_FALSE(GradMode::is_enabled());
}

TEST_CASE("two threads training their own models at once get a single thread's losses") {
  // Separate models, optimizers and graphs; shared are kiln's global state (the profiler
  // switch, the OpenMP runtime, the GEMM backend) and the input data.
  const Tensor x = randn({16, 8});
  const Tensor y = randint(0, 4, {16});
  auto train = [&](uint64_t seed) {
    auto model = std::make_shared<nn::Sequential>();
    manual_seed(seed);  // the generator is global: seed and build before the threads start
    model->push_back(std::make_shared<nn::Linear>(8, 16));
    model->push_back(std::make_shared<nn::GELU>());
    model->push_back(std::make_shared<nn::LayerNorm>(Shape{16}));
    model->push_back(std::make_shared<nn::Linear>(16, 4));
    return model;
  };
  auto losses_of = [&](nn::Sequential& model) {
    nn::optim::AdamW optimizer(model.parameters(), {.lr = 1e-2});
    std::vector<double> losses;
    for (int step = 0; step < 30; ++step) {
      optimizer.zero_grad();
      Tensor loss = cross_entropy(model.forward(x), y);
      loss.backward();
      optimizer.step();
      losses.push_back(loss.item<double>());
    }
    return losses;
  };
  auto reference_a = train(1), reference_b = train(2);
  const std::vector<double> expected_a = losses_of(*reference_a), expected_b = losses_of(*reference_b);
  auto model_a = train(1), model_b = train(2);
  std::vector<double> got[2];
  run_threads(2, [&](int t) { got[t] = losses_of(t == 0 ? *model_a : *model_b); });
  CHECK(got[0] == expected_a);
  CHECK(got[1] == expected_b);
}
