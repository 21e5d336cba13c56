// The DataLoader hands out batches from a "run": the batches left in the current epoch,
// either built on demand (synchronous) or by a BatchPrefetcher thread that keeps a
// bounded queue of ready batches. The consumer's position only moves when a batch is
// handed out, so a run can be dropped at any time (break, set_epoch, load_state,
// destruction) and restarted from the position without skipping or repeating a batch.
#include "kiln/nn/data/dataloader.h"

#include <omp.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <numeric>
#include <thread>

#include "kiln/autograd/grad_mode.h"
#include "kiln/nn/data/philox_stream.h"

namespace kiln::nn::data {

std::vector<int64_t> shuffled_indices(int64_t n, uint64_t seed, int64_t epoch) {
  KILN_CHECK(n >= 0, "shuffled_indices: n must be >= 0, got ", n);
  KILN_CHECK(epoch >= 0, "shuffled_indices: epoch must be >= 0, got ", epoch);
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  detail::PhiloxStream random(seed, static_cast<uint64_t>(epoch));
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(random.below(static_cast<uint64_t>(i) + 1));
    std::swap(order[i], order[j]);
  }
  return order;
}

namespace {

// Everything needed to build any batch of one epoch. Immutable once made, so the
// consumer and the prefetch thread can share it without locks.
class EpochPlan {
 public:
  EpochPlan(std::shared_ptr<const Dataset> dataset, const DataLoaderOptions& options, int64_t epoch)
      : dataset_(std::move(dataset)), size_(dataset_->size()), batch_size_(options.batch_size) {
    if (options.shuffle) order_ = shuffled_indices(size_, options.seed, epoch);
  }

  // Batch b of the epoch: positions [b * batch_size, ...) of the order, the last batch cut short.
  Batch build(int64_t b) const {
    const int64_t begin = b * batch_size_, end = std::min(begin + batch_size_, size_);
    std::vector<int64_t> indices(static_cast<size_t>(end - begin));
    for (int64_t i = begin; i < end; ++i) indices[i - begin] = order_.empty() ? i : order_[i];
    NoGradGuard no_grad;  // grad mode is per thread: say it here, whichever thread this is
    return dataset_->get_batch(indices);
  }

 private:
  std::shared_ptr<const Dataset> dataset_;
  int64_t size_, batch_size_;
  std::vector<int64_t> order_;  // empty: the identity order
};

// One background thread building batches [first, last) of a plan, in order, into a queue
// of at most `capacity` ready batches (a batch being built counts against it). An
// exception from building batch b is kept and rethrown by the pop() that asks for b.
class BatchPrefetcher {
 public:
  BatchPrefetcher(std::shared_ptr<const EpochPlan> plan, int64_t first, int64_t last, int64_t capacity)
      : plan_(std::move(plan)), capacity_(static_cast<size_t>(capacity)) {
    thread_ = std::thread([this, first, last] { produce(first, last); });
  }

  // Stops the thread and waits for it. A batch being built is finished first (a dataset
  // call cannot be interrupted), then the thread sees stop_ and leaves.
  ~BatchPrefetcher() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }

  BatchPrefetcher(const BatchPrefetcher&) = delete;
  BatchPrefetcher& operator=(const BatchPrefetcher&) = delete;

  // The next batch in order; blocks until it is ready.
  Batch pop() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return !ready_.empty() || error_; });
    if (ready_.empty()) std::rethrow_exception(error_);  // every batch before the failed one was taken
    Batch batch = std::move(ready_.front());
    ready_.pop_front();
    lock.unlock();
    changed_.notify_all();  // there is room for another batch
    return batch;
  }

 private:
  void produce(int64_t first, int64_t last) {
    // This thread overlaps with the training thread, whose OpenMP teams already use every
    // core: a team of our own (a new thread starts with OMP_NUM_THREADS, not with the
    // trainer's omp_set_num_threads) would oversubscribe them, and every parallel region
    // of the step would then wait at its barrier for a descheduled thread.
    omp_set_num_threads(1);
    try {
      for (int64_t b = first; b < last; ++b) {
        if (!wait_for_room()) return;
        Batch batch = plan_->build(b);  // outside the lock: the consumer keeps popping meanwhile
        push(std::move(batch));
      }
    } catch (...) {
      keep_error(std::current_exception());
    }
  }

  // Waits until fewer than `capacity` batches are ready; false when asked to stop instead.
  bool wait_for_room() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return stop_ || ready_.size() < capacity_; });
    return !stop_;
  }

  void push(Batch batch) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ready_.push_back(std::move(batch));
    }
    changed_.notify_all();
  }

  void keep_error(std::exception_ptr error) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      error_ = std::move(error);
    }
    changed_.notify_all();
  }

  std::shared_ptr<const EpochPlan> plan_;
  size_t capacity_;
  std::mutex mutex_;
  std::condition_variable changed_;  // a batch was pushed or popped, an error was kept, or stop
  std::deque<Batch> ready_;
  std::exception_ptr error_;
  bool stop_ = false;
  std::thread thread_;  // started in the constructor's body, once every member above exists
};

}  // namespace

