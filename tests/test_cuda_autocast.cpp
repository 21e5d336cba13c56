// bf16 mixed precision (core/autocast.h): inside an AutocastGuard, matrix products and
// attention of f32 CUDA tensors run in bf16 on tensor cores and hand back f32; outside it,
// or on the CPU, nothing changes.
#include "cuda_parity.h"

#include <algorithm>
#include <thread>

using namespace kiln;
using kiln::testing::check_close;
using kiln::testing::skip_without_gpu;

namespace {

// What the tensor cores multiply: t rounded to bf16, as f32 on the CPU.
Tensor bf16_rounded(const Tensor& t) { return t.to(Device::cpu()).to(bf16).to(f32); }

}  // namespace

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

  // More precisely: the exact products of the bf16-rounded operands, summed in f32 and not
  // rounded afterwards, i.e. the f32 linear of the rounded tensors up to the order of the sums.
  const Tensor cpu_bias = bias.to(Device::cpu()).detach();
  check_close(mixed.to(Device::cpu()), linear(bf16_rounded(x), bf16_rounded(w), cpu_bias), 1e-4, 1e-4);

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
  // The gradients the same way: the upstream gradient rounded to bf16 meets the rounded
  // operands; the bias gradient sums the unrounded upstream gradient.
  const Tensor g16 = bf16_rounded(upstream).reshape({64, 48});
  check_close(approx[0].to(Device::cpu()), matmul(g16, bf16_rounded(w)).reshape(x.shape()), 1e-4, 1e-4);
  check_close(approx[1].to(Device::cpu()), matmul(g16.t(), bf16_rounded(x).reshape({64, 96})), 1e-4, 1e-4);
  check_close(approx[2].to(Device::cpu()), sum(upstream.to(Device::cpu()).reshape({64, 48}), {0}), 1e-5, 1e-5);
  // matmul with a broadcast batch, both gradients: the same rule.
  {
    const Tensor a = randn({3, 5, 8}).to(gpu).requires_grad_(), b = randn({8, 6}).to(gpu).requires_grad_();
    Tensor c;
    {
      AutocastGuard bf16_products;
      c = matmul(a, b);
    }
    const Tensor gc = randn({3, 5, 6});
    const std::vector<Tensor> g = grad({sum(c * gc.to(gpu))}, {a, b});
    check_close(c.to(Device::cpu()), matmul(bf16_rounded(a), bf16_rounded(b)), 1e-4, 1e-4);
    check_close(g[0].to(Device::cpu()), matmul(bf16_rounded(gc), bf16_rounded(b).t()), 1e-4, 1e-4);
    check_close(g[1].to(Device::cpu()), matmul(bf16_rounded(a).reshape({15, 8}).t(), bf16_rounded(gc).reshape({15, 6})),
                1e-4, 1e-4);
  }
  // Sums of no terms (k = 0), which no GEMM writes: zeros, or the bias; a gradient of an
  // operand with no rows, zeros too.
  {
    AutocastGuard bf16_products;
    check_close(matmul(randn({4, 0}).to(gpu), randn({0, 3}).to(gpu)).to(Device::cpu()), zeros({4, 3}), 0, 0);
    const Tensor b3 = randn({3});
    check_close(linear(randn({4, 0}).to(gpu), randn({3, 0}).to(gpu), b3.to(gpu)).to(Device::cpu()),
                b3.reshape({1, 3}).expand({4, 3}), 0, 0);
    const Tensor b = randn({5, 3}).to(gpu).requires_grad_();
    const Tensor c = matmul(randn({0, 5}).to(gpu), b);
    check_close(grad({sum(c)}, {b})[0].to(Device::cpu()), zeros({5, 3}), 0, 0);
  }
  // Double backward through a bf16 product is refused, not silently wrong.
  {
    const Tensor a = randn({4, 4}).to(gpu).requires_grad_();
    Tensor c;
    {
      AutocastGuard bf16_products;
      c = matmul(a, a);
    }
    CHECK_THROWS_KILN(grad({sum(c)}, {a}, {.create_graph = true}), "double backward (create_graph)");
  }

  AutocastGuard bf16_products;
  const Tensor q = randn({2, 5, 7}).to(gpu), k = randn({2, 9, 7}).to(gpu);
  CHECK(matmul(q, k.transpose(1, 2)).dtype() == f32);
  CHECK(bmm(q, k.transpose(1, 2)).dtype() == f32);
  CHECK(matmul(q.to(f64), k.to(f64).transpose(1, 2)).dtype() == f64);  // only f32 is converted
}

