// CUDA tensors: moving data to and from the GPU (Tensor::to, clone, contiguous), the
// caching allocator (cuda/memory.h) and cuBLAS's row-major GEMM (cuda/blas.h). GPU cases
// skip with a printed reason when no GPU is visible; CPU-only builds check the errors.
#include "helpers.h"

#include <kiln/cuda/device.h>
#include <kiln/cuda/event.h>
#include <kiln/cuda/memory.h>

#ifdef KILN_WITH_CUDA
#include <kiln/cuda/blas.h>
#endif

using namespace kiln;
using kiln::testing::check_close;

namespace {

// True, after printing why, when a GPU case has no GPU to run on.
bool skip_without_gpu() {
  if (cuda::is_available()) return false;
  MESSAGE("skipped: ", cuda::unavailable_reason());
  return true;
}

// True, after printing why, when KILN_CUDA_NO_CACHING turned the cache off (cuda/memory.h).
bool skip_without_cache() {
  if (cuda::caching_enabled()) return false;
  MESSAGE("skipped: KILN_CUDA_NO_CACHING is set, so there is no cache to reach a steady state");
  return true;
}

}  // namespace

TEST_CASE("[cuda] moving a tensor to a missing GPU is a clear error") {
  const Tensor x = ones({2, 3});
  if (!cuda::is_built()) {
    CHECK_THROWS_KILN(x.to(Device::cuda()), "to: cannot move f32[2, 3] from cpu to cuda:0: kiln was built without CUDA");
    CHECK_THROWS_KILN(empty({4}, {.device = Device::cuda()}), "cannot allocate 16 bytes on cuda:0: kiln was built without CUDA");
    CHECK(cuda::memory_stats().reserved == 0);
    return;
  }
  const int count = cuda::device_count();
  const std::string missing = "cuda:" + std::to_string(count) + " is not available: " + std::to_string(count);
  CHECK_THROWS_KILN(x.to(Device::cuda(count)), missing.c_str());
  CHECK_THROWS_KILN(x.to(Device::cuda(-1)), "cuda:-1 is not available");
}

TEST_CASE("[cuda] to(cuda) and back gives the same values, for every dtype and layout") {
  if (skip_without_gpu()) return;
  const Device gpu = Device::cuda();
  for (DType dtype : {f32, f64, i64}) {
    CAPTURE(dtype_name(dtype));
    const Tensor x = arange(0, 2 * 3 * 5, 1, {.dtype = dtype}).view({2, 3, 5});
    const Tensor on_gpu = x.to(gpu);
    CHECK(on_gpu.device() == gpu);
    CHECK(on_gpu.shape() == x.shape());
    CHECK(on_gpu.dtype() == dtype);
    CHECK(on_gpu.to(Device::cpu()).to_vector<double>() == x.to_vector<double>());
    // Strided on the CPU side (made contiguous before the copy) ...
    const Tensor permuted = x.permute({2, 0, 1});
    CHECK(permuted.to(gpu).to(Device::cpu()).to_vector<double>() == permuted.to_vector<double>());
    // ... and on the GPU side (gathered by the strided-copy kernel).
    const Tensor sliced = x.slice(2, 1, 5, 2);
    CHECK(on_gpu.slice(2, 1, 5, 2).to(Device::cpu()).to_vector<double>() == sliced.to_vector<double>());
    CHECK(on_gpu.permute({2, 0, 1}).contiguous().to(Device::cpu()).to_vector<double>() ==
          permuted.to_vector<double>());
  }
  // Ten dims, two of them swapped: the copy kernel takes 8 dims, but the dims that stay
  // in order merge, leaving three.
  const Tensor ten = arange(0, 1024, 1, {.dtype = f32}).view(Shape(10, 2));
  CHECK(ten.to(gpu).transpose(3, 4).contiguous().to(Device::cpu()).to_vector<double>() ==
        ten.transpose(3, 4).contiguous().to_vector<double>());
}

