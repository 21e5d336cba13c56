// matmul, bmm and linear on CUDA (cuBLAS through cuda/blas.h) against the CPU ops:
// outputs and gradients, for every case the CPU op supports (vectors, broadcast batches,
// transposed and strided views, the folded nn::Linear case, empty sizes). Skipped with
// the reason when no GPU is visible.
#include "cuda_parity.h"
#include "kiln/core/profiler.h"
#include "kiln/cuda/event.h"

using namespace kiln;
using kiln::testing::check_cuda_matches_cpu;
using kiln::testing::ParityTolerance;
using kiln::testing::skip_without_gpu;

namespace {

// f32 GEMMs sum k products in a different order on the GPU.
ParityTolerance tolerance(DType dtype) {
  return dtype == f64 ? ParityTolerance{1e-12, 1e-10} : ParityTolerance{1e-4, 1e-4};
}

Tensor matmul_of(const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }

}  // namespace

TEST_CASE("[cuda] matmul matches the CPU for vectors, matrices and batches, f32 and f64") {
  if (skip_without_gpu()) return;
  struct Case {
    Shape a, b;
  };
  const std::vector<Case> cases = {
      {{37}, {37}},                   // dot product
      {{13}, {13, 29}},               // vector x matrix
      {{37, 53}, {53}},               // matrix x vector
      {{37, 53}, {53, 29}},           // plain, odd sizes
      {{1, 1}, {1, 1}},               // one element
      {{2, 3, 5, 7}, {2, 3, 7, 4}},   // batched
      {{2, 1, 5, 7}, {1, 3, 7, 4}},   // broadcast batches on both sides
      {{3, 5, 7}, {7, 4}},            // a plain matrix on the right: folded into one GEMM
      {{7}, {2, 3, 7, 4}},            // a vector against a batch
      {{2, 3, 5, 7}, {7}},            // a batch against a vector
      {{5, 7}, {4, 7, 3}},            // a matrix broadcast over b's batch
      {{3, 70, 300}, {3, 300, 65}},   // larger than one cuBLAS tile
  };
  for (DType dtype : {f32, f64}) {
    for (const Case& c : cases) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(shape_str(c.a));
      CAPTURE(shape_str(c.b));
      check_cuda_matches_cpu("matmul", matmul_of, {randn(c.a, {.dtype = dtype}), randn(c.b, {.dtype = dtype})},
                             tolerance(dtype));
    }
  }
}

TEST_CASE("[cuda] matmul reads transposed and strided views: in place or through a copy") {
  if (skip_without_gpu()) return;
  for (DType dtype : {f32, f64}) {
    CAPTURE(dtype_name(dtype));
    const TensorOptions o{.dtype = dtype};
    // Transposed operands (column-major matrices) are read in place by cuBLAS.
    check_cuda_matches_cpu(
        "a^T b^T", [](const auto& in) { return matmul(in[0].transpose(-1, -2), in[1].transpose(-1, -2)); },
        {randn({2, 53, 37}, o), randn({2, 29, 53}, o)}, tolerance(dtype));
    // Batch dims that do not merge (a permuted batch) split the batch into several runs.
    check_cuda_matches_cpu(
        "permuted batch", [](const auto& in) { return matmul(in[0].permute({1, 0, 2, 3}), in[1]); },
        {randn({3, 2, 5, 7}, o), randn({2, 3, 7, 4}, o)}, tolerance(dtype));
    // A broadcast operand expanded explicitly (stride 0) is read in place, never copied.
    check_cuda_matches_cpu(
        "expanded", [](const auto& in) { return matmul(in[0], in[1].expand({4, 7, 6})); },
        {randn({4, 5, 7}, o), randn({1, 7, 6}, o)}, tolerance(dtype));
    // Every other column: neither row- nor column-major, so copied first.
    check_cuda_matches_cpu(
        "strided", [](const auto& in) { return matmul(in[0].slice(1, 0, 14, 2), in[1]); },
        {randn({5, 14}, o), randn({7, 3}, o)}, tolerance(dtype));
    // Rows of a larger matrix: the leading dim is not the row length.
    check_cuda_matches_cpu(
        "narrowed", [](const auto& in) { return matmul(in[0].narrow(2, 2, 7), in[1]); },
        {randn({3, 5, 11}, o), randn({7, 4}, o)}, tolerance(dtype));
  }
}

TEST_CASE("[cuda] matmul of empty sizes: zero rows, zero columns, an empty batch, k = 0") {
  if (skip_without_gpu()) return;
  check_cuda_matches_cpu("m = 0", matmul_of, {randn({0, 5}), randn({5, 3})});
  check_cuda_matches_cpu("n = 0", matmul_of, {randn({4, 5}), randn({5, 0})});
  check_cuda_matches_cpu("batch = 0", matmul_of, {randn({0, 4, 5}), randn({0, 5, 3})});
  // An empty sum: zeros, not whatever the allocator's block held.
  check_cuda_matches_cpu("k = 0", matmul_of, {randn({4, 0}), randn({0, 3})});
  check_cuda_matches_cpu("k = 0, batched", matmul_of, {randn({2, 4, 0}), randn({2, 0, 3})});
}

