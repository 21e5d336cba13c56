// Loss functions. cross_entropy is fused (ops/cpu/cross_entropy.*, cuda/cross_entropy.*):
// log-softmax and the negative log-likelihood in one pass per row, with its own backward
// kernel. nll_loss and mse_loss are short compositions of Tensor ops, so autograd
// derives their backward.
//
// One difference between devices, for speed: on the CPU the targets are checked before
// any kernel runs and one out of range throws at once. On CUDA reading the targets on the
// host would stall the GPU every step, so a check kernel is queued instead and an
// out-of-range target is reported as kiln::Error at the next synchronisation (reading the
// loss, for instance: cuda/device_check.h); until then that row's loss and gradient are
// NaN. The count of non-ignored targets that a mean divides by stays on the device.
#include "kiln/ops/loss.h"

#include <limits>

#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"
#include "kiln/core/dispatch.h"
#include "kiln/core/factory.h"
#include "kiln/core/profiler.h"
#include "kiln/cuda/cross_entropy.h"
#include "kiln/cuda/device_check.h"
#include "kiln/ops/common.h"
#include "kiln/ops/cpu/cross_entropy.h"
#include "kiln/ops/elementwise.h"
#include "kiln/ops/normalization.h"
#include "kiln/ops/reduce.h"

namespace kiln {

using autograd::Grads;
using autograd::Saved;

namespace {

enum class Reduction { none, mean, sum };

Reduction parse_reduction(const char* op, const std::string& reduction) {
  if (reduction == "mean") return Reduction::mean;
  if (reduction == "sum") return Reduction::sum;
  if (reduction == "none") return Reduction::none;
  throw Error(detail::str(op, ": reduction must be \"mean\", \"sum\" or \"none\", got \"", reduction, "\""));
}

// How many losses a mean divides by (for the class losses, the non-ignored targets):
// a host number, or for CUDA class losses a 0-d device tensor (see the top of the file).
struct LossCount {
  int64_t on_host = 0;
  Tensor on_device;
};

// Per-element losses -> the requested reduction; `mean` divides by `count` (0 non-ignored
// targets give 0/0 = NaN, as PyTorch).
Tensor reduce_losses(const Tensor& losses, Reduction reduction, const LossCount& count) {
  switch (reduction) {
    case Reduction::none: return losses;
    case Reduction::sum: return sum(losses);
    case Reduction::mean: break;
  }
  if (count.on_device.defined()) return sum(losses) / count.on_device;
  return sum(losses) / static_cast<double>(count.on_host);
}

// Class-index targets: i64 with the input's shape minus the class dim (dim 1).
void check_class_targets(const char* op, const Tensor& input, const Tensor& target) {
  ops::check_same_device(op, {input, target});
  ops::check_floating(op, input);
  KILN_CHECK(input.dim() >= 2, op, ": expected input of shape (N, C) or (N, C, d1, ...), got ", describe(input));
  KILN_CHECK(target.dtype() == i64, op, ": target must hold class indices as i64, got ", describe(target),
             " (class-probability targets are not supported; convert indices with .to(kiln::i64))");
  Shape expected = input.shape();
  expected.erase(expected.begin() + 1);
  KILN_CHECK(target.shape() == expected, op, ": target ", describe(target), " does not match input ",
             describe(input), " (expected target shape ", shape_str(expected), ")");
}

// Checks every target is in [0, C) or ignore_index; returns how many are not ignored.
// CPU targets only (contiguous).
int64_t count_valid_targets(const char* op, const Tensor& target, int64_t classes, int64_t ignore_index) {
  const int64_t* t = target.data<int64_t>();
  const cpu::TargetScan scan = cpu::scan_targets(t, target.numel(), classes, ignore_index);
  KILN_CHECK(scan.first_invalid < 0, op, ": target ", t[scan.first_invalid], " (at flat index ", scan.first_invalid,
             ") is out of range for ", classes, " classes (expected 0 <= target < ", classes,
             ", or ignore_index = ", ignore_index, ")");
  return scan.valid;
}

// Queues the check of contiguous CUDA targets (see the file comment); `op` is a literal.
void check_targets_on_device(const char* op, const Tensor& target, int64_t classes, int64_t ignore_index) {
  cuda::check_index_range(op, "target", target.data<int64_t>(), target.numel(), 0, classes, true, ignore_index,
                          target.device().index);
}

// The non-ignored targets: counted (and checked) on the host for CPU tensors, counted on
// the device as a `dtype` scalar (and checked by a kernel) for CUDA tensors.
LossCount count_class_targets(const char* op, const Tensor& target, int64_t classes, int64_t ignore_index,
                              DType dtype) {
  const Tensor t = target.contiguous();
  if (t.device().is_cuda()) {
    check_targets_on_device(op, t, classes, ignore_index);
    return {0, sum(ne(t, static_cast<double>(ignore_index)).to(dtype))};
  }
  return {count_valid_targets(op, t, classes, ignore_index), Tensor()};
}

// The kernels' layout: (N, C, d1, ...) -> contiguous rows (N * d1 * ..., C).
Tensor classes_last(const Tensor& x) {
  std::vector<int64_t> perm{0};
  for (int64_t d = 2; d < x.dim(); ++d) perm.push_back(d);
  perm.push_back(1);
  return x.permute(perm).contiguous().view({-1, x.size(1)});
}

// The inverse: rows (N * d1 * ..., C) -> contiguous (N, C, d1, ...) = `shape`.
Tensor classes_back(const Tensor& rows, const Shape& shape) {
  Shape rows_shape{shape[0]};
  for (size_t d = 2; d < shape.size(); ++d) rows_shape.push_back(shape[d]);
  rows_shape.push_back(shape[1]);
  std::vector<int64_t> perm{0, static_cast<int64_t>(shape.size()) - 1};
  for (int64_t d = 1; d + 1 < static_cast<int64_t>(shape.size()); ++d) perm.push_back(d);
  return rows.view(rows_shape).permute(perm).contiguous();
}

// The smoothed one-hot target distribution q, shaped like the logits (0 on ignored
// positions); a constant for autograd.
Tensor target_distribution(const Tensor& target, const Shape& logits_shape, DType dtype, int64_t ignore_index,
                           double smoothing) {
  const int64_t classes = logits_shape[1], rows = target.numel();
  Tensor q = empty({rows, classes}, {.dtype = dtype, .device = target.device()});
  const Tensor t = target.contiguous();
  dispatch_floating(dtype, "cross_entropy", [&]<class T>() {
    if (t.device().is_cuda()) {
      cuda::target_distribution(t.data<int64_t>(), q.data<T>(), rows, classes, ignore_index, smoothing,
                                t.device().index);
    } else {
      cpu::target_distribution(t.data<int64_t>(), q.data<T>(), rows, classes, ignore_index, smoothing);
    }
  });
  return classes_back(q, logits_shape);
}

struct CrossEntropyBackward {
  Shape logits_shape;
  CrossEntropyOptions opts;
  Reduction reduction;
  LossCount valid_count;

