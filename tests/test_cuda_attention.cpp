// scaled_dot_product_attention on CUDA (the fused kernels of cuda/attention.*) against the
// CPU op: outputs and the gradients of q, k, v and a float mask, causal or not, every
// kind of mask with broadcasting, fully masked rows, dropout (the same Philox draws on
// both devices), odd lengths, head dims 16 to 256, 3-D inputs, strided views, empty
// sizes, and second derivatives. Skipped with the reason when no GPU is visible.
#include <limits>

#include "cuda_parity.h"

using namespace kiln;
using kiln::testing::check_cuda_matches_cpu;
using kiln::testing::ParityTolerance;
using kiln::testing::skip_without_gpu;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Long rows sum many terms in a different order (and exp differs in the last bits).
ParityTolerance tolerance(DType dtype) {
  return dtype == f64 ? ParityTolerance{1e-10, 1e-8} : ParityTolerance{1e-4, 1e-3};
}

// q, k, v of (B, H, Lq, D), (B, H, Lk, D), (B, H, Lk, Dv).
std::vector<Tensor> qkv(int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D, int64_t Dv, DType dtype) {
  const TensorOptions o{.dtype = dtype};
  return {randn({B, H, Lq, D}, o), randn({B, H, Lk, D}, o), randn({B, H, Lk, Dv}, o)};
}

// Attention of inputs {q, k, v} or {q, k, v, mask} with `options` (its mask replaced).
kiln::testing::ParityFn attention_with(AttentionOptions options) {
  return [options](const std::vector<Tensor>& in) {
    AttentionOptions o = options;
    if (in.size() > 3) o.mask = in[3];
    // Dropout draws from the generator: both devices start from the same state.
    if (o.dropout_p > 0) manual_seed(1234);
    return scaled_dot_product_attention(in[0], in[1], in[2], o);
  };
}

}  // namespace

TEST_CASE("[cuda] attention matches the CPU: causal or not, odd lengths, head dims 16 to 128, f32 and f64") {
  if (skip_without_gpu()) return;
  for (DType dtype : {f32, f64}) {
    for (int64_t D : {16, 64, 80, 128}) {
      for (bool causal : {false, true}) {
        CAPTURE(dtype_name(dtype));
        CAPTURE(D);
        CAPTURE(causal);
        check_cuda_matches_cpu("attention", attention_with({.causal = causal}), qkv(2, 3, 37, 53, D, D, dtype),
                               tolerance(dtype));
        // More queries than keys: causal rows past Lk see every key.
        check_cuda_matches_cpu("attention Lq > Lk", attention_with({.causal = causal}),
                               qkv(1, 2, 53, 37, D, D, dtype), tolerance(dtype));
      }
    }
  }
}

TEST_CASE("[cuda] attention: D != Dv, head dims up to 256, one-element rows, long rows, a custom scale") {
  if (skip_without_gpu()) return;
  for (DType dtype : {f32, f64}) {
    CAPTURE(dtype_name(dtype));
    check_cuda_matches_cpu("D=24 Dv=40", attention_with({.causal = true}), qkv(2, 2, 19, 23, 24, 40, dtype),
                           tolerance(dtype));
    check_cuda_matches_cpu("D=160 Dv=256", attention_with({}), qkv(1, 2, 17, 33, 160, 256, dtype), tolerance(dtype));
    check_cuda_matches_cpu("D=256", attention_with({.causal = true}), qkv(1, 1, 21, 21, 256, 256, dtype),
                           tolerance(dtype));
    check_cuda_matches_cpu("D=1 Dv=1", attention_with({}), qkv(2, 1, 5, 7, 1, 1, dtype), tolerance(dtype));
    check_cuda_matches_cpu("Lq=1 Lk=1", attention_with({.causal = true}), qkv(2, 3, 1, 1, 16, 16, dtype),
                           tolerance(dtype));
    // Rows much longer than a block's tiles, many query blocks per head.
    check_cuda_matches_cpu("long rows", attention_with({.causal = true}), qkv(1, 2, 300, 1000, 32, 32, dtype),
                           tolerance(dtype));
    check_cuda_matches_cpu("scale", attention_with({.scale = 0.7}), qkv(2, 2, 9, 11, 16, 16, dtype), tolerance(dtype));
  }
}