namespace {

// max |a - b| over all elements, a and b on any device.
double max_abs_diff(const Tensor& a, const Tensor& b) {
  return kiln::max(kiln::abs(a.to(Device::cpu()) - b.to(Device::cpu()))).item<double>();
}

// scaled_dot_product_attention on the GPU under autocast (outputs and q, k, v gradients for
// `upstream`) against the CPU's f32 kernels on bf16-rounded q, k, v and upstream: the
// tensor cores see exactly those values, so what differs is the rounding of the
// probabilities and score gradients inside the kernels (relative 2^-9 each).
void check_bf16_attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& options) {
  const Device gpu = Device::cuda();
  const Tensor qg = q.to(gpu).requires_grad_(), kg = k.to(gpu).requires_grad_(), vg = v.to(gpu).requires_grad_();
  Tensor out;
  {
    AutocastGuard bf16_attention;
    out = scaled_dot_product_attention(qg, kg, vg, options);
  }
  CHECK(out.dtype() == f32);
  CHECK(out.device() == gpu);
  const Tensor qr = bf16_rounded(q).requires_grad_(), kr = bf16_rounded(k).requires_grad_(),
               vr = bf16_rounded(v).requires_grad_();
  AttentionOptions cpu_options = options;
  if (options.mask.defined()) cpu_options.mask = options.mask.to(Device::cpu());
  const Tensor expected = scaled_dot_product_attention(qr, kr, vr, cpu_options);
  check_close(out.to(Device::cpu()), expected, 1e-2, 1e-2);

  const Tensor upstream = randn(out.shape());
  const std::vector<Tensor> got = grad({sum(out * upstream.to(gpu))}, {qg, kg, vg});
  const std::vector<Tensor> want = grad({sum(expected * bf16_rounded(upstream))}, {qr, kr, vr});
  for (size_t i = 0; i < got.size(); ++i) {
    CAPTURE(i);
    CHECK(got[i].dtype() == f32);
    const double scale = kiln::max(kiln::abs(want[i])).item<double>();
    check_close(got[i].to(Device::cpu()), want[i], 3e-2 * scale, 2e-2);
  }
}

}  // namespace

TEST_CASE("[cuda] under autocast, attention runs on bf16 tensor cores: f32 in and out, f32 gradients") {
  if (skip_without_gpu()) return;
  manual_seed(10);
  // Head dims padded to 32 / 64 / 128 inside (40 and 24 exercise the zero padding), D != Dv,
  // lengths that are not multiples of the 64-row tiles, Lq != Lk, causal or not.
  check_bf16_attention(randn({2, 3, 100, 64}), randn({2, 3, 100, 64}), randn({2, 3, 100, 64}), {.causal = true});
  check_bf16_attention(randn({1, 2, 33, 40}), randn({1, 2, 70, 40}), randn({1, 2, 70, 24}), {});
  check_bf16_attention(randn({1, 1, 129, 128}), randn({1, 1, 65, 128}), randn({1, 1, 65, 128}), {.causal = true});
  check_bf16_attention(randn({3, 17, 16}), randn({3, 17, 16}), randn({3, 17, 16}), {});  // 3-D: one head

  // A key-padding bool mask (the batch of 2 masks its last 10 keys).
  Tensor keep = ones({2, 1, 1, 50}, {.dtype = DType::b8});
  keep.narrow(-1, 40, 10).fill_(0.0);
  manual_seed(11);
  const Tensor q = randn({2, 2, 50, 32}), k = randn({2, 2, 50, 32}), v = randn({2, 2, 50, 32});
  check_bf16_attention(q, k, v, {.mask = keep.to(Device::cuda())});
}

