// nn/data: datasets and collate, the DataLoader (batching, shuffling, prefetch thread,
// resumable position), and the file readers (byte corpora, MNIST IDX, CIFAR-10 binary).
// Reader tests write small files in each format to a temporary folder, read them back
// exactly, then check that each kind of corruption is refused with a message saying what.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>
#include <thread>

#include <kiln/nn/data/cifar.h>
#include <kiln/nn/data/corpus.h>
#include <kiln/nn/data/dataloader.h>
#include <kiln/nn/data/dataset.h>
#include <kiln/nn/data/mnist.h>

#include "helpers.h"
#include "temp_dir.h"

using namespace kiln;
using namespace kiln::nn::data;
using kiln::testing::check_values;

namespace {

namespace fs = std::filesystem;
using kiln::testing::TempDir;
using Bytes = std::vector<uint8_t>;

// doctest matches messages against its own string type; this builds one from a std::string.
doctest::String text(const std::string& s) { return doctest::String(s.c_str()); }

void append_big_endian(Bytes& b, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<uint8_t>(v >> shift));
}

// Pixel k of an image set: a pattern that covers 0 and 255 and differs between images.
uint8_t pixel_value(int64_t k) { return static_cast<uint8_t>((k * 37 + 11) % 256); }

Bytes idx_images(uint32_t count, uint32_t rows, uint32_t cols, uint32_t magic = 0x00000803) {
  Bytes b;
  append_big_endian(b, magic);
  append_big_endian(b, count);
  append_big_endian(b, rows);
  append_big_endian(b, cols);
  for (int64_t k = 0; k < int64_t{count} * rows * cols; ++k) b.push_back(pixel_value(k));
  return b;
}

Bytes idx_labels(const Bytes& labels, uint32_t magic = 0x00000801) {
  Bytes b;
  append_big_endian(b, magic);
  append_big_endian(b, static_cast<uint32_t>(labels.size()));
  b.insert(b.end(), labels.begin(), labels.end());
  return b;
}

// CIFAR-10 records: label, then 3072 pixels; pixel i of record r is pixel_value(1000 r + i).
Bytes cifar_records(const Bytes& labels, int64_t first_record = 0) {
  Bytes b;
  for (size_t r = 0; r < labels.size(); ++r) {
    b.push_back(labels[r]);
    for (int64_t i = 0; i < 3072; ++i) b.push_back(pixel_value(1000 * (first_record + int64_t(r)) + i));
  }
  return b;
}

std::vector<float> scaled(const std::vector<uint8_t>& pixels) {
  std::vector<float> out;
  for (uint8_t p : pixels) out.push_back(static_cast<float>(p) / 255.0f);
  return out;
}

// ---- datasets used by the loader tests ----------------------------------------------------

// Example i: input f32 [i, 10 i], target i64 scalar i. Uses the default get_batch (get + collate).
class CountingDataset : public Dataset {
 public:
  explicit CountingDataset(int64_t n) : n_(n) {}
  int64_t size() const override { return n_; }
  Example get(int64_t i) const override {
    return {from_vector<float>({float(i), float(10 * i)}), scalar_tensor(double(i), {.dtype = i64})};
  }

 private:
  int64_t n_;
};

// Throws from get(bad_index); optionally sleeps in every get() to keep the loader thread busy.
template <class Exception>
class ThrowingDataset : public CountingDataset {
 public:
  ThrowingDataset(int64_t n, int64_t bad_index, int sleep_ms = 0)
      : CountingDataset(n), bad_index_(bad_index), sleep_ms_(sleep_ms) {}
  Example get(int64_t i) const override {
    if (sleep_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms_));
    if (i == bad_index_) throw Exception("cannot read example " + std::to_string(i));
    return CountingDataset::get(i);
  }

 private:
  int64_t bad_index_;
  int sleep_ms_;
};

std::shared_ptr<TensorDataset> range_dataset(int64_t n) {
  Tensor x = arange(0, double(n), 1, {.dtype = i64});
  return std::make_shared<TensorDataset>(x.reshape({n, 1}), x * 2);
}

// The example indices of every batch the loader hands out in one pass over `loader`.
std::vector<std::vector<int64_t>> pass_indices(DataLoader& loader) {
  std::vector<std::vector<int64_t>> batches;
  for (const Batch& b : loader) batches.push_back(b.input.flatten().to_vector<int64_t>());
  return batches;
}