TEST_CASE("[cuda] attention: 3-D inputs and strided views (heads of a fused projection)") {
  if (skip_without_gpu()) return;
  for (DType dtype : {f32, f64}) {
    CAPTURE(dtype_name(dtype));
    const TensorOptions o{.dtype = dtype};
    check_cuda_matches_cpu("3-D", attention_with({.causal = true}),
                           {randn({3, 37, 16}, o), randn({3, 53, 16}, o), randn({3, 53, 24}, o)}, tolerance(dtype));
    // q, k, v as (B, L, H, D) memory read through their (B, H, L, D) views, and heads
    // sliced out of one (B, L, 3 * H * D) projection: strided rows, read in place.
    check_cuda_matches_cpu(
        "views",
        [](const std::vector<Tensor>& in) {
          const Tensor x = in[0].view({2, 29, 3, 4, 16});  // (B, L, {q,k,v}, H, D)
          const Tensor q = x.select(2, 0).transpose(1, 2), k = x.select(2, 1).transpose(1, 2);
          const Tensor v = x.select(2, 2).transpose(1, 2);
          return scaled_dot_product_attention(q, k, v, {.causal = true});
        },
        {randn({2, 29, 3 * 4 * 16}, o)}, tolerance(dtype));
    // A non-contiguous last dim: copied before the kernel.
    check_cuda_matches_cpu(
        "strided last dim",
        [](const std::vector<Tensor>& in) {
          return scaled_dot_product_attention(in[0].slice(-1, 0, 32, 2), in[1].slice(-1, 0, 32, 2), in[2]);
        },
        {randn({1, 2, 13, 32}, o), randn({1, 2, 15, 32}, o), randn({1, 2, 15, 8}, o)}, tolerance(dtype));
  }
}

TEST_CASE("[cuda] attention masks: bool and additive, broadcast, with their gradients") {
  if (skip_without_gpu()) return;
  for (DType dtype : {f32, f64}) {
    CAPTURE(dtype_name(dtype));
    const TensorOptions o{.dtype = dtype};
    std::vector<Tensor> in = qkv(2, 3, 37, 53, 64, 64, dtype);
    // Key padding: (B, 1, 1, Lk) bools.
    in.push_back(gt(rand({2, 1, 1, 53}), 0.3));
    check_cuda_matches_cpu("key padding", attention_with({}), in, tolerance(dtype));
    check_cuda_matches_cpu("key padding, causal", attention_with({.causal = true}), in, tolerance(dtype));
    // A full (B, H, Lq, Lk) bool mask.
    in[3] = gt(rand({2, 3, 37, 53}), 0.5);
    check_cuda_matches_cpu("bool (B, H, Lq, Lk)", attention_with({}), in, tolerance(dtype));
    // An additive bias shared by the batch and heads (Lq, Lk): its gradient sums over both.
    in[3] = randn({37, 53}, o);
    check_cuda_matches_cpu("additive (Lq, Lk)", attention_with({.causal = true}), in, tolerance(dtype));
    // A per-head additive bias (1, H, Lq, Lk), with -inf entries.
    in[3] = where(gt(rand({1, 3, 37, 53}), 0.2), randn({1, 3, 37, 53}, o), full({1, 3, 37, 53}, -kInf, o));
    check_cuda_matches_cpu("additive (1, H, Lq, Lk) with -inf", attention_with({}), in, tolerance(dtype));
    // 3-D inputs take (B, Lq, Lk) masks.
    const std::vector<Tensor> in3 = {randn({2, 19, 16}, o), randn({2, 23, 16}, o), randn({2, 23, 16}, o),
                                     gt(rand({2, 1, 23}), 0.4)};
    check_cuda_matches_cpu("3-D key padding", attention_with({}), in3, tolerance(dtype));
  }
}

TEST_CASE("[cuda] attention: fully masked rows give zeros and zero gradients, as on the CPU") {
  if (skip_without_gpu()) return;
  for (DType dtype : {f32, f64}) {
    CAPTURE(dtype_name(dtype));
    const TensorOptions o{.dtype = dtype};
    // Queries 1 and 20 see no key; query 2 of head 1 sees only key 3.
    Tensor keep = ones({1, 2, 37, 5}, {.dtype = f64});
    keep.select(2, 1).zero_();
    keep.select(2, 20).zero_();
    keep.select(1, 1).select(1, 2).narrow(1, 0, 3).zero_();
    keep.select(1, 1).select(1, 2).select(1, 4).zero_();
    const Tensor keep_b8 = gt(keep, 0.5);
    const Tensor additive = where(keep_b8, zeros({1, 2, 37, 5}, o), full({1, 2, 37, 5}, -kInf, o));
    for (const Tensor& mask : {keep_b8, additive}) {
      CAPTURE(dtype_name(mask.dtype()));
      std::vector<Tensor> in = qkv(1, 2, 37, 5, 16, 16, dtype);
      in.push_back(mask);
      check_cuda_matches_cpu("fully masked rows", attention_with({}), in, tolerance(dtype));
      const Tensor out = attention_with({})({in[0].to(Device::cuda()), in[1].to(Device::cuda()),
                                             in[2].to(Device::cuda()), mask.to(Device::cuda())});
      const Tensor rows = out.to(Device::cpu());
      for (int64_t i : {1, 20}) CHECK(max(abs(rows.select(2, i))).item() == 0.0);
    }
    // Causal with the only key a query sees masked: row 0 is empty.
    const std::vector<Tensor> in = {randn({2, 3, 4}, o), randn({2, 3, 4}, o), randn({2, 3, 4}, o),
                                    gt(from_vector<double>({0, 1, 1}), 0.5)};
    check_cuda_matches_cpu("causal, row 0 empty", attention_with({.causal = true}), in, tolerance(dtype));
  }
}