TEST_CASE("[cuda] bf16 attention: dropout, a learned additive mask's gradient, and the f32 fallback above 128") {
  if (skip_without_gpu()) return;
  const Device gpu = Device::cuda();
  manual_seed(12);
  const Tensor q = randn({1, 2, 40, 32}), k = randn({1, 2, 40, 32}), v = randn({1, 2, 40, 32});

  // Dropout: the same seed gives the same mask on both devices and in both precisions.
  {
    manual_seed(13);
    Tensor out;
    {
      AutocastGuard bf16_attention;
      out = scaled_dot_product_attention(q.to(gpu), k.to(gpu), v.to(gpu), {.dropout_p = 0.3});
    }
    manual_seed(13);
    const Tensor expected =
        scaled_dot_product_attention(bf16_rounded(q), bf16_rounded(k), bf16_rounded(v), {.dropout_p = 0.3});
    check_close(out.to(Device::cpu()), expected, 2e-2, 2e-2);
  }

  // An additive bias that requires grad: its gradient is the (f32) score gradient summed.
  {
    const Tensor bias = (randn({40, 40}) * 0.5).to(gpu).requires_grad_();
    Tensor out;
    {
      AutocastGuard bf16_attention;
      out = scaled_dot_product_attention(q.to(gpu), k.to(gpu), v.to(gpu), {.mask = bias});
    }
    const Tensor bias_cpu = bias.detach().to(Device::cpu()).requires_grad_();
    const Tensor expected =
        scaled_dot_product_attention(bf16_rounded(q), bf16_rounded(k), bf16_rounded(v), {.mask = bias_cpu});
    const Tensor upstream = randn(out.shape());
    const Tensor got = grad({sum(out * upstream.to(gpu))}, {bias})[0];
    const Tensor want = grad({sum(expected * bf16_rounded(upstream))}, {bias_cpu})[0];
    check_close(got.to(Device::cpu()), want, 3e-2 * kiln::max(kiln::abs(want)).item<double>(), 2e-2);
  }

  // That the tensor-core kernels ran, not the f32 ones: with scores large enough that the
  // bf16 rounding of q and k matters, the result follows the rounded inputs (the f32 kernels
  // would follow the unrounded ones). Measured with PyTorch at this scale: ~0.007 from the
  // rounded reference, ~0.1 from the unrounded one.
  {
    const Tensor qs = randn({2, 3, 100, 64}) * 3, ks = randn({2, 3, 100, 64}) * 3, vs = randn({2, 3, 100, 64});
    Tensor out;
    {
      AutocastGuard bf16_attention;
      out = scaled_dot_product_attention(qs.to(gpu), ks.to(gpu), vs.to(gpu), {.causal = true});
    }
    const double from_rounded = max_abs_diff(
        out, scaled_dot_product_attention(bf16_rounded(qs), bf16_rounded(ks), bf16_rounded(vs), {.causal = true}));
    const double from_unrounded = max_abs_diff(out, scaled_dot_product_attention(qs, ks, vs, {.causal = true}));
    CAPTURE(from_rounded);
    CAPTURE(from_unrounded);
    CHECK(from_rounded * 4 < from_unrounded);
  }

  // Head dims above 128 keep the f32 kernels under autocast: the very same result.
  {
    const Tensor qw = randn({1, 1, 20, 160}).to(gpu), kw = randn({1, 1, 20, 160}).to(gpu),
                 vw = randn({1, 1, 20, 160}).to(gpu);
    const Tensor f32_result = scaled_dot_product_attention(qw, kw, vw);
    AutocastGuard bf16_attention;
    CHECK(max_abs_diff(scaled_dot_product_attention(qw, kw, vw), f32_result) == 0.0);
  }
}

TEST_CASE("[cuda] bf16 attention edges: rows that see no key, keys no row sees, a causal mask's gradient") {
  if (skip_without_gpu()) return;
  // Each of these writes values no product produces (an output row of 0, dk = dv = 0, a mask
  // gradient of 0 past the causal edge), and fresh GPU memory is not zero.
  manual_seed(14);
  Tensor keep = ones({1, 1, 50, 50}, {.dtype = DType::b8});
  keep.narrow(2, 3, 1).fill_(0.0);  // rows 3 and 40 see no key
  keep.narrow(2, 40, 1).fill_(0.0);
  check_bf16_attention(randn({1, 2, 50, 32}), randn({1, 2, 50, 32}), randn({1, 2, 50, 32}),
                       {.mask = keep.to(Device::cuda())});
  // Causal with more keys than rows: keys 40..129 are seen by no row (two whole 64-key tiles).
  check_bf16_attention(randn({1, 2, 40, 32}), randn({1, 2, 130, 32}), randn({1, 2, 130, 32}), {.causal = true});

  // A learned additive mask under a causal mask: rows 0..63 have a whole key tile past the
  // edge, where the mask's gradient is 0.
  const Device gpu = Device::cuda();
  const Tensor q = randn({1, 2, 100, 32}), k = randn({1, 2, 100, 32}), v = randn({1, 2, 100, 32});
  const Tensor bias = (randn({100, 100}) * 0.5).to(gpu).requires_grad_();
  Tensor out;
  {
    AutocastGuard bf16_attention;
    out = scaled_dot_product_attention(q.to(gpu), k.to(gpu), v.to(gpu), {.mask = bias, .causal = true});
  }
  const Tensor bias_cpu = bias.detach().to(Device::cpu()).requires_grad_();
  const Tensor expected = scaled_dot_product_attention(bf16_rounded(q), bf16_rounded(k), bf16_rounded(v),
                                                       {.mask = bias_cpu, .causal = true});
  const Tensor upstream = randn(out.shape());
  const Tensor got = grad({sum(out * upstream.to(gpu))}, {bias})[0];
  const Tensor want = grad({sum(expected * bf16_rounded(upstream))}, {bias_cpu})[0];
  check_close(got.to(Device::cpu()), want, 3e-2 * kiln::max(kiln::abs(want)).item<double>(), 2e-2);
  const Tensor got_cpu = got.to(Device::cpu());
  double past_edge = 0;  // exactly 0 past the edge: no key there has a score
  for (int64_t i = 0; i + 1 < 100; ++i)
    past_edge = std::max(past_edge, max_abs_diff(got_cpu.narrow(0, i, 1).narrow(1, i + 1, 99 - i), zeros({1, 99 - i})));
  CHECK(past_edge == 0.0);
}