std::vector<int64_t> flat(const std::vector<std::vector<int64_t>>& batches) {
  std::vector<int64_t> all;
  for (const auto& b : batches) all.insert(all.end(), b.begin(), b.end());
  return all;
}

}  // namespace

// ===== Dataset, TensorDataset, collate ========================================================

TEST_CASE("data: TensorDataset get and get_batch index dim 0") {
  Tensor x = arange(0, 12, 1).reshape({4, 3});
  Tensor y = from_vector<int64_t>({7, 8, 9, 6});
  TensorDataset ds(x, y);
  CHECK(ds.size() == 4);
  Example e = ds.get(2);
  CHECK(e.input.shape() == Shape{3});
  check_values(e.input, {6, 7, 8});
  CHECK(e.target.item<int64_t>() == 9);

  Batch b = ds.get_batch({3, 0, 3});
  CHECK(b.input.shape() == Shape{3, 3});
  check_values(b.input, {9, 10, 11, 0, 1, 2, 9, 10, 11});
  CHECK(b.target.to_vector<int64_t>() == std::vector<int64_t>{6, 7, 6});

  TensorDataset unlabelled(x);
  CHECK_FALSE(unlabelled.get(0).target.defined());
  CHECK_FALSE(unlabelled.get_batch({1}).target.defined());
}

TEST_CASE("data: TensorDataset bad input") {
  Tensor x = zeros({4, 3});
  CHECK_THROWS_KILN(TensorDataset(x, zeros({5})),
                    "TensorDataset: inputs f32[4, 3] and targets f32[5] must have the same size in dim 0");
  CHECK_THROWS_KILN(TensorDataset(scalar_tensor(1.0)), "TensorDataset: inputs must have a dim to index");
  TensorDataset ds(x);
  CHECK_THROWS_KILN(ds.get(4), "TensorDataset: index 4 is out of range for a dataset of size 4");
  CHECK_THROWS_KILN(ds.get(-1), "TensorDataset: index -1 is out of range");
  CHECK_THROWS_KILN(ds.get_batch({0, 9}), "index 9 is out of range");
}

TEST_CASE("data: collate stacks examples, the default get_batch uses it") {
  CountingDataset ds(5);
  Batch b = ds.get_batch({4, 1});
  CHECK(b.input.shape() == Shape{2, 2});
  check_values(b.input, {4, 40, 1, 10});
  CHECK(b.target.shape() == Shape{2});
  CHECK(b.target.to_vector<int64_t>() == std::vector<int64_t>{4, 1});

  // (Not {1, 1, 0, 0}: g++ 12.2 with -march=native on AVX-512 miscompiles some constant
  // arrays whose low half is a splat and high half zero into a full splat.)
  Batch unlabelled = collate({{ones({2})}, {full({2}, 2.0)}});
  CHECK_FALSE(unlabelled.target.defined());
  check_values(unlabelled.input, {1, 1, 2, 2});
}

TEST_CASE("data: collate bad input") {
  CHECK_THROWS_KILN(collate({}), "collate: expected at least one example");
  CHECK_THROWS_KILN(collate({{ones({2})}, {ones({3})}}),
                    "collate: example 1 input is f32[3] but example 0 input is f32[2]");
  CHECK_THROWS_KILN(collate({{ones({2}), ones({1})}, {ones({2})}}),
                    "collate: example 1 has no target but example 0 has one");
  CHECK_THROWS_KILN(collate({{ones({2}), ones({1})}, {ones({2}), ones({1}, {.dtype = f64})}}),
                    "collate: example 1 target is f64[1] but example 0 target is f32[1]");
}

// ===== DataLoader =================================================================================

TEST_CASE("data: DataLoader batches in order, with and without drop_last") {
  auto ds = range_dataset(10);
  DataLoader loader(ds, {.batch_size = 4});
  CHECK(loader.size() == 3);
  std::vector<std::vector<int64_t>> batches;
  for (const auto& [input, target] : loader) {
    batches.push_back(input.flatten().to_vector<int64_t>());
    CHECK(target.to_vector<int64_t>().front() == 2 * batches.back().front());
  }
  CHECK(batches == std::vector<std::vector<int64_t>>{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9}});

  DataLoader dropping(ds, {.batch_size = 4, .drop_last = true});
  CHECK(dropping.size() == 2);
  CHECK(pass_indices(dropping) == std::vector<std::vector<int64_t>>{{0, 1, 2, 3}, {4, 5, 6, 7}});

  DataLoader exact(ds, {.batch_size = 5, .drop_last = true});
  CHECK(pass_indices(exact).size() == 2);

  DataLoader too_big(ds, {.batch_size = 11, .drop_last = true});
  CHECK(too_big.size() == 0);
  CHECK(pass_indices(too_big).empty());
}