TEST_CASE("[cuda] attention dropout drops the entries the CPU drops, forward and backward") {
  if (skip_without_gpu()) return;
  for (DType dtype : {f32, f64}) {
    for (double p : {0.1, 0.5, 1.0}) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(p);
      // Lk = 53: rows start at every offset within a Philox block of 4 draws.
      check_cuda_matches_cpu("dropout", attention_with({.causal = true, .dropout_p = p}),
                             qkv(2, 3, 37, 53, 32, 32, dtype), tolerance(dtype));
      std::vector<Tensor> in = qkv(1, 2, 21, 30, 16, 16, dtype);
      in.push_back(randn({21, 30}, {.dtype = dtype}));
      check_cuda_matches_cpu("dropout with a float mask", attention_with({.dropout_p = p}), in, tolerance(dtype));
    }
  }
  // Not training: no dropout, on either device.
  check_cuda_matches_cpu("eval", attention_with({.dropout_p = 0.5, .training = false}), qkv(1, 2, 9, 9, 16, 16, f32),
                         tolerance(f32));
}

TEST_CASE("[cuda] attention of empty sizes: no queries, no keys, no heads") {
  if (skip_without_gpu()) return;
  check_cuda_matches_cpu("Lq = 0", attention_with({}), qkv(2, 3, 0, 5, 16, 16, f32));
  // No keys: every row is fully masked, zeros.
  check_cuda_matches_cpu("Lk = 0", attention_with({}), qkv(2, 3, 4, 0, 16, 16, f32));
  check_cuda_matches_cpu("B = 0", attention_with({}), qkv(0, 3, 4, 5, 16, 16, f32));
  // No value dims: the output is empty, but dq and dk are not, and are zeros.
  check_cuda_matches_cpu("Dv = 0", attention_with({.causal = true}), qkv(2, 3, 7, 9, 16, 0, f32));
}

TEST_CASE("[cuda] attention supports double backward (the composite rules) on CUDA") {
  if (skip_without_gpu()) return;
  for (double p : {0.0, 0.3}) {
    CAPTURE(p);
    // The output is dq of a first backward with create_graph; the parity check then
    // differentiates it again, on both devices.
    check_cuda_matches_cpu(
        "grad of grad",
        [p](const std::vector<Tensor>& in) {
          manual_seed(99);
          const Tensor out = scaled_dot_product_attention(in[0], in[1], in[2],
                                                          {.mask = in[3], .causal = true, .dropout_p = p});
          return kiln::grad({sum(out * out)}, {in[0]}, {.create_graph = true})[0];
        },
        {randn({1, 2, 7, 8}, {.dtype = f64}), randn({1, 2, 9, 8}, {.dtype = f64}),
         randn({1, 2, 9, 8}, {.dtype = f64}), randn({7, 9}, {.dtype = f64})},
        tolerance(f64));
  }
}

TEST_CASE("[cuda] attention errors: head dims beyond 256, operands on different devices") {
  if (skip_without_gpu()) return;
  const std::vector<Tensor> big = qkv(1, 1, 4, 4, 300, 300, f32);
  CHECK_THROWS_KILN(scaled_dot_product_attention(big[0].to(Device::cuda()), big[1].to(Device::cuda()),
                                                 big[2].to(Device::cuda())),
                    "supports head dims up to 256, got D = 300 and Dv = 300");
  const std::vector<Tensor> in = qkv(1, 1, 4, 4, 8, 8, f32);
  CHECK_THROWS_KILN(scaled_dot_product_attention(in[0].to(Device::cuda()), in[1], in[2]),
                    "scaled_dot_product_attention: tensors are on different devices");
  CHECK_THROWS_KILN(scaled_dot_product_attention(in[0].to(Device::cuda()), in[1].to(Device::cuda()),
                                                 in[2].to(Device::cuda()), {.mask = gt(rand({4, 4}), 0.5)}),
                    "scaled_dot_product_attention: tensors are on different devices");
}
