// The DataLoader's prefetch thread must not oversubscribe the cores: the training thread's
// OpenMP teams already use them all, so the batches it builds run their ops on one thread.
// (A new std::thread starts with OMP_NUM_THREADS, not with the trainer's omp_set_num_threads,
// so without care it would fork a full team of its own next to the trainer's.)
#include <omp.h>

#include <atomic>
#include <memory>

#include "helpers.h"

using namespace kiln;
using namespace kiln::nn::data;

namespace {

// Remembers how many OpenMP threads the thread that built its last example could use.
class ThreadProbe : public Dataset {
 public:
  int64_t size() const override { return 8; }
  Example get(int64_t index) const override {
    max_threads_.store(omp_get_max_threads());
    return {full({2}, static_cast<double>(index)), {}};
  }
  int seen_max_threads() const { return max_threads_.load(); }

 private:
  mutable std::atomic<int> max_threads_{0};
};

// Restores the caller's OpenMP thread count.
class ThreadCount {
 public:
  explicit ThreadCount(int n) : previous_(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~ThreadCount() { omp_set_num_threads(previous_); }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;

 private:
  int previous_;
};

}  // namespace

TEST_CASE("the prefetch thread builds batches with one OpenMP thread") {
  const ThreadCount two(2);
  auto probe = std::make_shared<ThreadProbe>();
  DataLoader loader(probe, {.batch_size = 2, .prefetch = 2});
  int batches = 0;
  for (const Batch& batch : loader) batches += batch.input.size(0) == 2;
  CHECK(batches == 4);
  CHECK(probe->seen_max_threads() == 1);
}

TEST_CASE("without prefetch, batches are built in the caller's thread, with its thread count") {
  const ThreadCount two(2);
  auto probe = std::make_shared<ThreadProbe>();
  DataLoader loader(probe, {.batch_size = 4});
  for (const Batch& batch : loader) CHECK(batch.input.size(0) == 4);
  CHECK(probe->seen_max_threads() == 2);
}
