// CUDA parity for the indexing ops (embedding, index_select, gather, scatter_add), dropout
// and the shape ops (cat, stack, split, chunk, pad): each runs on the CPU and on the GPU
// and the outputs and gradients must agree (tests/cuda_parity.h). Beyond parity: the
// embedding gradient is bit-identical run to run (no float atomics), dropout draws the
// same mask on both devices for one seed, and a bad index is reported as kiln::Error.
// Every case skips with a printed reason when no GPU is visible.
#include <cstdint>
#include <string>
#include <vector>

#include "cuda_parity.h"
#include "kiln/cuda/event.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

const Device kGpu = Device::cuda();

// The exact values of t, wherever it lives (for bit-for-bit comparisons).
std::vector<double> exact_values(const Tensor& t) { return t.to(Device::cpu()).to_vector<double>(); }

// The gradient embedding gives weight for indices and upstream gradient g, on `device`.
Tensor embedding_weight_grad(const Tensor& indices, const Tensor& weight, const Tensor& g, Device device,
                             int64_t padding_idx = -1) {
  Tensor w = weight.to(device).detach().requires_grad_();
  embedding(indices.to(device), w, padding_idx).backward(g.to(device));
  return w.grad();
}

}  // namespace

// ---- embedding --------------------------------------------------------------------------

TEST_CASE("[cuda] embedding matches the CPU, with repeated indices and padding_idx") {
  if (skip_without_gpu()) return;
  for (DType dtype : {f32, f64}) {
    CAPTURE(dtype_name(dtype));
    // 11 rows, 3 x 5 lookups: most rows repeat; row 2 is also the padding row below.
    const Tensor indices = from_vector<int64_t>({2, 0, 10, 2, 5, 5, 5, 1, 2, 9, 0, 3, 7, 7, 2}, {3, 5});
    const Tensor weight = randn({11, 7}, {.dtype = dtype});
    for (int64_t padding_idx : {-1, 2, 4}) {
      CAPTURE(padding_idx);
      check_cuda_matches_cpu(
          "embedding", [&](const auto& in) { return embedding(in[0], in[1], padding_idx); }, {indices, weight});
    }
  }
}

TEST_CASE("[cuda] embedding with rows wider than a block, single rows and no indices") {
  if (skip_without_gpu()) return;
  // 600 columns: more than one block's threads, so each thread sums several columns.
  check_cuda_matches_cpu("embedding wide", [](const auto& in) { return embedding(in[0], in[1]); },
                         {randint(0, 5, {301}), randn({5, 600})});
  // One row of one column, looked up many times.
  check_cuda_matches_cpu("embedding 1x1", [](const auto& in) { return embedding(in[0], in[1]); },
                         {zeros({4, 9}, {.dtype = i64}), randn({1, 1})});
  // No lookups: an empty output and an all-zero weight gradient.
  check_cuda_matches_cpu("embedding empty", [](const auto& in) { return embedding(in[0], in[1]); },
                         {zeros({0}, {.dtype = i64}), randn({6, 3})});
}

TEST_CASE("[cuda] embedding backward is deterministic and sums in the CPU's order") {
  if (skip_without_gpu()) return;
  // 4000 lookups of 37 rows: each row is hit ~100 times, so any change of summation
  // order between runs would show in the low bits.
  const Tensor indices = randint(0, 37, {40, 100});
  const Tensor weight = randn({37, 65});
  const Tensor g = randn({40, 100, 65});
  const std::vector<double> first = exact_values(embedding_weight_grad(indices, weight, g, kGpu));
  for (int run = 0; run < 3; ++run) CHECK(exact_values(embedding_weight_grad(indices, weight, g, kGpu)) == first);
  // Each row's gradient is summed in increasing lookup position, in float, on both sides.
  CHECK(exact_values(embedding_weight_grad(indices, weight, g, Device::cpu())) == first);
}

// ---- index_select, gather, scatter_add -----------------------------------------------------