TEST_CASE("data: DataLoader shuffle visits every index once per epoch, in an order fixed by (seed, epoch)") {
  auto ds = range_dataset(23);
  DataLoader a(ds, {.batch_size = 5, .shuffle = true, .seed = 42});
  DataLoader b(ds, {.batch_size = 5, .shuffle = true, .seed = 42});
  DataLoader other_seed(ds, {.batch_size = 5, .shuffle = true, .seed = 43});

  std::vector<std::vector<int64_t>> orders;
  for (int epoch = 0; epoch < 3; ++epoch) {
    CHECK(a.epoch() == epoch);
    const std::vector<int64_t> order = flat(pass_indices(a));
    CHECK(order.size() == 23);
    CHECK(std::set<int64_t>(order.begin(), order.end()).size() == 23);  // each index exactly once
    CHECK(*std::min_element(order.begin(), order.end()) == 0);
    CHECK(*std::max_element(order.begin(), order.end()) == 22);
    CHECK(order == flat(pass_indices(b)));            // same seed, same epoch: same order
    CHECK(order == shuffled_indices(23, 42, epoch));  // and it is the documented permutation
    CHECK(order != flat(pass_indices(other_seed)));
    orders.push_back(order);
  }
  CHECK(orders[0] != orders[1]);  // a new epoch reshuffles
  CHECK(orders[1] != orders[2]);

  a.set_epoch(1);
  CHECK(flat(pass_indices(a)) == orders[1]);
}

TEST_CASE("data: shuffling does not touch the global generator") {
  manual_seed(5);
  const GeneratorState before = default_generator().state();
  DataLoader loader(range_dataset(50), {.batch_size = 8, .shuffle = true, .prefetch = 2});
  for (int epoch = 0; epoch < 2; ++epoch) pass_indices(loader);
  const GeneratorState after = default_generator().state();
  CHECK(after.seed == before.seed);
  CHECK(after.offset == before.offset);
}

TEST_CASE("data: shuffled_indices is a permutation; bad input") {
  for (int64_t n : {0, 1, 2, 100}) {
    std::vector<int64_t> p = shuffled_indices(n, 7, 3);
    std::sort(p.begin(), p.end());
    std::vector<int64_t> identity(n);
    std::iota(identity.begin(), identity.end(), 0);
    CHECK(p == identity);
  }
  // Every position takes every value about equally often (Fisher-Yates with an unbiased draw).
  std::vector<std::vector<int>> counts(4, std::vector<int>(4, 0));
  for (int64_t epoch = 0; epoch < 4000; ++epoch) {
    const std::vector<int64_t> p = shuffled_indices(4, 1, epoch);
    for (int i = 0; i < 4; ++i) ++counts[i][p[i]];
  }
  for (const auto& row : counts)
    for (int c : row) CHECK(std::abs(c - 1000) < 150);  // 1000 +- ~4.5 sigma
  CHECK_THROWS_KILN(shuffled_indices(-1, 0, 0), "shuffled_indices: n must be >= 0, got -1");
  CHECK_THROWS_KILN(shuffled_indices(3, 0, -2), "shuffled_indices: epoch must be >= 0, got -2");
}

TEST_CASE("data: DataLoader prefetch gives the same batches as synchronous loading") {
  auto ds = std::make_shared<CountingDataset>(37);
  DataLoader sync(ds, {.batch_size = 4, .shuffle = true, .seed = 9});
  for (int64_t prefetch : {1, 3, 100}) {
    sync.set_epoch(0);
    DataLoader ahead(ds, {.batch_size = 4, .shuffle = true, .seed = 9, .prefetch = prefetch});
    for (int epoch = 0; epoch < 2; ++epoch) {
      std::vector<Batch> expected;
      for (const Batch& b : sync) expected.push_back(b);
      size_t i = 0;
      for (const Batch& b : ahead) {
        REQUIRE(i < expected.size());
        CHECK(b.input.to_vector<float>() == expected[i].input.to_vector<float>());
        CHECK(b.target.to_vector<int64_t>() == expected[i].target.to_vector<int64_t>());
        ++i;
      }
      CHECK(i == expected.size());
    }
  }
}

