// bf16 mixed precision (core/autocast.h): inside an AutocastGuard, matrix products of f32
// CUDA tensors run in bf16 on tensor cores and hand back f32; outside it, or on the CPU,
// nothing changes.
#include "cuda_parity.h"

#include <thread>

using namespace kiln;
using kiln::testing::check_close;
using kiln::testing::skip_without_gpu;

TEST_CASE("the autocast guard is per thread, nests, and leaves CPU ops alone") {
  CHECK_FALSE(Autocast::is_enabled());
  {
    AutocastGuard on;
    CHECK(Autocast::is_enabled());
    {
      AutocastGuard off(false);
      CHECK_FALSE(Autocast::is_enabled());
    }
    CHECK(Autocast::is_enabled());
    bool other_thread = true;
    std::thread([&] { other_thread = Autocast::is_enabled(); }).join();
    CHECK_FALSE(other_thread);
    // bf16 is a storage type on the CPU: CPU products are untouched, bit for bit.
    manual_seed(7);
    const Tensor a = randn({5, 8}), b = randn({8, 3});
    const Tensor inside = matmul(a, b);
    AutocastGuard off(false);
    CHECK(inside.dtype() == f32);
    check_close(inside, matmul(a, b), 0, 0);
  }
  CHECK_FALSE(Autocast::is_enabled());
}

TEST_CASE("[cuda] bf16 matrix products on the GPU: f32 accumulation, bf16 rounding") {
  if (skip_without_gpu()) return;
  manual_seed(8);
  // Inputs that are exact in bf16, so the only error is the output's rounding (and the
  // order of the f32 sums): relative 2^-8.
  const Tensor a = randn({3, 37, 64}).to(bf16), b = randn({64, 29}).to(bf16);
  const Tensor expected = matmul(a.to(f32), b.to(f32));
  const Tensor got = matmul(a.to(Device::cuda()), b.to(Device::cuda()));
  CHECK(got.dtype() == bf16);
  check_close(got.to(Device::cpu()).to(f32), expected, 1e-2, 1e-2);
  check_close(bmm(a.to(Device::cuda()), a.to(Device::cuda()).transpose(1, 2)).to(Device::cpu()).to(f32),
              bmm(a.to(f32), a.to(f32).transpose(1, 2)), 5e-2, 1e-2);
}

TEST_CASE("[cuda] under autocast, linear/matmul/bmm take f32 and give f32, with f32 gradients") {
  if (skip_without_gpu()) return;
  manual_seed(9);
  const Device gpu = Device::cuda();
  const Tensor x = randn({4, 16, 96}).to(gpu).requires_grad_(), w = (randn({48, 96}) * 0.1).to(gpu).requires_grad_(),
               bias = randn({48}).to(gpu).requires_grad_();
  const Tensor reference = linear(x, w, bias);
  Tensor mixed;
  {
    AutocastGuard bf16_products;
    mixed = linear(x, w, bias);
  }
  CHECK(mixed.dtype() == f32);
  // bf16 keeps 8 bits of mantissa: each product term is off by ~2^-9 relative.
  check_close(mixed.to(Device::cpu()), reference.to(Device::cpu()), 5e-2, 2e-2);

  const Tensor upstream = randn(mixed.shape()).to(gpu);
  const std::vector<Tensor> exact = grad({sum(reference * upstream)}, {x, w, bias});
  const std::vector<Tensor> approx = grad({sum(mixed * upstream)}, {x, w, bias});
  for (size_t i = 0; i < exact.size(); ++i) {
    CAPTURE(i);
    CHECK(approx[i].dtype() == f32);
    CHECK(approx[i].device() == gpu);
    const double scale = kiln::max(kiln::abs(exact[i])).item<double>();
    check_close(approx[i].to(Device::cpu()), exact[i].to(Device::cpu()), 2e-2 * scale, 2e-2);
  }

  AutocastGuard bf16_products;
  const Tensor q = randn({2, 5, 7}).to(gpu), k = randn({2, 9, 7}).to(gpu);
  CHECK(matmul(q, k.transpose(1, 2)).dtype() == f32);
  CHECK(bmm(q, k.transpose(1, 2)).dtype() == f32);
  CHECK(matmul(q.to(f64), k.to(f64).transpose(1, 2)).dtype() == f64);  // only f32 is converted
}