TEST_CASE("[cuda] empty and 0-d tensors cross devices") {
  if (skip_without_gpu()) return;
  const Tensor none = zeros({0, 4}).to(Device::cuda()).to(Device::cpu());
  CHECK(none.shape() == Shape{0, 4});
  CHECK(scalar_tensor(2.5).to(Device::cuda()).to(Device::cpu()).item<double>() == 2.5);
}

TEST_CASE("[cuda] clone on the GPU is a deep copy") {
  if (skip_without_gpu()) return;
  const Tensor x = randn({7, 9}).to(Device::cuda());
  const Tensor y = x.t().clone();
  CHECK(y.device() == Device::cuda());
  CHECK(y.is_contiguous());
  check_close(y.to(Device::cpu()), x.to(Device::cpu()).t(), 0, 0);
  CHECK(y.raw_data() != x.raw_data());
}

TEST_CASE("[cuda] gradients flow back across to(device)") {
  if (skip_without_gpu()) return;
  const Tensor x = randn({3, 4}, {.dtype = f64}).requires_grad_();
  // sum() runs on the CPU: the GPU part is the round trip, whose backward is two copies.
  const Tensor y = x.to(Device::cuda()).to(Device::cpu());
  sum(y * 3.0).backward();
  REQUIRE(x.grad().defined());
  CHECK(x.grad().device() == Device::cpu());
  kiln::testing::check_values(x.grad(), std::vector<double>(12, 3.0), 0, 0);
}

TEST_CASE("[cuda] the caching allocator reuses freed blocks and keeps exact figures") {
  if (skip_without_gpu()) return;
  cuda::empty_cache();
  const cuda::MemoryStats before = cuda::memory_stats();
  if (!cuda::caching_enabled()) {
    // KILN_CUDA_NO_CACHING: exact sizes, each a new allocation, given back when freed.
    for (int round = 1; round <= 2; ++round) {
      CAPTURE(round);
      {
        const Tensor a = empty({1000}, {.device = Device::cuda()});
        const cuda::MemoryStats during = cuda::memory_stats();
        CHECK(during.allocated - before.allocated == 4000);
        CHECK(during.reserved - before.reserved == 4000);
      }
      const cuda::MemoryStats freed = cuda::memory_stats();
      CHECK(freed.allocated == before.allocated);
      CHECK(freed.reserved == before.reserved);
      CHECK(freed.device_allocs == before.device_allocs + round);
      CHECK(freed.cache_hits == before.cache_hits);
    }
    return;
  }
  {
    // 1000 floats round up to the 4096-byte class (multiples of 512 below 1 MiB).
    const Tensor a = empty({1000}, {.device = Device::cuda()});
    const cuda::MemoryStats during = cuda::memory_stats();
    CHECK(during.allocated - before.allocated == 4096);
    CHECK(during.peak_allocated >= during.allocated);
  }
  const cuda::MemoryStats freed = cuda::memory_stats();
  CHECK(freed.allocated == before.allocated);
  CHECK(freed.reserved - before.reserved == 4096);  // cached, not returned

  // The same size again: served from the cache, no cudaMalloc.
  { const Tensor b = empty({1000}, {.device = Device::cuda()}); }
  const cuda::MemoryStats again = cuda::memory_stats();
  CHECK(again.device_allocs == freed.device_allocs);
  CHECK(again.cache_hits == freed.cache_hits + 1);

  cuda::empty_cache();
  CHECK(cuda::memory_stats().reserved == cuda::memory_stats().allocated);
}

TEST_CASE("[cuda] a loop that allocates the same sizes reaches a steady reserved size") {
  if (skip_without_gpu() || skip_without_cache()) return;
  const Tensor host = randn({64, 257});
  int64_t reserved_after_first = -1, allocs_after_first = -1;
  for (int step = 0; step < 20; ++step) {
    const Tensor x = host.to(Device::cuda());
    const Tensor y = x.t().contiguous();
    const Tensor z = y.to(Device::cpu());
    CHECK(z.shape() == Shape{257, 64});
    if (step == 0) {
      reserved_after_first = cuda::memory_stats().reserved;
      allocs_after_first = cuda::memory_stats().device_allocs;
    }
  }
  CHECK(cuda::memory_stats().reserved == reserved_after_first);
  CHECK(cuda::memory_stats().device_allocs == allocs_after_first);
}

