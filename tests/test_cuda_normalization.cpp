// softmax, log_softmax, layer_norm and the losses (cross_entropy with ignore_index,
// label smoothing and every reduction; nll_loss; mse_loss) on CUDA tensors against the
// CPU, values and gradients: along every dim, on warp-sized and block-sized rows, odd and
// empty shapes, and rows of NaN and infinities. GPU cases skip with a printed reason
// when no GPU is visible.
#include "cuda_parity.h"

#include <cmath>
#include <limits>

using namespace kiln;
using kiln::testing::check_cuda_matches_cpu;
using kiln::testing::skip_without_gpu;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Targets in [0, classes), every third one replaced by ignore_index.
Tensor targets_with_ignored(int64_t rows, int64_t classes, int64_t ignore_index) {
  std::vector<int64_t> t = randint(0, classes, {rows}).to_vector<int64_t>();
  for (size_t i = 0; i < t.size(); i += 3) t[i] = ignore_index;
  return from_vector(t);
}

}  // namespace

TEST_CASE("[cuda] softmax and log_softmax along every dim of a non-contiguous tensor") {
  if (skip_without_gpu()) return;
  for (DType dtype : {f32, f64}) {
    const Tensor x = randn({7, 33, 5}, {.dtype = dtype}) * 3.0;
    for (int64_t dim = -3; dim < 3; ++dim) {
      CAPTURE(dim);
      check_cuda_matches_cpu("softmax", [&](const auto& in) { return softmax(in[0].permute({1, 2, 0}), dim); }, {x});
      check_cuda_matches_cpu("log_softmax", [&](const auto& in) { return log_softmax(in[0].permute({1, 2, 0}), dim); },
                             {x});
    }
  }
}

TEST_CASE("[cuda] softmax and log_softmax on warp rows, block rows, one-element rows and empty tensors") {
  if (skip_without_gpu()) return;
  for (DType dtype : {f32, f64})
    for (const Shape& shape : {Shape{7, 1000}, Shape{3, 4099}, Shape{2, 50257}, Shape{1, 1}, Shape{6, 1},
                               Shape{1, 1025}, Shape{0, 7}, Shape{4, 0}}) {
      CAPTURE(shape_str(shape));
      const Tensor x = randn(shape, {.dtype = dtype});
      check_cuda_matches_cpu("softmax", [](const auto& in) { return softmax(in[0], -1); }, {x});
      check_cuda_matches_cpu("log_softmax", [](const auto& in) { return log_softmax(in[0], -1); }, {x});
      check_cuda_matches_cpu("softmax dim 0", [](const auto& in) { return softmax(in[0], 0); }, {x});
    }
}

TEST_CASE("[cuda] softmax of rows with NaN, +-inf and +-1e4 matches the CPU (NaN rows stay NaN)") {
  if (skip_without_gpu()) return;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor special = from_vector<double>({1, 2, 3, 4,                 // ordinary
                                              -kInf, -kInf, -kInf, -kInf,  // all -inf: NaN
                                              -kInf, 0, 1, -kInf,          // some -inf: 0 there
                                              kInf, 0, 1, 2,               // +inf: NaN
                                              nan, 0, 1, 2,                // NaN: NaN
                                              1e4, -1e4, 1e4, 0},
                                             {6, 4});
  for (DType dtype : {f32, f64}) {
    const Tensor x = special.to(dtype);
    for (int64_t dim : {0, 1}) {
      CAPTURE(dim);
      // Values only: the gradients of NaN rows are NaN on both devices, checked below
      // on the finite rows.
      check_cuda_matches_cpu("softmax", [&](const auto& in) { return softmax(in[0].detach(), dim); }, {x});
      check_cuda_matches_cpu("log_softmax", [&](const auto& in) { return log_softmax(in[0].detach(), dim); }, {x});
    }
    const Tensor finite_rows = from_vector<double>({-kInf, 0, 1, -kInf, 1e4, -1e4, 1e4, 0}, {2, 4}).to(dtype);
    check_cuda_matches_cpu("softmax", [](const auto& in) { return softmax(in[0], 1); }, {finite_rows});
    check_cuda_matches_cpu("log_softmax", [](const auto& in) { return log_softmax(in[0], 1); }, {finite_rows});
  }
}

TEST_CASE("[cuda] layer_norm forward and fused backward (dx, dweight, dbias)") {
  if (skip_without_gpu()) return;
  for (DType dtype : {f32, f64})
    for (const Shape& shape : {Shape{7, 1000}, Shape{3, 4099}, Shape{2, 3, 37}, Shape{1, 1}, Shape{5000, 8}}) {
      CAPTURE(shape_str(shape));
      const Shape normalized{shape.back()};
      const Tensor x = randn(shape, {.dtype = dtype}) * 2.0 + 0.5;
      const Tensor w = randn(normalized, {.dtype = dtype}), b = randn(normalized, {.dtype = dtype});
      check_cuda_matches_cpu("layer_norm", [&](const auto& in) { return layer_norm(in[0], normalized, in[1], in[2]); },
                             {x, w, b}, {.atol = 1e-4, .rtol = 1e-4});
      check_cuda_matches_cpu("layer_norm, weight only",
                             [&](const auto& in) { return layer_norm(in[0], normalized, in[1]); }, {x, w},
                             {.atol = 1e-4, .rtol = 1e-4});
      check_cuda_matches_cpu("layer_norm, no affine", [&](const auto& in) { return layer_norm(in[0], normalized); },
                             {x}, {.atol = 1e-4, .rtol = 1e-4});
    }
  // Two normalized dims, a non-contiguous input, a constant row, and no rows at all.
  const Tensor x = randn({4, 5, 6});
  const Tensor w = randn({5, 4}), b = randn({5, 4});
  check_cuda_matches_cpu("layer_norm over two dims of a view",
                         [](const auto& in) { return layer_norm(in[0].transpose(0, 2), {5, 4}, in[1], in[2]); },
                         {x, w, b}, {.atol = 1e-4, .rtol = 1e-4});
  check_cuda_matches_cpu("layer_norm of a constant row",
                         [](const auto& in) { return layer_norm(in[0], {6}, in[1], in[2]); },
                         {full({3, 6}, 2.5), randn({6}), randn({6})});
  check_cuda_matches_cpu("layer_norm of no rows", [](const auto& in) { return layer_norm(in[0], {8}, in[1], in[2]); },
                         {randn({0, 8}), randn({8}), randn({8})});
}

