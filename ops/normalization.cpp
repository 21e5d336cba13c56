// Softmax, log-softmax and layer norm: fused kernels on the CPU (ops/cpu/softmax.*,
// ops/cpu/layer_norm.*) and on CUDA (cuda/softmax.*, cuda/layer_norm.*), each with a
// dedicated backward kernel. Both devices share the argument checks, the kernels'
// contiguous layout and the autograd rules; only the kernel call differs.
//
// Double backward. A fused backward kernel is a black box to autograd, so each
// backward rule below has two paths:
//   - plain backward (grad mode is off while it runs): the fused kernel;
//   - backward with create_graph (grad mode is on): the same formula written with
//     Tensor ops, which autograd records, so second derivatives are exact.
// Both paths compute the same first derivative; the tests check both.
#include "kiln/ops/normalization.h"

#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"
#include "kiln/core/dispatch.h"
#include "kiln/core/factory.h"
#include "kiln/core/profiler.h"
#include "kiln/cuda/layer_norm.h"
#include "kiln/cuda/softmax.h"
#include "kiln/ops/common.h"
#include "kiln/ops/cpu/layer_norm.h"
#include "kiln/ops/cpu/softmax.h"
#include "kiln/ops/elementwise.h"
#include "kiln/ops/reduce.h"

namespace kiln {

using autograd::Grads;
using autograd::Saved;

namespace {

// A contiguous tensor seen as (outer, n, inner) around one dim.
struct DimSplit {
  int64_t outer = 1, n = 1, inner = 1;
};

DimSplit split_at(const Shape& shape, int64_t dim) {
  DimSplit s;
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    if (d < dim) s.outer *= shape[d];
    else if (d == dim) s.n = shape[d];
    else s.inner *= shape[d];
  }
  return s;
}

// Checks x and wraps dim (a 0-d tensor counts as one element along dim 0 or -1).
int64_t softmax_dim(const char* op, const Tensor& x, int64_t dim) {
  ops::check_same_device(op, {x});
  ops::check_floating(op, x);
  return wrap_dim(dim, std::max<int64_t>(x.dim(), 1), op);
}

// y = kernel(x) along dim, for cpu_kernel(x, y, outer, n, inner) or, for a CUDA
// tensor, gpu_kernel(x, y, outer, n, inner, device).
template <class CpuKernel, class GpuKernel>
Tensor forward_along_dim(const char* op, const Tensor& x, int64_t dim, CpuKernel cpu_kernel, GpuKernel gpu_kernel) {
  NoGradGuard no_grad;  // the copy below is an implementation detail, not part of the graph
  const Tensor xc = x.contiguous();
  Tensor y = empty(x.shape(), {.dtype = x.dtype(), .device = x.device()});
  const DimSplit s = split_at(x.shape(), dim);
  dispatch_floating(x.dtype(), op, [&]<class T>() {
    if (x.device().is_cuda()) gpu_kernel(xc.data<T>(), y.data<T>(), s.outer, s.n, s.inner, x.device().index);
    else cpu_kernel(xc.data<T>(), y.data<T>(), s.outer, s.n, s.inner);
  });
  return y;
}

// dx = kernel(y, g) along dim, for cpu_kernel(y, g, dx, outer, n, inner) or
// gpu_kernel(y, g, dx, outer, n, inner, device); y is contiguous.
template <class CpuKernel, class GpuKernel>
Tensor backward_along_dim(const char* op, const Tensor& y, const Tensor& g, int64_t dim, CpuKernel cpu_kernel,
                          GpuKernel gpu_kernel) {
  ops::check_same_dtype(op, y, g);
  const Tensor gc = g.contiguous();
  Tensor dx = empty(y.shape(), {.dtype = y.dtype(), .device = y.device()});
  const DimSplit s = split_at(y.shape(), dim);
  dispatch_floating(y.dtype(), op, [&]<class T>() {
    if (y.device().is_cuda()) {
      gpu_kernel(y.data<T>(), gc.data<T>(), dx.data<T>(), s.outer, s.n, s.inner, y.device().index);
    } else {
      cpu_kernel(y.data<T>(), gc.data<T>(), dx.data<T>(), s.outer, s.n, s.inner);
    }
  });
  return dx;
}

}  // namespace