TEST_CASE("data: DataLoader batches carry no autograd graph, in either thread") {
  Tensor x = randn({6, 2}).requires_grad_();
  auto ds = std::make_shared<TensorDataset>(x, zeros({6}));
  for (int64_t prefetch : {0, 2}) {
    DataLoader loader(ds, {.batch_size = 4, .prefetch = prefetch});
    for (const Batch& b : loader) {
      CHECK_FALSE(b.input.requires_grad());
      CHECK(b.input.grad_fn() == nullptr);
    }
  }
}

TEST_CASE("data: DataLoader rethrows a dataset's exception when the consumer reaches that batch") {
  // Example 9 is in batch 2 (batch_size 4, no shuffle): batches 0 and 1 arrive first.
  for (int64_t prefetch : {0, 1, 4}) {
    CAPTURE(prefetch);
    DataLoader loader(std::make_shared<ThrowingDataset<Error>>(16, 9), {.batch_size = 4, .prefetch = prefetch});
    int batches = 0;
    auto consume = [&] {
      for (const Batch& b : loader) {
        CHECK(b.input.size(0) == 4);
        ++batches;
      }
    };
    CHECK_THROWS_KILN(consume(), "cannot read example 9");
    CHECK(batches == 2);
    CHECK(loader.state() == DataLoaderState{0, 2});  // the failed batch was not consumed
    // A retry starts again at the failed batch (and fails again: the dataset always throws).
    CHECK_THROWS_KILN(consume(), "cannot read example 9");
  }
  // Any exception type arrives unchanged.
  DataLoader loader(std::make_shared<ThrowingDataset<std::out_of_range>>(8, 0), {.batch_size = 2, .prefetch = 2});
  CHECK_THROWS_AS(loader.begin(), std::out_of_range);
}

TEST_CASE("data: DataLoader destroyed mid-epoch joins its thread without hanging") {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  {
    // A slow dataset: the thread is inside get() or waiting on a full queue when we leave.
    DataLoader loader(std::make_shared<ThrowingDataset<Error>>(1000, -1, 1), {.batch_size = 2, .prefetch = 3});
    int taken = 0;
    for (const Batch& b : loader) {
      CHECK(b.input.size(0) == 2);
      if (++taken == 2) break;
    }
    CHECK(loader.state() == DataLoaderState{0, 2});
  }
  {
    // Destroyed right after begin(), before the consumer took anything but the first batch.
    DataLoader loader(std::make_shared<CountingDataset>(1000), {.batch_size = 1, .prefetch = 8});
    auto it = loader.begin();
    CHECK(it != loader.end());
  }
  CHECK(Clock::now() - start < std::chrono::seconds(5));  // 1000 slow examples would take 2 s or more
}

TEST_CASE("data: DataLoader state resumes at the same batch") {
  auto ds = range_dataset(20);
  const DataLoaderOptions options{.batch_size = 3, .shuffle = true, .seed = 3, .prefetch = 2};  // 7 batches

  // Reference run: three epochs, uninterrupted.
  DataLoader reference(ds, options);
  std::vector<std::vector<int64_t>> all;
  for (int epoch = 0; epoch < 3; ++epoch)
    for (const auto& b : pass_indices(reference)) all.push_back(b);
  REQUIRE(all.size() == 21);

  // Interrupted run: stop after consuming k batches, save, resume in a fresh loader.
  for (int64_t k : {0, 1, 5, 6, 7, 13}) {
    CAPTURE(k);
    DataLoader first(ds, options);
    std::vector<std::vector<int64_t>> seen;
    while (static_cast<int64_t>(seen.size()) < k)
      for (const Batch& b : first) {
        seen.push_back(b.input.flatten().to_vector<int64_t>());
        if (static_cast<int64_t>(seen.size()) == k) break;
      }
    const DataLoaderState saved = first.state();
    CHECK(saved == DataLoaderState{k / 7, k % 7});

    DataLoader resumed(ds, options);
    resumed.load_state(saved);
    while (seen.size() < all.size())
      for (const auto& b : pass_indices(resumed)) seen.push_back(b);
    CHECK(seen == all);
  }
}