TEST_CASE("[cuda] cross_entropy: every reduction, ignore_index, label smoothing, C across the warp/block limit") {
  if (skip_without_gpu()) return;
  for (DType dtype : {f32, f64})
    for (const Shape& shape :
         {Shape{9, 10}, Shape{16, 37}, Shape{5, 1024}, Shape{6, 1025}, Shape{3, 4099}, Shape{1, 1}}) {
      CAPTURE(shape_str(shape));
      const Tensor logits = randn(shape, {.dtype = dtype}) * 2.0;
      const Tensor target = targets_with_ignored(shape[0], shape[1], -100);
      for (const char* reduction : {"mean", "sum", "none"})
        for (double smoothing : {0.0, 0.1}) {
          CAPTURE(reduction);
          CAPTURE(smoothing);
          const CrossEntropyOptions opts{.label_smoothing = smoothing, .reduction = reduction};
          check_cuda_matches_cpu("cross_entropy",
                                 [&](const auto& in) { return cross_entropy(in[0], in[1], opts); }, {logits, target},
                                 {.atol = 1e-5, .rtol = 1e-4});
        }
    }
  // (N, C, d) logits, a custom ignore_index, large logits, and every target ignored
  // (mean: NaN loss, zero gradient).
  const Tensor logits3 = randn({4, 7, 3});
  const Tensor target3 = randint(0, 7, {4, 3});
  check_cuda_matches_cpu("cross_entropy (N, C, d)", [&](const auto& in) { return cross_entropy(in[0], in[1]); },
                         {logits3, target3});
  const Tensor big = randn({5, 11}, {.dtype = f64}) * 1e4;
  check_cuda_matches_cpu("cross_entropy at 1e4",
                         [](const auto& in) { return cross_entropy(in[0], in[1], {.label_smoothing = 0.3}); },
                         {big, randint(0, 11, {5})});
  const Tensor ignored = from_vector<int64_t>({3, 3, 3});
  check_cuda_matches_cpu("all ignored", [](const auto& in) { return cross_entropy(in[0], in[1], {.ignore_index = 3}); },
                         {randn({3, 5}), ignored});
}

TEST_CASE("[cuda] an out-of-range target is a kiln::Error at the next synchronisation, not a host round trip") {
  if (skip_without_gpu()) return;
  const Tensor logits = randn({3, 5}).to(Device::cuda()).requires_grad_();
  const Tensor target = from_vector<int64_t>({1, 7, 2}).to(Device::cuda());
  // The op itself returns (it only queued a check kernel); reading the loss reports it.
  const Tensor loss = cross_entropy(logits, target);
  CHECK_THROWS_KILN(loss.item<double>(), "cross_entropy: target 7 at position 1 is out of range [0, 5) and is not -100");
  // The report is cleared by the throw: the next read sees only what came after.
  const Tensor rows = cross_entropy(logits, from_vector<int64_t>({1, -100, 2}).to(Device::cuda()), {.reduction = "none"});
  CHECK(std::isfinite(rows.to(Device::cpu()).to_vector<double>()[0]));
  CHECK_THROWS_KILN(nll_loss(log_softmax(logits, 1), from_vector<int64_t>({-3, 0, 0}).to(Device::cuda()))
                        .item<double>(),
                    "nll_loss: target -3 at position 0 is out of range [0, 5)");
  // cuda::synchronize reports too.
  (void)cross_entropy(logits, target);
  CHECK_THROWS_KILN(cuda::synchronize(0), "cross_entropy: target 7");
  CHECK_NOTHROW(cuda::synchronize(0));
}

TEST_CASE("[cuda] nll_loss and mse_loss") {
  if (skip_without_gpu()) return;
  for (DType dtype : {f32, f64}) {
    const Tensor x = randn({13, 37}, {.dtype = dtype});
    const Tensor target = targets_with_ignored(13, 37, -100);
    for (const char* reduction : {"mean", "sum", "none"}) {
      CAPTURE(reduction);
      check_cuda_matches_cpu("nll_loss",
                             [&](const auto& in) { return nll_loss(log_softmax(in[0], 1), in[1], -100, reduction); },
                             {x, target});
      check_cuda_matches_cpu("mse_loss", [&](const auto& in) { return mse_loss(in[0], in[1], reduction); },
                             {x, randn({13, 37}, {.dtype = dtype})});
    }
  }
}