  // dlogits = (softmax(x) - q) * dloss, where dloss is g per position (none), g (sum) or
  // g / valid_count (mean), and 0 at ignored positions. With every target ignored the
  // mean loss is NaN but its gradient is 0, as in PyTorch. (On the host; the CUDA
  // kernel takes 1 / max(count, 1), the same: with no valid target every row's
  // gradient is 0 whatever the scale.)
  double scale() const {
    if (reduction != Reduction::mean) return 1.0;
    return valid_count.on_host > 0 ? 1.0 / static_cast<double>(valid_count.on_host) : 0.0;
  }

  // The device count the CUDA kernel divides by, or null when it needs none.
  template <class T>
  const T* mean_count() const {
    return reduction == Reduction::mean ? valid_count.on_device.data<T>() : nullptr;
  }

  // dloss scaled for the reduction, as a Tensor (the composite backward).
  Tensor scaled(const Tensor& dloss) const {
    if (reduction == Reduction::mean && valid_count.on_device.defined())
      return dloss / clamp(valid_count.on_device, 1.0, std::numeric_limits<double>::infinity());
    return dloss * scale();
  }

  Tensor fused(const Tensor& g, const Tensor& logits, const Tensor& target, const Tensor& row_max,
               const Tensor& row_log_sum) const {
    ops::check_same_dtype("cross_entropy", logits, g);
    const Tensor rows = classes_last(logits), t = target.contiguous(), gc = g.contiguous();
    Tensor drows = empty(rows.shape(), {.dtype = logits.dtype(), .device = logits.device()});
    const int64_t grad_stride = reduction == Reduction::none ? 1 : 0;
    dispatch_floating(logits.dtype(), "cross_entropy", [&]<class T>() {
      if (logits.device().is_cuda()) {
        cuda::cross_entropy_backward(rows.data<T>(), t.data<int64_t>(), row_max.data<T>(), row_log_sum.data<T>(),
                                     gc.data<T>(), grad_stride, mean_count<T>(), drows.data<T>(), rows.size(0),
                                     rows.size(1), opts.ignore_index, opts.label_smoothing,
                                     logits.device().index);
      } else {
        cpu::cross_entropy_backward(rows.data<T>(), t.data<int64_t>(), row_max.data<T>(), row_log_sum.data<T>(),
                                    gc.data<T>(), grad_stride, scale(), drows.data<T>(), rows.size(0),
                                    rows.size(1), opts.ignore_index, opts.label_smoothing);
      }
    });
    return classes_back(drows, logits_shape);
  }