TEST_CASE("data: DataLoader position: break keeps it, epochs advance, load_state normalises") {
  DataLoader loader(range_dataset(10), {.batch_size = 4});
  for (const Batch& b : loader) {
    CHECK(b.input.size(0) == 4);
    CHECK(loader.state() == DataLoaderState{0, 1});  // the batch in hand counts as consumed
    break;
  }
  CHECK(pass_indices(loader) == std::vector<std::vector<int64_t>>{{4, 5, 6, 7}, {8, 9}});
  CHECK(loader.state() == DataLoaderState{1, 0});
  CHECK(loader.epoch() == 1);

  loader.load_state({4, 3});  // "epoch 4 is done"
  CHECK(loader.state() == DataLoaderState{5, 0});
  loader.load_state({2, 2});
  CHECK(pass_indices(loader) == std::vector<std::vector<int64_t>>{{8, 9}});

  CHECK_THROWS_KILN(loader.load_state({0, 4}),
                    "DataLoader: cannot resume at batch 4 of epoch 0: an epoch has only 3 batches");
  CHECK_THROWS_KILN(loader.load_state({-1, 0}), "DataLoader: invalid state (epoch -1, batch 0)");
  CHECK_THROWS_KILN(loader.set_epoch(-3), "DataLoader: epoch must be >= 0, got -3");
}

TEST_CASE("data: DataLoader bad options") {
  auto ds = range_dataset(4);
  CHECK_THROWS_KILN(DataLoader(ds, {.batch_size = 0}), "DataLoader: batch_size must be positive, got 0");
  CHECK_THROWS_KILN(DataLoader(ds, {.prefetch = -1}), "DataLoader: prefetch must be >= 0");
  CHECK_THROWS_KILN(DataLoader(nullptr), "DataLoader: dataset is null");
}

// ===== byte corpus =================================================================================

TEST_CASE("data: ByteCorpus reads a file and splits it 90/5/5") {
  TempDir dir;
  Bytes bytes(1000);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 7 + 3);
  ByteCorpus corpus(dir.write("corpus.txt", bytes));
  CHECK(corpus.size() == 1000);
  CHECK(ByteCorpus::vocab_size == 256);
  CHECK(corpus.split(Split::train).size() == 900);
  CHECK(corpus.split(Split::validation).size() == 50);
  CHECK(corpus.split(Split::test).size() == 50);
  CHECK(corpus.split(Split::train)[0] == bytes[0]);
  CHECK(corpus.split(Split::validation)[0] == bytes[900]);
  CHECK(corpus.split(Split::test)[49] == bytes[999]);

  // Sizes that do not divide: floor(0.9 n), floor(0.05 n), the rest.
  ByteCorpus odd(Bytes(101), "odd");
  CHECK(odd.split(Split::train).size() == 90);
  CHECK(odd.split(Split::validation).size() == 5);
  CHECK(odd.split(Split::test).size() == 6);

  // enwik8 / text8 size: the standard 90M / 5M / 5M split.
  ByteCorpus enwik8(Bytes(100'000'000), "enwik8");
  CHECK(enwik8.split(Split::train).size() == 90'000'000);
  CHECK(enwik8.split(Split::validation).size() == 5'000'000);
  CHECK(enwik8.split(Split::test).size() == 5'000'000);
}

TEST_CASE("data: RandomWindows are consecutive bytes, target = input shifted by one") {
  // Train split = bytes 0..179 with value = position, so a row's first byte is its start.
  Bytes bytes(200);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i);
  ByteCorpus corpus(bytes, "positions");
  const int64_t T = 170;  // 180 - 170 = 10 possible starts: 0..9
  RandomWindows windows(corpus, Split::train, {.batch_size = 8, .seq_len = T, .seed = 11});
  std::set<int64_t> starts;
  for (int step = 0; step < 40; ++step) {
    Batch b = windows.next();
    REQUIRE(b.input.shape() == Shape{8, T});
    REQUIRE(b.target.shape() == Shape{8, T});
    CHECK(b.input.dtype() == i64);
    const std::vector<int64_t> x = b.input.to_vector<int64_t>(), y = b.target.to_vector<int64_t>();
    for (int64_t r = 0; r < 8; ++r) {
      const int64_t start = x[r * T];
      starts.insert(start);
      std::vector<int64_t> window(T + 1);
      std::iota(window.begin(), window.end(), start);  // the bytes at start .. start + T
      CHECK(std::vector<int64_t>(x.begin() + r * T, x.begin() + (r + 1) * T) ==
            std::vector<int64_t>(window.begin(), window.end() - 1));
      CHECK(std::vector<int64_t>(y.begin() + r * T, y.begin() + (r + 1) * T) ==
            std::vector<int64_t>(window.begin() + 1, window.end()));
    }
  }
  CHECK(starts == std::set<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});  // both ends reachable, nothing past them

  // Reproducible and resumable: batch k depends only on (seed, k).
  CHECK(windows.step() == 40);
  RandomWindows again(corpus, Split::train, {.batch_size = 8, .seq_len = T, .seed = 11});
  again.set_step(17);
  CHECK(again.next().input.to_vector<int64_t>() == windows.batch(17).input.to_vector<int64_t>());
  RandomWindows other(corpus, Split::train, {.batch_size = 8, .seq_len = T, .seed = 12});
  CHECK(other.batch(17).input.to_vector<int64_t>() != windows.batch(17).input.to_vector<int64_t>());

  // The validation split (bytes 180..189) is where validation windows come from.
  // It has 10 bytes, so a window of 9 + 1 bytes can only start at its beginning.
  RandomWindows validation(corpus, Split::validation, {.batch_size = 2, .seq_len = 9});
  const Batch v = validation.batch(0);
  check_values(v.input, {180, 181, 182, 183, 184, 185, 186, 187, 188, 180, 181, 182, 183, 184, 185, 186, 187, 188});
  check_values(v.target, {181, 182, 183, 184, 185, 186, 187, 188, 189, 181, 182, 183, 184, 185, 186, 187, 188, 189});
}

