// Loss functions. cross_entropy is fused (ops/cpu/cross_entropy.*): log-softmax and the
// negative log-likelihood in one pass per row, with its own backward kernel. nll_loss
// and mse_loss are short compositions of Tensor ops, so autograd derives their backward.
#include "kiln/ops/loss.h"

#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"
#include "kiln/core/dispatch.h"
#include "kiln/core/factory.h"
#include "kiln/core/profiler.h"
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

// Per-element losses -> the requested reduction; `mean` divides by `count` (for the
// class losses, the number of non-ignored targets: 0 of them gives 0/0 = NaN, as PyTorch).
Tensor reduce_losses(const Tensor& losses, Reduction reduction, int64_t count) {
  switch (reduction) {
    case Reduction::none: return losses;
    case Reduction::sum: return sum(losses);
    case Reduction::mean: break;
  }
  return sum(losses) / static_cast<double>(count);
}

// Class-index targets: i64 with the input's shape minus the class dim (dim 1).
void check_class_targets(const char* op, const Tensor& input, const Tensor& target) {
  ops::check_cpu(op, {input, target});
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
int64_t count_valid_targets(const char* op, const Tensor& target, int64_t classes, int64_t ignore_index) {
  const int64_t* t = target.data<int64_t>();
  const cpu::TargetScan scan = cpu::scan_targets(t, target.numel(), classes, ignore_index);
  KILN_CHECK(scan.first_invalid < 0, op, ": target ", t[scan.first_invalid], " (at flat index ", scan.first_invalid,
             ") is out of range for ", classes, " classes (expected 0 <= target < ", classes,
             ", or ignore_index = ", ignore_index, ")");
  return scan.valid;
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
  Tensor q = empty({rows, classes}, {.dtype = dtype});
  const Tensor t = target.contiguous();
  dispatch_floating(dtype, "cross_entropy", [&]<class T>() {
    cpu::target_distribution(t.data<int64_t>(), q.data<T>(), rows, classes, ignore_index, smoothing);
  });
  return classes_back(q, logits_shape);
}

struct CrossEntropyBackward {
  Shape logits_shape;
  CrossEntropyOptions opts;
  Reduction reduction;
  int64_t valid_count;

  // dlogits = (softmax(x) - q) * dloss, where dloss is g per position (none), g (sum) or
  // g / valid_count (mean), and 0 at ignored positions. With every target ignored the
  // mean loss is NaN but its gradient is 0, as in PyTorch.
  double scale() const {
    if (reduction != Reduction::mean) return 1.0;
    return valid_count > 0 ? 1.0 / static_cast<double>(valid_count) : 0.0;
  }

  Tensor fused(const Tensor& g, const Tensor& logits, const Tensor& target, const Tensor& row_max,
               const Tensor& row_log_sum) const {
    ops::check_same_dtype("cross_entropy", logits, g);
    const Tensor rows = classes_last(logits), t = target.contiguous(), gc = g.contiguous();
    Tensor drows = empty(rows.shape(), {.dtype = logits.dtype()});
    dispatch_floating(logits.dtype(), "cross_entropy", [&]<class T>() {
      cpu::cross_entropy_backward(rows.data<T>(), t.data<int64_t>(), row_max.data<T>(), row_log_sum.data<T>(),
                                  gc.data<T>(), reduction == Reduction::none ? 1 : 0, scale(), drows.data<T>(),
                                  rows.size(0), rows.size(1), opts.ignore_index, opts.label_smoothing);
    });
    return classes_back(drows, logits_shape);
  }

  // The same formula in Tensor ops, for create_graph (softmax is itself differentiable).
  Tensor composite(const Tensor& g, const Tensor& logits, const Tensor& target) const {
    const Tensor q = target_distribution(target, logits_shape, logits.dtype(), opts.ignore_index,
                                         opts.label_smoothing);
    const Tensor valid = ne(target, static_cast<double>(opts.ignore_index)).to(logits.dtype()).unsqueeze(1);
    const Tensor dloss = reduction == Reduction::none ? g.unsqueeze(1) : g;
    return (softmax(logits, 1) * valid - q) * (dloss * scale());
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
  const int64_t valid_count = count_valid_targets(op, t, logits.size(1), opts.ignore_index);

  const TensorOptions like_logits{.dtype = logits.dtype()};
  Tensor losses = empty(target.shape(), like_logits);
  // Per row, for the backward: lse = row_max + row_log_sum.
  Tensor row_max = empty({target.numel()}, like_logits), row_log_sum = empty({target.numel()}, like_logits);
  Tensor out;
  {
    NoGradGuard no_grad;
    const Tensor rows = classes_last(logits);
    dispatch_floating(logits.dtype(), op, [&]<class T>() {
      cpu::cross_entropy_forward(rows.data<T>(), t.data<int64_t>(), losses.data<T>(), row_max.data<T>(),
                                 row_log_sum.data<T>(), rows.size(0), rows.size(1), opts.ignore_index,
                                 opts.label_smoothing);
    });
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
  const int64_t valid_count = count_valid_targets(op, target.contiguous(), log_probs.size(1), ignore_index);
  const Tensor pick = neg(target_distribution(target, log_probs.shape(), log_probs.dtype(), ignore_index, 0.0));
  return reduce_losses(sum(log_probs * pick, {1}), r, valid_count);
}

// ---- mse_loss --------------------------------------------------------------------------

Tensor mse_loss(const Tensor& input, const Tensor& target, const std::string& reduction) {
  KILN_PROFILE_SCOPE("mse_loss", input, target);
  const char* op = "mse_loss";
  ops::check_cpu(op, {input, target});
  ops::check_floating(op, input);
  ops::check_same_dtype(op, input, target);
  KILN_CHECK(input.shape() == target.shape(), op, ": input ", describe(input), " and target ", describe(target),
             " must have the same shape");
  const Reduction r = parse_reduction(op, reduction);
  const Tensor diff = input - target;
  return reduce_losses(diff * diff, r, input.numel());
}

}  // namespace kiln