TEST_CASE("[cuda] index_select matches the CPU along every dim, strided inputs included") {
  if (skip_without_gpu()) return;
  for (DType dtype : {f32, f64}) {
    CAPTURE(dtype_name(dtype));
    const Tensor x = randn({5, 3, 7}, {.dtype = dtype});
    for (int64_t dim : {0, 1, 2, -1}) {
      CAPTURE(dim);
      const int64_t size = x.shape()[dim < 0 ? 2 : dim];
      const Tensor index = from_vector<int64_t>({size - 1, 0, size - 1, 1 % size, size / 2});
      check_cuda_matches_cpu(
          "index_select", [&](const auto& in) { return index_select(in[0], dim, in[1]); }, {x, index});
      // A transposed (non-contiguous) input.
      check_cuda_matches_cpu(
          "index_select strided", [&](const auto& in) { return index_select(in[0].transpose(0, 2), dim, in[1]); },
          {randn({7, 3, 5}, {.dtype = dtype}), index});
    }
  }
  // Integers move as they are (no gradient), long rows span several blocks, no indices.
  check_cuda_matches_cpu("index_select i64", [](const auto& in) { return index_select(in[0], 1, in[1]); },
                         {randint(-50, 50, {4, 9}), from_vector<int64_t>({8, 8, 0})});
  check_cuda_matches_cpu("index_select long rows", [](const auto& in) { return index_select(in[0], 0, in[1]); },
                         {randn({3, 1000}), from_vector<int64_t>({2, 0, 2, 2})});
  check_cuda_matches_cpu("index_select empty", [](const auto& in) { return index_select(in[0], 0, in[1]); },
                         {randn({3, 4}), zeros({0}, {.dtype = i64})});
}

TEST_CASE("[cuda] gather matches the CPU along every dim, with a smaller and strided index") {
  if (skip_without_gpu()) return;
  for (DType dtype : {f32, f64}) {
    CAPTURE(dtype_name(dtype));
    const Tensor x = randn({4, 5, 3}, {.dtype = dtype});
    for (int64_t dim : {0, 1, 2}) {
      CAPTURE(dim);
      // An index no larger than x in the other dims and up to 6 long along dim: values
      // repeat, so the backward (a scatter_add) accumulates.
      const Tensor index = randint(0, x.shape()[dim], {dim == 0 ? 6 : 3, dim == 1 ? 6 : 4, dim == 2 ? 6 : 2});
      check_cuda_matches_cpu("gather", [&](const auto& in) { return gather(in[0], dim, in[1]); }, {x, index});
      // x as a permuted (non-contiguous) view of the same shape, and a strided index:
      // every other element of one twice as long in its last dim.
      Shape wide = index.shape();
      wide[2] *= 2;
      check_cuda_matches_cpu(
          "gather strided",
          [&](const auto& in) { return gather(in[0].permute({2, 0, 1}), dim, in[1].slice(2, 0, wide[2], 2)); },
          {randn({5, 3, 4}, {.dtype = dtype}), randint(0, x.shape()[dim], wide)});
    }
  }
  check_cuda_matches_cpu("gather empty", [](const auto& in) { return gather(in[0], 1, in[1]); },
                         {randn({3, 4}), zeros({3, 0}, {.dtype = i64})});
}

TEST_CASE("[cuda] scatter_add matches the CPU along every dim, with a larger src") {
  if (skip_without_gpu()) return;
  for (DType dtype : {f32, f64}) {
    CAPTURE(dtype_name(dtype));
    const Tensor x = randn({4, 5, 3}, {.dtype = dtype});
    for (int64_t dim : {0, 1, 2}) {
      CAPTURE(dim);
      const Tensor index = randint(0, x.shape()[dim], {dim == 0 ? 7 : 3, dim == 1 ? 7 : 4, dim == 2 ? 7 : 2});
      // src is larger than index in every dim: its extra elements get a zero gradient.
      const Tensor src = randn({8, 8, 8}, {.dtype = dtype});
      check_cuda_matches_cpu(
          "scatter_add", [&](const auto& in) { return scatter_add(in[0], dim, in[1], in[2]); }, {x, index, src});
      check_cuda_matches_cpu(
          "scatter_add strided src",
          [&](const auto& in) { return scatter_add(in[0], dim, in[1], in[2].transpose(0, 2)); }, {x, index, src});
    }
  }
  // One line of 1000 additions into 3 elements: many repeats in one thread's line.
  check_cuda_matches_cpu("scatter_add long line", [](const auto& in) { return scatter_add(in[0], 0, in[1], in[2]); },
                         {randn({3}), randint(0, 3, {1000}), randn({1000})});
}