// The batches [next, end) of `epoch`, left to hand out.
struct DataLoader::Run {
  int64_t epoch;
  int64_t next, end;
  std::shared_ptr<const EpochPlan> plan;
  std::unique_ptr<BatchPrefetcher> prefetcher;  // null when synchronous
};

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options)
    : dataset_(std::move(dataset)), options_(options) {
  KILN_CHECK(dataset_ != nullptr, "DataLoader: dataset is null");
  KILN_CHECK(options_.batch_size > 0, "DataLoader: batch_size must be positive, got ", options_.batch_size);
  KILN_CHECK(options_.prefetch >= 0, "DataLoader: prefetch must be >= 0 (0 = no background thread), got ",
             options_.prefetch);
}

DataLoader::~DataLoader() = default;  // ~Run joins the prefetch thread
DataLoader::DataLoader(DataLoader&&) noexcept = default;
DataLoader& DataLoader::operator=(DataLoader&&) noexcept = default;

int64_t DataLoader::size() const {
  const int64_t n = dataset_->size(), b = options_.batch_size;
  KILN_CHECK(n >= 0, "DataLoader: the dataset's size() returned ", n);
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

void DataLoader::set_epoch(int64_t epoch) {
  KILN_CHECK(epoch >= 0, "DataLoader: epoch must be >= 0, got ", epoch);
  stop_run();
  position_ = {epoch, 0};
}

void DataLoader::load_state(DataLoaderState state) {
  const int64_t batches = size();
  KILN_CHECK(state.epoch >= 0 && state.batch >= 0, "DataLoader: invalid state (epoch ", state.epoch, ", batch ",
             state.batch, "); both must be >= 0");
  KILN_CHECK(state.batch <= batches, "DataLoader: cannot resume at batch ", state.batch, " of epoch ", state.epoch,
             ": an epoch has only ", batches, " batches (did the dataset or batch_size change?)");
  stop_run();
  position_ = state.batch == batches && batches > 0 ? DataLoaderState{state.epoch + 1, 0} : state;
}

void DataLoader::start_run() {
  stop_run();
  const int64_t batches = size();
  KILN_CHECK(position_.batch == 0 || position_.batch < batches, "DataLoader: position is batch ", position_.batch,
             " of epoch ", position_.epoch, " but an epoch has only ", batches,
             " batches now (did the dataset change size?)");
  auto run = std::make_unique<Run>();
  run->epoch = position_.epoch;
  run->next = position_.batch;
  run->end = batches;
  run->plan = std::make_shared<const EpochPlan>(dataset_, options_, position_.epoch);
  if (options_.prefetch > 0 && run->next < run->end)
    run->prefetcher = std::make_unique<BatchPrefetcher>(run->plan, run->next, run->end, options_.prefetch);
  run_ = std::move(run);
}

void DataLoader::stop_run() { run_.reset(); }

std::optional<Batch> DataLoader::next_batch() {
  if (!run_ || run_->next == run_->end) return std::nullopt;
  // If building the batch throws, nothing moves: the position still names this batch.
  Batch batch = run_->prefetcher ? run_->prefetcher->pop() : run_->plan->build(run_->next);
  ++run_->next;
  if (run_->next < run_->end) {
    position_.batch = run_->next;
  } else {
    position_ = {run_->epoch + 1, 0};
    stop_run();  // the thread has finished; join it now rather than at the next begin()
  }
  return batch;
}

DataLoader::Iterator DataLoader::begin() { return Iterator(this); }

DataLoader::Iterator::Iterator(DataLoader* loader) : loader_(loader) {
  loader_->start_run();
  current_ = loader_->next_batch();
}

DataLoader::Iterator& DataLoader::Iterator::operator++() {
  current_.reset();
  current_ = loader_->next_batch();
  return *this;
}

}  // namespace kiln::nn::data