TEST_CASE("data: SequentialWindows cover a split once, in order") {
  Bytes bytes(200);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i);
  ByteCorpus corpus(bytes, "positions");
  // Train split: 180 bytes -> (180 - 1) / 7 = 25 windows -> batches of 4: 6 full + 1 row.
  SequentialWindows windows(corpus, Split::train, {.batch_size = 4, .seq_len = 7});
  CHECK(windows.num_windows() == 25);
  CHECK(windows.size() == 7);
  std::vector<int64_t> inputs, targets;
  int64_t batches = 0;
  for (const Batch& b : windows) {
    CHECK(b.input.shape() == Shape{batches < 6 ? 4 : 1, 7});
    for (int64_t v : b.input.to_vector<int64_t>()) inputs.push_back(v);
    for (int64_t v : b.target.to_vector<int64_t>()) targets.push_back(v);
    ++batches;
  }
  CHECK(batches == 7);
  std::vector<int64_t> expected_inputs(175), expected_targets(175);
  std::iota(expected_inputs.begin(), expected_inputs.end(), 0);
  std::iota(expected_targets.begin(), expected_targets.end(), 1);
  CHECK(inputs == expected_inputs);    // bytes 0..174, each once
  CHECK(targets == expected_targets);  // targets 1..175; 176..179 do not fill a window
  CHECK_THROWS_KILN(windows.batch(7), "SequentialWindows: batch 7 is out of range (7 batches)");
}

TEST_CASE("data: ByteCorpus bad input") {
  TempDir dir;
  CHECK_THROWS_KILN(ByteCorpus(dir.file("missing.txt")),
                    text("ByteCorpus: '" + dir.file("missing.txt") + "' does not exist"));
  CHECK_THROWS_KILN(ByteCorpus(dir.write("empty.txt", {})), "' is empty");
  CHECK_THROWS_KILN(ByteCorpus(dir.path()), "is a directory, expected a file");
  CHECK_THROWS_KILN(ByteCorpus(Bytes{}, "nothing"), "ByteCorpus: 'nothing' is empty");

  ByteCorpus small(dir.write("small.txt", Bytes(100, 'a')));  // validation split: 5 bytes
  CHECK_THROWS_KILN(RandomWindows(small, Split::validation, {.seq_len = 5}),
                    text("RandomWindows: the validation split of '" + dir.file("small.txt") +
                         "' has 5 bytes, too short for one window of seq_len + 1 = 6 bytes"));
  CHECK_NOTHROW(RandomWindows(small, Split::validation, {.seq_len = 4}));
  CHECK_THROWS_KILN(SequentialWindows(small, Split::test, {.seq_len = 5}), "SequentialWindows: the test split");
  CHECK_THROWS_KILN(RandomWindows(small, Split::train, {.batch_size = 0}),
                    "RandomWindows: batch_size must be positive, got 0");
  CHECK_THROWS_KILN(RandomWindows(small, Split::train, {.seq_len = 0}),
                    "RandomWindows: seq_len must be positive, got 0");
  RandomWindows windows(small, Split::train, {.seq_len = 4});
  CHECK_THROWS_KILN(windows.set_step(-1), "RandomWindows: step must be >= 0, got -1");
}

// ===== MNIST ======================================================================================