// ---- softmax -------------------------------------------------------------------------
// Backward, from the output y: dx = y * (g - sum(g * y)) along dim.

Tensor softmax(const Tensor& x, int64_t dim) {
  KILN_PROFILE_SCOPE("softmax", x);
  dim = softmax_dim("softmax", x, dim);
  Tensor y = forward_along_dim(
      "softmax", x, dim, [](auto... args) { cpu::softmax_forward(args...); },
      [](auto... args) { cuda::softmax_forward(args...); });
  autograd::record("softmax", y, {x}, {y}, [dim](const Tensor& g, const Saved& s) {
    const Tensor& y = s[0];
    if (GradMode::is_enabled()) return Grads{y * (g - sum(g * y, {dim}, /*keepdim=*/true))};
    return Grads{backward_along_dim(
        "softmax", y, g, dim, [](auto... args) { cpu::softmax_backward(args...); },
        [](auto... args) { cuda::softmax_backward(args...); })};
  });
  return y;
}

// ---- log_softmax -----------------------------------------------------------------------
// Backward, from the output y = log p: dx = g - exp(y) * sum(g) along dim.

Tensor log_softmax(const Tensor& x, int64_t dim) {
  KILN_PROFILE_SCOPE("log_softmax", x);
  dim = softmax_dim("log_softmax", x, dim);
  Tensor y = forward_along_dim(
      "log_softmax", x, dim, [](auto... args) { cpu::log_softmax_forward(args...); },
      [](auto... args) { cuda::log_softmax_forward(args...); });
  autograd::record("log_softmax", y, {x}, {y}, [dim](const Tensor& g, const Saved& s) {
    const Tensor& y = s[0];
    if (GradMode::is_enabled()) return Grads{g - exp(y) * sum(g, {dim}, /*keepdim=*/true)};
    return Grads{backward_along_dim(
        "log_softmax", y, g, dim, [](auto... args) { cpu::log_softmax_backward(args...); },
        [](auto... args) { cuda::log_softmax_backward(args...); })};
  });
  return y;
}

// ---- layer_norm ----------------------------------------------------------------------------
// Per row: xhat = (x - mean) * rstd, y = xhat * weight + bias. Backward, with gw = g * weight
// and means over the row:
//   dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat)),  dweight = sum_rows(g * xhat),
//   dbias = sum_rows(g).
// The forward saves mean and rstd per row; the fused backward uses them, the composite
// one recomputes them with Tensor ops so they are differentiable in x as well.