TEST_CASE("[cuda] bmm matches the CPU, forward and gradients") {
  if (skip_without_gpu()) return;
  for (DType dtype : {f32, f64}) {
    CAPTURE(dtype_name(dtype));
    const TensorOptions o{.dtype = dtype};
    check_cuda_matches_cpu("bmm", [](const auto& in) { return bmm(in[0], in[1]); },
                           {randn({3, 17, 9}, o), randn({3, 9, 23}, o)}, tolerance(dtype));
    check_cuda_matches_cpu(
        "bmm of transposed", [](const auto& in) { return bmm(in[0], in[1].transpose(1, 2)); },
        {randn({3, 17, 9}, o), randn({3, 23, 9}, o)}, tolerance(dtype));
  }
}

TEST_CASE("[cuda] linear matches the CPU with and without a bias, for 1-D, 2-D and 3-D inputs") {
  if (skip_without_gpu()) return;
  for (DType dtype : {f32, f64}) {
    CAPTURE(dtype_name(dtype));
    const TensorOptions o{.dtype = dtype};
    for (const Shape& x : {Shape{19}, Shape{37, 19}, Shape{2, 37, 19}}) {
      CAPTURE(shape_str(x));
      check_cuda_matches_cpu("linear + bias", [](const auto& in) { return linear(in[0], in[1], in[2]); },
                             {randn(x, o), randn({23, 19}, o), randn({23}, o)}, tolerance(dtype));
      check_cuda_matches_cpu("linear", [](const auto& in) { return linear(in[0], in[1]); },
                             {randn(x, o), randn({23, 19}, o)}, tolerance(dtype));
    }
    // An input whose rows are not contiguous across the batch (a transposed view).
    check_cuda_matches_cpu(
        "linear of a transposed input", [](const auto& in) { return linear(in[0].transpose(0, 1), in[1], in[2]); },
        {randn({37, 2, 19}, o), randn({23, 19}, o), randn({23}, o)}, tolerance(dtype));
  }
  // No input features: the output is the bias on every row.
  check_cuda_matches_cpu("linear, in = 0", [](const auto& in) { return linear(in[0], in[1], in[2]); },
                         {randn({4, 0}), randn({3, 0}), randn({3})});
}

TEST_CASE("[cuda] matmul with TF32 allowed stays close to the f32 result") {
  if (skip_without_gpu()) return;
  const bool was = cuda::allow_tf32();
  cuda::set_allow_tf32(true);
  // TF32 keeps 10 mantissa bits: relative error about 1e-3 per product.
  check_cuda_matches_cpu("tf32", matmul_of, {randn({64, 128}), randn({128, 48})}, {5e-2, 1e-2});
  cuda::set_allow_tf32(was);
}

TEST_CASE("[cuda] matmul refuses operands on different devices") {
  if (skip_without_gpu()) return;
  const Tensor a = randn({2, 3}), b = randn({3, 4}).to(Device::cuda());
  CHECK_THROWS_KILN(matmul(a, b), "matmul: tensors are on different devices");
  CHECK_THROWS_KILN(bmm(a.unsqueeze(0), b.unsqueeze(0)), "bmm: tensors are on different devices");
  CHECK_THROWS_KILN(linear(b, b, a.select(0, 0)), "linear: tensors are on different devices");
}

TEST_CASE("[cuda] the profiler times the GPU work an op queued, not its launch") {
  if (skip_without_gpu()) return;
  const Device gpu = Device::cuda();
  const Tensor a = randn({2048, 2048}).to(gpu), b = randn({2048, 2048}).to(gpu);
  (void)matmul(a, b);  // warm-up: cuBLAS handle, cached blocks
  cuda::synchronize(gpu.index);
  cuda::Event start(gpu.index), stop(gpu.index);
  start.record();
  (void)matmul(a, b);
  stop.record();
  const double gpu_ms = start.elapsed_ms(stop);  // ~0.3 ms on an H100; the launch is ~0.01 ms
  profiler::reset();
  profiler::set_enabled(true);
  (void)matmul(a, b);
  profiler::set_enabled(false);
  double profiled_ms = 0;
  for (const profiler::Entry& e : profiler::entries())
    if (e.name == "matmul" && e.pass == profiler::Pass::forward) profiled_ms = e.seconds * 1e3;
  profiler::reset();
  CAPTURE(gpu_ms);
  CHECK(profiled_ms >= 0.8 * gpu_ms);
}