  // The same formula in Tensor ops, for create_graph (softmax is itself differentiable).
  Tensor composite(const Tensor& g, const Tensor& logits, const Tensor& target) const {
    const Tensor q = target_distribution(target, logits_shape, logits.dtype(), opts.ignore_index,
                                         opts.label_smoothing);
    const Tensor valid = ne(target, static_cast<double>(opts.ignore_index)).to(logits.dtype()).unsqueeze(1);
    const Tensor dloss = reduction == Reduction::none ? g.unsqueeze(1) : g;
    return (softmax(logits, 1) * valid - q) * scaled(dloss);
  }
};

}  // namespace

// ---- cross_entropy ---------------------------------------------------------------------

Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& opts) {
  KILN_PROFILE_SCOPE("cross_entropy", logits, target);
  const char* op = "cross_entropy";
  check_class_targets(op, logits, target);
  KILN_CHECK(opts.label_smoothing >= 0 && opts.label_smoothing <= 1, op, ": label_smoothing must be in [0, 1], got ",
             opts.label_smoothing);
  const Reduction reduction = parse_reduction(op, opts.reduction);
  const Tensor t = target.contiguous();
  const bool on_gpu = logits.device().is_cuda();
  LossCount valid_count;
  if (on_gpu) {
    check_targets_on_device(op, t, logits.size(1), opts.ignore_index);
  } else {
    valid_count.on_host = count_valid_targets(op, t, logits.size(1), opts.ignore_index);
  }

  const TensorOptions like_logits{.dtype = logits.dtype(), .device = logits.device()};
  Tensor losses = empty(target.shape(), like_logits);
  // Per row, for the backward: lse = row_max + row_log_sum.
  Tensor row_max = empty({target.numel()}, like_logits), row_log_sum = empty({target.numel()}, like_logits);
  Tensor out;
  {
    NoGradGuard no_grad;
    const Tensor rows = classes_last(logits);
    // CUDA only: 1 per non-ignored target, summed into the mean's count on the device.
    const Tensor valid = on_gpu ? empty({target.numel()}, like_logits) : Tensor();
    dispatch_floating(logits.dtype(), op, [&]<class T>() {
      if (on_gpu) {
        cuda::cross_entropy_forward(rows.data<T>(), t.data<int64_t>(), losses.data<T>(), row_max.data<T>(),
                                    row_log_sum.data<T>(), valid.data<T>(), rows.size(0), rows.size(1),
                                    opts.ignore_index, opts.label_smoothing, logits.device().index);
      } else {
        cpu::cross_entropy_forward(rows.data<T>(), t.data<int64_t>(), losses.data<T>(), row_max.data<T>(),
                                   row_log_sum.data<T>(), rows.size(0), rows.size(1), opts.ignore_index,
                                   opts.label_smoothing);
      }
    });
    if (on_gpu) valid_count.on_device = sum(valid);
    out = reduce_losses(losses, reduction, valid_count);
  }
  const CrossEntropyBackward backward{logits.shape(), opts, reduction, valid_count};
  autograd::record(op, out, {logits}, {logits, t, row_max, row_log_sum}, [backward](const Tensor& g, const Saved& s) {
    if (GradMode::is_enabled()) return Grads{backward.composite(g, s[0], s[1])};
    return Grads{backward.fused(g, s[0], s[1], s[2], s[3])};
  });
  return out;
}

// ---- nll_loss --------------------------------------------------------------------------
// loss = -log_probs[target], written as sum(log_probs * pick) over the class dim with
// pick = -onehot(target) (0 at ignored positions), so autograd derives the backward.

Tensor nll_loss(const Tensor& log_probs, const Tensor& target, int64_t ignore_index, const std::string& reduction) {
  KILN_PROFILE_SCOPE("nll_loss", log_probs, target);
  const char* op = "nll_loss";
  check_class_targets(op, log_probs, target);
  const Reduction r = parse_reduction(op, reduction);
  const LossCount valid_count = count_class_targets(op, target, log_probs.size(1), ignore_index, log_probs.dtype());
  const Tensor pick = neg(target_distribution(target, log_probs.shape(), log_probs.dtype(), ignore_index, 0.0));
  return reduce_losses(sum(log_probs * pick, {1}), r, valid_count);
}

// ---- mse_loss --------------------------------------------------------------------------

Tensor mse_loss(const Tensor& input, const Tensor& target, const std::string& reduction) {
  KILN_PROFILE_SCOPE("mse_loss", input, target);
  const char* op = "mse_loss";
  ops::check_same_device(op, {input, target});
  ops::check_floating(op, input);
  ops::check_same_dtype(op, input, target);
  KILN_CHECK(input.shape() == target.shape(), op, ": input ", describe(input), " and target ", describe(target),
             " must have the same shape");
  const Reduction r = parse_reduction(op, reduction);
  const Tensor diff = input - target;
  return reduce_losses(diff * diff, r, {input.numel(), Tensor()});
}

}  // namespace kiln