TEST_CASE("[cuda] an out-of-range index is a kiln::Error at the next synchronisation") {
  if (skip_without_gpu()) return;
  const Tensor bad = from_vector<int64_t>({0, 3, 11, 1}).to(kGpu);
  const Tensor x = randn({4, 6}).to(kGpu);
  // The ops only queue a check kernel (no host round trip); the copy to the CPU reports it.
  const auto read = [](const Tensor& t) { return t.to(Device::cpu()); };
  CHECK_THROWS_KILN(read(index_select(x, 0, bad)), "index_select: index 11 at position 2 is out of range [0, 4)");
  CHECK_THROWS_KILN(read(embedding(bad, x)),
                    "embedding: index 11 at position 2 is out of range [0, 4) for dim 0 of weight f32[4, 6]@cuda:0");
  CHECK_THROWS_KILN(read(gather(x, 1, bad.view({1, 4}))), "gather: index 11 at position 2 is out of range [0, 6)");
  CHECK_THROWS_KILN(read(scatter_add(x, 0, bad.view({4, 1}), x)), "scatter_add: index 11 at position 2");
  CHECK_THROWS_KILN(read(index_select(x, 0, from_vector<int64_t>({-1}).to(kGpu))), "index -1 at position 0");
  // Several bad values, in any order of the GPU's threads: the lowest position is named,
  // as on the CPU.
  const Tensor several_bad = from_vector<int64_t>({0, 9, 1, -3, 7}).to(kGpu);
  CHECK_THROWS_KILN(read(index_select(x, 0, several_bad)), "index_select: index 9 at position 1 is out of range");
  // Waiting for a cuda::Event is a host wait too.
  cuda::Event done(kGpu.index);
  (void)embedding(bad, x);
  done.record();
  CHECK_THROWS_KILN(done.synchronize(), "embedding: index 11 at position 2");
  // Meanwhile the kernels skipped the bad entries: memory is intact, and once reported the
  // device is clean again (the same ops on good indices give the CPU's values).
  const Tensor good = from_vector<int64_t>({0, 3, 2, 1});
  CHECK(exact_values(index_select(x, 0, good.to(kGpu))) == exact_values(index_select(read(x), 0, good)));
  // An embedding whose backward runs before anything is read: still only a report.
  const Tensor w = randn({4, 3}).to(kGpu).requires_grad_();
  sum(embedding(bad, w)).backward();
  CHECK_THROWS_KILN(read(w.grad()), "embedding: index 11 at position 2");
  // Mixed devices are refused before anything runs.
  CHECK_THROWS_KILN(index_select(x, 0, from_vector<int64_t>({0})), "index_select");
}

// ---- dropout ----------------------------------------------------------------------------

TEST_CASE("[cuda] dropout draws the CPU's mask for the same seed, at every size") {
  if (skip_without_gpu()) return;
  for (DType dtype : {f32, f64}) {
    CAPTURE(dtype_name(dtype));
    // Sizes around the 4 elements of a Philox block, and one over many CUDA blocks.
    for (int64_t n : {1, 3, 4, 5, 1027, 300001}) {
      CAPTURE(n);
      for (double p : {0.1, 0.5, 1.0}) {
        CAPTURE(p);
        const Tensor x = randn({n}, {.dtype = dtype}).requires_grad_();
        const Tensor x_gpu = x.to(kGpu).detach().requires_grad_();
        manual_seed(77);
        const Tensor y_cpu = dropout(x, p, true);
        manual_seed(77);
        const Tensor y_gpu = dropout(x_gpu, p, true);
        REQUIRE(y_gpu.device() == kGpu);
        CHECK(exact_values(y_gpu) == exact_values(y_cpu));
        // The gradient is the upstream gradient times the same scaled mask: one rounding.
        const Tensor g = randn({n}, {.dtype = dtype});
        y_cpu.backward(g);
        y_gpu.backward(g.to(kGpu));
        CHECK(exact_values(x_gpu.grad()) == exact_values(x.grad()));
      }
    }
  }
}