TEST_CASE("data: MNIST IDX files read back exactly") {
  TempDir dir;
  const Bytes image_file = idx_images(3, 2, 4);
  Tensor images = read_mnist_images(dir.write("images", image_file));
  CHECK(images.shape() == Shape{3, 1, 2, 4});
  CHECK(images.dtype() == f32);
  CHECK(images.to_vector<float>() == scaled(Bytes(image_file.begin() + 16, image_file.end())));
  CHECK(images.to_vector<float>()[0] == 11.0f / 255.0f);

  Tensor labels = read_mnist_labels(dir.write("labels", idx_labels({3, 0, 9})));
  CHECK(labels.dtype() == i64);
  CHECK(labels.to_vector<int64_t>() == std::vector<int64_t>{3, 0, 9});
  CHECK(read_mnist_labels(dir.write("letters", idx_labels({25})), 26).item<int64_t>() == 25);

  // load_mnist: the standard file names in a folder; pixels 0 and 255 map to 0 and 1.
  dir.write("train-images-idx3-ubyte", idx_images(2, 28, 28));
  dir.write("train-labels-idx1-ubyte", idx_labels({5, 7}));
  dir.write("t10k-images-idx3-ubyte", idx_images(1, 28, 28));
  dir.write("t10k-labels-idx1-ubyte", idx_labels({1}));
  TensorDataset train = load_mnist(dir.path());
  CHECK(train.inputs().shape() == Shape{2, 1, 28, 28});
  CHECK(train.targets().to_vector<int64_t>() == std::vector<int64_t>{5, 7});
  const std::vector<float> pixels = train.inputs().to_vector<float>();
  CHECK(*std::min_element(pixels.begin(), pixels.end()) == 0.0f);
  CHECK(*std::max_element(pixels.begin(), pixels.end()) == 1.0f);
  CHECK(load_mnist(dir.path(), /*train=*/false).size() == 1);
}

TEST_CASE("data: MNIST corrupt files are refused with a clear message") {
  TempDir dir;
  auto images_error = [&](const Bytes& bytes) { read_mnist_images(dir.write("bad-images", bytes)); };
  auto labels_error = [&](const Bytes& bytes) { read_mnist_labels(dir.write("bad-labels", bytes)); };

  CHECK_THROWS_KILN(images_error(idx_images(1, 2, 2, 0x00000804)),
                    "has magic number 0x00000804, expected 0x00000803 (IDX images: unsigned bytes, 3 dims)");
  CHECK_THROWS_KILN(images_error(idx_labels({1, 2})),
                    "expected 0x00000803 (IDX images: unsigned bytes, 3 dims); it looks like an IDX labels file");
  CHECK_THROWS_KILN(labels_error(idx_images(1, 1, 1)), "it looks like an IDX images file");
  CHECK_THROWS_KILN(images_error({0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}),
                    "is gzip-compressed (it starts with 1f 8b); only plain IDX files are read: gunzip it first");
  CHECK_THROWS_KILN(images_error({0, 0, 8, 3, 0, 0}), "is truncated: an IDX images header is 16 bytes, the file has 6");

  Bytes truncated = idx_images(3, 2, 2);
  truncated.pop_back();
  CHECK_THROWS_KILN(images_error(truncated),
                    "is truncated or its header is corrupt: the header says 3 images of 4 bytes, but the file holds 11 "
                    "bytes after the header (2 images)");
  Bytes trailing = idx_images(3, 2, 2);
  trailing.push_back(0);
  CHECK_THROWS_KILN(images_error(trailing), "has 1 unexpected bytes after its 3 images");

  // Absurd counts: 2^32 - 1 images of 2^32 - 1 x 2^32 - 1 pixels would overflow 64 bits.
  Bytes absurd;
  for (uint32_t v : {0x00000803u, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}) append_big_endian(absurd, v);
  absurd.resize(absurd.size() + 64, 0);
  CHECK_THROWS_KILN(images_error(absurd),
                    "the header says 4294967295 images of 18446744065119617025 bytes, but the file holds 64 bytes");
  Bytes many;
  for (uint32_t v : {0x00000803u, 0x7FFFFFFFu, 28u, 28u}) append_big_endian(many, v);
  many.resize(many.size() + 784, 0);
  CHECK_THROWS_KILN(
      images_error(many),
      "the header says 2147483647 images of 784 bytes, but the file holds 784 bytes after the header (1 images)");
  CHECK_THROWS_KILN(images_error(idx_images(1, 0, 5)), "has images of 0 rows and 5 columns; both must be positive");

  CHECK_THROWS_KILN(labels_error(idx_labels({1, 10, 2})), "has label 10 at index 1, outside [0, 10)");
  Bytes short_labels = idx_labels({1, 2, 3});
  short_labels.pop_back();
  CHECK_THROWS_KILN(labels_error(short_labels), "the header says 3 labels of 1 bytes, but the file holds 2 bytes");
  CHECK_THROWS_KILN(read_mnist_labels(dir.write("ok-labels", idx_labels({1})), 0),
                    "read_mnist_labels: num_classes must be in [1, 256], got 0");

  CHECK_THROWS_KILN(read_mnist_images(dir.file("nope")),
                    text("read_mnist_images: '" + dir.file("nope") + "' does not exist"));
  CHECK_THROWS_KILN(images_error({}), text("read_mnist_images: '" + dir.file("bad-images") + "' is empty"));

  dir.write("train-images-idx3-ubyte", idx_images(2, 28, 28));
  dir.write("train-labels-idx1-ubyte", idx_labels({5}));
  CHECK_THROWS_KILN(load_mnist(dir.path()),
                    text("load_mnist: '" + dir.file("train-images-idx3-ubyte") + "' has 2 images but '" +
                         dir.file("train-labels-idx1-ubyte") + "' has 1 labels"));
}