namespace {

void check_layer_norm_args(const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                           const Tensor& bias, double eps) {
  const char* op = "layer_norm";
  ops::check_same_device(op, {x});
  ops::check_floating(op, x);
  const int64_t k = static_cast<int64_t>(normalized_shape.size());
  bool trailing_match = k >= 1 && k <= x.dim();
  for (int64_t i = 0; trailing_match && i < k; ++i)
    trailing_match = x.shape()[x.dim() - k + i] == normalized_shape[i];
  KILN_CHECK(trailing_match, op, ": normalized_shape ", shape_str(normalized_shape),
             " must be non-empty and match the trailing dims of the input ", describe(x));
  for (const Tensor* p : {&weight, &bias}) {
    if (!p->defined()) continue;
    const char* name = p == &weight ? "weight" : "bias";
    ops::check_same_device(op, {x, *p});
    ops::check_same_dtype(op, x, *p);
    KILN_CHECK(p->shape() == normalized_shape, op, ": ", name, " ", describe(*p), " must have the normalized_shape ",
               shape_str(normalized_shape));
  }
  // A negative eps would make the rstd of a constant row NaN.
  KILN_CHECK(eps >= 0, op, ": eps must be >= 0, got ", eps);
}

Grads layer_norm_backward_fused(const Tensor& g, const Saved& s, int64_t n) {
  const Tensor &x = s[0], &weight = s[1], &row_mean = s[3], &row_rstd = s[4];
  ops::check_same_dtype("layer_norm", x, g);
  const Tensor xc = x.contiguous(), gc = g.contiguous();
  const TensorOptions like_x{.dtype = x.dtype(), .device = x.device()};
  const Tensor w = weight.defined() ? weight.contiguous() : ones({n}, like_x);
  Tensor dx = s.needs_grad(0) ? empty(x.shape(), like_x) : Tensor();
  Tensor dweight = s.needs_grad(1) ? empty(weight.shape(), like_x) : Tensor();
  Tensor dbias = s.needs_grad(2) ? empty(s[2].shape(), like_x) : Tensor();
  const int64_t rows = row_mean.numel();
  // The GPU kernel sums dweight/dbias over rows in two deterministic passes through
  // this workspace (no float atomics).
  const Tensor workspace = x.device().is_cuda() && (dweight.defined() || dbias.defined())
                               ? empty({cuda::layer_norm_backward_workspace(rows, n)}, like_x)
                               : Tensor();
  dispatch_floating(x.dtype(), "layer_norm", [&]<class T>() {
    auto ptr = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
    if (x.device().is_cuda()) {
      cuda::layer_norm_backward(xc.data<T>(), row_mean.data<T>(), row_rstd.data<T>(), w.data<T>(), gc.data<T>(),
                                ptr(dx), ptr(dweight), ptr(dbias), rows, n, ptr(workspace), x.device().index);
    } else {
      cpu::layer_norm_backward(xc.data<T>(), row_mean.data<T>(), row_rstd.data<T>(), w.data<T>(), gc.data<T>(),
                               ptr(dx), ptr(dweight), ptr(dbias), rows, n);
    }
  });
  return {dx, dweight, dbias};
}

// The same gradients as the fused kernel, as a graph of Tensor ops (for create_graph).
Grads layer_norm_backward_composite(const Tensor& g, const Saved& s, const Shape& normalized_shape, double eps) {
  const Tensor &x = s[0], &weight = s[1];
  Dims dims;
  for (int64_t d = x.dim() - static_cast<int64_t>(normalized_shape.size()); d < x.dim(); ++d) dims.push_back(d);
  const Tensor centered = x - mean(x, dims, true);
  const Tensor rstd = rsqrt(mean(centered * centered, dims, true) + eps);
  const Tensor xhat = centered * rstd;
  const Tensor gw = weight.defined() ? g * weight : g;
  Tensor dx, dweight, dbias;
  if (s.needs_grad(0)) dx = rstd * (gw - mean(gw, dims, true) - xhat * mean(gw * xhat, dims, true));
  if (s.needs_grad(1)) dweight = sum_to(g * xhat, normalized_shape);
  if (s.needs_grad(2)) dbias = sum_to(g, normalized_shape);
  return {dx, dweight, dbias};
}

}  // namespace

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                  double eps) {
  KILN_PROFILE_SCOPE("layer_norm", x, weight, bias);
  check_layer_norm_args(x, normalized_shape, weight, bias, eps);
  const int64_t n = numel_of(normalized_shape);
  const int64_t rows = n == 0 ? 0 : x.numel() / n;
  const TensorOptions like_x{.dtype = x.dtype(), .device = x.device()};
  Tensor y = empty(x.shape(), like_x), row_mean = empty({rows}, like_x), row_rstd = empty({rows}, like_x);
  {
    NoGradGuard no_grad;
    const Tensor xc = x.contiguous();
    const Tensor w = weight.defined() ? weight.contiguous() : ones({n}, like_x);
    const Tensor b = bias.defined() ? bias.contiguous() : zeros({n}, like_x);
    dispatch_floating(x.dtype(), "layer_norm", [&]<class T>() {
      if (x.device().is_cuda()) {
        cuda::layer_norm_forward(xc.data<T>(), w.data<T>(), b.data<T>(), y.data<T>(), row_mean.data<T>(),
                                 row_rstd.data<T>(), rows, n, eps, x.device().index);
      } else {
        cpu::layer_norm_forward(xc.data<T>(), w.data<T>(), b.data<T>(), y.data<T>(), row_mean.data<T>(),
                                row_rstd.data<T>(), rows, n, eps);
      }
    });
  }
  autograd::record("layer_norm", y, {x, weight, bias}, {x, weight, bias, row_mean, row_rstd},
                   [normalized_shape, n, eps](const Tensor& g, const Saved& s) {
                     if (GradMode::is_enabled()) return layer_norm_backward_composite(g, s, normalized_shape, eps);
                     return layer_norm_backward_fused(g, s, n);
                   });
  return y;
}

}  // namespace kiln