TEST_CASE("[cuda] dropout of a strided and of an empty tensor, and its identities") {
  if (skip_without_gpu()) return;
  const Tensor x = randn({6, 9});
  manual_seed(5);
  const Tensor y_cpu = dropout(x.t(), 0.4, true);
  manual_seed(5);
  const Tensor y_gpu = dropout(x.to(kGpu).t(), 0.4, true);
  CHECK(exact_values(y_gpu) == exact_values(y_cpu));
  CHECK(dropout(zeros({0, 3}).to(kGpu), 0.5, true).shape() == Shape{0, 3});
  const Tensor on_gpu = x.to(kGpu);
  CHECK(dropout(on_gpu, 0.5, /*training=*/false).is_same(on_gpu));
  CHECK(dropout(on_gpu, 0.0, true).is_same(on_gpu));
}

// ---- shape ops --------------------------------------------------------------------------

TEST_CASE("[cuda] cat and stack match the CPU along every dim, strided and empty inputs included") {
  if (skip_without_gpu()) return;
  for (DType dtype : {f32, f64}) {
    CAPTURE(dtype_name(dtype));
    for (int64_t dim : {0, 1, 2}) {
      CAPTURE(dim);
      Shape a = {3, 5, 2}, b = {3, 5, 2}, c = {3, 5, 2};
      a[dim] = 1;
      b[dim] = 4;
      c[dim] = 0;
      // The second input is a transposed view: it goes through the strided copy.
      Shape b_transposed = {b[2], b[1], b[0]};
      check_cuda_matches_cpu(
          "cat", [&](const auto& in) { return cat({in[0], in[1].transpose(0, 2), in[2]}, dim); },
          {randn(a, {.dtype = dtype}), randn(b_transposed, {.dtype = dtype}), randn(c, {.dtype = dtype})});
      check_cuda_matches_cpu(
          "stack", [&](const auto& in) { return stack({in[0], in[1].t(), in[2]}, dim); },
          {randn({3, 7}, {.dtype = dtype}), randn({7, 3}, {.dtype = dtype}), randn({3, 7}, {.dtype = dtype})});
    }
  }
  check_cuda_matches_cpu("cat i64", [](const auto& in) { return cat({in[0], in[1]}, 1); },
                         {randint(0, 9, {2, 3}), randint(0, 9, {2, 5})});
}

TEST_CASE("[cuda] split and chunk pieces match the CPU, forward and backward") {
  if (skip_without_gpu()) return;
  for (int64_t piece : {0, 1, 2}) {
    CAPTURE(piece);
    check_cuda_matches_cpu(
        "split sizes", [&](const auto& in) { return split(in[0], std::vector<int64_t>{2, 0, 5}, 1)[piece]; },
        {randn({3, 7, 2})});
    check_cuda_matches_cpu("split size", [&](const auto& in) { return split(in[0].t(), 3, 0)[piece]; },
                           {randn({5, 7})});
    check_cuda_matches_cpu("chunk", [&](const auto& in) { return chunk(in[0], 3, -1)[piece]; },
                           {randn({2, 4, 7}, {.dtype = f64})});
  }
}

TEST_CASE("[cuda] pad matches the CPU: padding, cropping, values and strided inputs") {
  if (skip_without_gpu()) return;
  const std::vector<std::vector<int64_t>> cases = {{1, 2}, {0, 0, 3, 1}, {-1, 2, 2, -1}, {1, 1, 1, 1, 1, 1}, {-2, -3}};
  for (DType dtype : {f32, f64}) {
    CAPTURE(dtype_name(dtype));
    for (const auto& pads : cases) {
      CAPTURE(pads.size());
      check_cuda_matches_cpu("pad", [&](const auto& in) { return pad(in[0], pads, 0.0); },
                             {randn({2, 3, 5}, {.dtype = dtype})});
      check_cuda_matches_cpu("pad strided, value 1.5",
                             [&](const auto& in) { return pad(in[0].transpose(0, 2), pads, 1.5); },
                             {randn({5, 3, 2}, {.dtype = dtype})});
    }
  }
  check_cuda_matches_cpu("pad empty", [](const auto& in) { return pad(in[0], {2, 1}, -1.0); }, {randn({3, 0})});
}