// ===== CIFAR-10 ===================================================================================

TEST_CASE("data: CIFAR-10 binary files read back exactly, channel planes in order") {
  TempDir dir;
  const std::string a = dir.write("a.bin", cifar_records({6, 0}, 0));
  const std::string b = dir.write("b.bin", cifar_records({9, 1, 3}, 2));
  TensorDataset ds = read_cifar10({a, b});
  CHECK(ds.inputs().shape() == Shape{5, 3, 32, 32});
  CHECK(ds.targets().to_vector<int64_t>() == std::vector<int64_t>{6, 0, 9, 1, 3});
  Bytes pixels;
  for (int64_t r = 0; r < 5; ++r)
    for (int64_t i = 0; i < 3072; ++i) pixels.push_back(pixel_value(1000 * r + i));
  CHECK(ds.inputs().to_vector<float>() == scaled(pixels));
  // Record 3, channel 1 (green), row 2, col 5 is byte 1 + 1024 + 2 * 32 + 5 of the record.
  CHECK(ds.inputs().select(0, 3).select(0, 1).select(0, 2).select(0, 5).item<float>() ==
        static_cast<float>(pixel_value(3000 + 1024 + 69)) / 255.0f);

  dir.write("test_batch.bin", cifar_records({4}));
  for (int i = 1; i <= 5; ++i) dir.write("data_batch_" + std::to_string(i) + ".bin", cifar_records({uint8_t(i)}, i));
  TensorDataset test = load_cifar10(dir.path(), /*train=*/false);
  CHECK(test.targets().to_vector<int64_t>() == std::vector<int64_t>{4});
  TensorDataset train = load_cifar10(dir.path());
  CHECK(train.targets().to_vector<int64_t>() == std::vector<int64_t>{1, 2, 3, 4, 5});
}

TEST_CASE("data: CIFAR-10 corrupt files are refused with a clear message") {
  TempDir dir;
  Bytes truncated = cifar_records({1, 2});
  truncated.resize(truncated.size() - 10);
  const std::string t = dir.write("truncated.bin", truncated);
  CHECK_THROWS_KILN(read_cifar10({t}),
                    text("read_cifar10: '" + t +
                         "' is truncated or not a CIFAR-10 binary file: its 6136 bytes are not a whole "
                         "number of 3073-byte records (1 records and 3063 bytes left over)"));
  Bytes bad_label = cifar_records({1, 10});
  CHECK_THROWS_KILN(read_cifar10({dir.write("label.bin", bad_label)}),
                    "record 1 has label 10; CIFAR-10 labels are 0..9");
  Bytes gz = cifar_records({1});
  gz[0] = 0x1f;
  gz[1] = 0x8b;
  CHECK_THROWS_KILN(read_cifar10({dir.write("gz.bin", gz)}), "is gzip-compressed (it starts with 1f 8b)");
  CHECK_THROWS_KILN(read_cifar10({dir.write("empty.bin", {})}), "is empty");
  CHECK_THROWS_KILN(read_cifar10({}), "read_cifar10: expected at least one file");
  // A missing batch is reported before anything is read or allocated.
  CHECK_THROWS_KILN(load_cifar10(dir.path()),
                    text("read_cifar10: '" + dir.file("data_batch_1.bin") + "' does not exist"));
}