TEST_CASE("[cuda] running out of GPU memory is a kiln::Error with the figures, and leaves the allocator usable") {
  if (skip_without_gpu()) return;
  // 2^50 bytes (a PiB) exceeds any GPU.
  CHECK_THROWS_KILN(empty({int64_t(1) << 48}, {.device = Device::cuda()}),
                    "CUDA out of memory: tried to allocate 1048576.0 GiB on cuda:0");
  const Tensor after = ones({3}).to(Device::cuda());
  CHECK(after.to(Device::cpu()).to_vector<float>() == std::vector<float>{1, 1, 1});
}

#ifdef KILN_WITH_CUDA

namespace {

// Row-major C = alpha op(A) op(B) + beta C on the CPU in f64, the reference.
std::vector<double> reference_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha,
                                   const std::vector<double>& A, const std::vector<double>& B, double beta,
                                   std::vector<double> C) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t p = 0; p < k; ++p) acc += A[ta ? p * m + i : i * k + p] * B[tb ? j * k + p : p * n + j];
      C[i * n + j] = alpha * acc + beta * C[i * n + j];
    }
  return C;
}

template <class T>
void check_gemm_against_cpu(DType dtype, double tolerance) {
  const int64_t batch = 3, m = 37, n = 53, k = 29;  // odd sizes: no tile divides them
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      CAPTURE(ta);
      CAPTURE(tb);
      const Tensor A = randn({batch, ta ? k : m, ta ? m : k}, {.dtype = dtype});
      const Tensor B = randn({batch, tb ? n : k, tb ? k : n}, {.dtype = dtype});
      const Tensor C = randn({batch, m, n}, {.dtype = dtype});
      const Tensor dA = A.to(Device::cuda()), dB = B.to(Device::cuda()), dC = C.to(Device::cuda());
      cuda::gemm_strided_batched<T>(0, ta, tb, m, n, k, T(0.5), dA.data<T>(), ta ? m : k, m * k, dB.data<T>(),
                                    tb ? k : n, k * n, T(2), dC.data<T>(), n, m * n, batch);
      const std::vector<double> got = dC.to(Device::cpu()).to_vector<double>();
      for (int64_t b = 0; b < batch; ++b) {
        const std::vector<double> expected =
            reference_gemm(ta, tb, m, n, k, 0.5, A.select(0, b).contiguous().to_vector<double>(),
                           B.select(0, b).contiguous().to_vector<double>(), 2.0,
                           C.select(0, b).contiguous().to_vector<double>());
        double worst = 0;
        for (int64_t i = 0; i < m * n; ++i)
          worst = std::max(worst, std::fabs(got[b * m * n + i] - expected[i]) / (1 + std::fabs(expected[i])));
        CHECK_MESSAGE(worst <= tolerance, "batch ", b, ": worst relative error ", worst);
      }
    }
}

}  // namespace

TEST_CASE("[cuda] cuBLAS gemm in kiln's row-major convention matches the CPU (f32, f64, all transposes)") {
  if (skip_without_gpu()) return;
  check_gemm_against_cpu<float>(f32, 1e-5);
  check_gemm_against_cpu<double>(f64, 1e-12);
  cuda::set_allow_tf32(true);
  check_gemm_against_cpu<float>(f32, 1e-2);  // TF32: 10-bit mantissa inputs
  cuda::set_allow_tf32(false);
}

#endif

TEST_CASE("[cuda] events time GPU work on kiln's stream") {
  if (!cuda::is_built()) {
    CHECK_THROWS_KILN(cuda::Event(0), "kiln was built without CUDA");
    return;
  }
  if (skip_without_gpu()) return;
  const Tensor a = randn({512, 512}).to(Device::cuda());
  cuda::Event start(0), stop(0);
  start.record();
  Tensor product = matmul(a, a);
  for (int i = 0; i < 4; ++i) product = matmul(product, a) * 0.01;
  stop.record();
  const double ms = start.elapsed_ms(stop);
  CHECK(ms > 0);
  CHECK(ms < 10000);
  stop.synchronize();  // already complete: returns at once
}
