// Reductions. Each op plans how its kernel reads the input (which dims fold away, and
// the geometry of the contiguous array the kernel in ops/cpu/reduce.h walks), runs the
// kernel, and records a backward rule that broadcasts the output gradient back over the
// reduced dims.
//
// Choices where PyTorch leaves room (all tested in tests/test_reduce.cpp):
// - max/min along a dim send the gradient to the first extremal element (the index
//   argmax/argmin return); max()/min() over everything split it evenly among ties, as
//   PyTorch does. NaN counts as the extremum, so it propagates.
// - var/std throw when `correction` leaves no degrees of freedom (count - correction
//   <= 0) instead of returning inf/NaN as PyTorch does: such a result is never wanted.
// - Where a gradient is singular it is 0, never NaN: std and every p-norm where the
//   result is 0, |x|^(p-1) at x = 0 for p < 1, logsumexp of an all -inf slice (PyTorch
//   gives NaN for the last).
// - max/min/argmax/argmin of an empty slice throw (there is no identity); sum gives 0,
//   logsumexp -inf, norm 0.
// - sum counts a bool (b8) mask into i64; the other reductions take f32/f64 (and i64 for
//   max/min/argmax/argmin).
// - Inputs are read in place when contiguous and their reduced dims form at most two
//   blocks; other inputs (non-contiguous views, three or more blocks) are copied first.
//
// CUDA tensors take the same plan: each kernel call below branches to the launcher of
// the same name in cuda/reduce.h, which reads the same geometry; it gets a workspace
// (chunk partials, per-output scratch) allocated here as a kiln tensor.
#include "kiln/ops/reduce.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>

#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"
#include "kiln/core/dispatch.h"
#include "kiln/core/factory.h"
#include "kiln/core/profiler.h"
#include "kiln/ops/common.h"
#include "kiln/ops/cpu/reduce.h"
#include "kiln/cuda/reduce.h"
#include "kiln/ops/elementwise.h"

namespace kiln {

using autograd::Grads;
using autograd::Saved;

namespace {

// ---- planning a reduction -----------------------------------------------------------------

// How a reduction reads its input: which dims it reduces, the shapes of its result, and
// the order and geometry in which the kernel (ops/cpu/reduce.h) walks the input.
struct Plan {
  Shape in_shape;
  Dims dims;         // the reduced dims, wrapped and in increasing order
  Shape out_shape;   // the result: reduced dims dropped, or kept as 1 (keepdim)
  Shape kept_shape;  // reduced dims as 1, so a result broadcasts against the input
  // The kernel reads x.permute(perm) as one contiguous array (x itself when perm is
  // empty), and writes the kept dims in that order.
  std::vector<int64_t> perm;
  cpu::ReduceGeometry geometry;

  int64_t count() const { return geometry.reduced(); }  // elements per output
};

// Fits a contiguous tensor of `shape` to the kernels' (outer, Ra, mid, Rb, inner)
// geometry: read left to right, its dims must form at most the runs kept, reduced,
// kept, reduced, kept (size-1 dims, which do not affect the layout, join any run).
// Returns false when they do not.
bool fit_geometry(const Shape& shape, const std::vector<bool>& reduced, cpu::ReduceGeometry& g) {
  int64_t* extents[] = {&g.outer, &g.Ra, &g.mid, &g.Rb, &g.inner};
  int part = 0;  // index into extents: even parts are kept dims, odd parts reduced
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    const bool want_reduced = reduced[d];
    while ((part % 2 == 1) != want_reduced) {
      if (++part == 5) return false;
    }
    *extents[part] *= shape[d];
  }
  // One reduced block lands in Ra; move it to Rb, the kernels' row extent.
  if (part <= 2) std::swap(g.Ra, g.Rb), std::swap(g.mid, g.inner);
  return true;
}

// The order of x's dims from outermost to innermost in memory when x is dense in that
// order (a transposed or permuted view of a contiguous tensor), so the kernel can read
// it in place; the identity order otherwise (x is contiguous, or will be copied).
std::vector<int64_t> memory_order(const Tensor& x) {
  std::vector<int64_t> order(static_cast<size_t>(x.dim()));
  std::iota(order.begin(), order.end(), 0);
  if (x.is_contiguous()) return order;
  std::vector<int64_t> by_stride = order;
  std::stable_sort(by_stride.begin(), by_stride.end(),
                   [&](int64_t a, int64_t b) { return x.strides()[a] > x.strides()[b]; });
  NoGradGuard no_grad;
  return x.permute(by_stride).is_contiguous() ? by_stride : order;
}

Plan plan_reduction(const Tensor& x, const Dims& dims, bool keepdim, const char* op) {
  ops::check_same_device(op, {x});
  const int64_t n = x.dim();
  // Empty `dims` means every dim. A 0-d tensor accepts dim 0 / -1 and reduces nothing.
  std::vector<bool> reduced(static_cast<size_t>(n), dims.empty());
  std::vector<bool> seen(static_cast<size_t>(std::max<int64_t>(n, 1)), false);
  for (int64_t d : dims) {
    const int64_t w = wrap_dim(d, n, op);
    KILN_CHECK(!seen[w], op, ": dim ", d, " appears more than once in dims ", shape_str(dims), " for ",
               describe(x));
    seen[w] = true;
    if (n > 0) reduced[w] = true;
  }

  Plan p;
  p.in_shape = x.shape();
  for (int64_t d = 0; d < n; ++d) {
    if (reduced[d]) {
      p.dims.push_back(d);
      if (keepdim) p.out_shape.push_back(1);
      p.kept_shape.push_back(1);
    } else {
      p.out_shape.push_back(x.shape()[d]);
      p.kept_shape.push_back(x.shape()[d]);
    }
  }

  const std::vector<int64_t> order = memory_order(x);
  Shape ordered_shape;
  std::vector<bool> ordered_reduced;
  for (int64_t d : order) ordered_shape.push_back(x.shape()[d]), ordered_reduced.push_back(reduced[d]);
  if (fit_geometry(ordered_shape, ordered_reduced, p.geometry)) {
    if (!std::is_sorted(order.begin(), order.end())) p.perm = order;
    return p;
  }
  // Three or more separate blocks of reduced dims: permute the kept dims to the front
  // (a copy), leaving one block of rows.
  p.geometry = {};
  for (int64_t d = 0; d < n; ++d)
    if (!reduced[d]) p.perm.push_back(d), p.geometry.outer *= x.shape()[d];
  for (int64_t d : p.dims) p.perm.push_back(d), p.geometry.Rb *= x.shape()[d];
  return p;
}

// x as the contiguous array the kernels read: x itself when it is contiguous in the
// plan's order, else a copy. Kernels never record autograd.
Tensor kernel_input(const Tensor& x, const Plan& plan) {
  NoGradGuard no_grad;
  return (plan.perm.empty() ? x : x.permute(plan.perm)).contiguous();
}

// The shape of kernel_input(): x's shape in the plan's dim order.
Shape kernel_input_shape(const Plan& plan) {
  if (plan.perm.empty()) return plan.in_shape;
  Shape shape;
  for (int64_t d : plan.perm) shape.push_back(plan.in_shape[d]);
  return shape;
}

// A tensor laid out like kernel_input() (x's dims in the plan's order), viewed in x's
// dim order.
Tensor from_kernel_layout(const Tensor& t, const Plan& plan) {
  if (plan.perm.empty()) return t;
  std::vector<int64_t> inverse(plan.perm.size());
  for (size_t k = 0; k < plan.perm.size(); ++k) inverse[plan.perm[k]] = static_cast<int64_t>(k);
  NoGradGuard no_grad;
  return t.permute(inverse);
}

// The kept dims of x in the order the kernel writes them: the order it reads them in,
// which is x's order unless x is read in a permuted memory order.
std::vector<int64_t> kept_in_kernel_order(const Plan& plan) {
  std::vector<int64_t> kept;
  for (size_t k = 0; k < plan.in_shape.size(); ++k) {
    const int64_t d = plan.perm.empty() ? static_cast<int64_t>(k) : plan.perm[k];
    if (!std::binary_search(plan.dims.begin(), plan.dims.end(), d)) kept.push_back(d);
  }
  return kept;
}

// An uninitialised kernel output on `device`: the kept dims' sizes, in kernel order.
Tensor kernel_output(const Plan& plan, DType dtype, Device device) {
  Shape shape;
  for (int64_t d : kept_in_kernel_order(plan)) shape.push_back(plan.in_shape[d]);
  return empty(shape, {.dtype = dtype, .device = device});
}

// What the CUDA launchers need besides pointers: the plan's geometry, the device, and
// the workspace cuda/reduce.h asks for (a kiln tensor, so it comes from the caching
// allocator and is stream-ordered: freeing it before the kernels finish is safe).
struct GpuReduction {
  cuda::ReduceGeometry geometry;
  int device;
  Tensor workspace;
  void* scratch() const { return workspace.raw_data(); }
};

// For a CUDA tensor x, the GPU side of the plan; nothing for a CPU tensor.
std::optional<GpuReduction> gpu_reduction(const Tensor& x, const Plan& plan) {
  if (!x.device().is_cuda()) return std::nullopt;
  const cpu::ReduceGeometry& g = plan.geometry;
  const cuda::ReduceGeometry geometry{g.outer, g.Ra, g.mid, g.Rb, g.inner};
  const int64_t words = (cuda::reduce_workspace_bytes(geometry) + 7) / 8;
  return GpuReduction{geometry, x.device().index, empty({words}, {.dtype = i64, .device = x.device()})};
}

// A kernel output as the op's result: contiguous, kept dims in x's order, out_shape.
Tensor result_from_kernel(const Tensor& t, const Plan& plan) {
  NoGradGuard no_grad;
  const std::vector<int64_t> kept = kept_in_kernel_order(plan);
  if (std::is_sorted(kept.begin(), kept.end())) return t.view(plan.out_shape);
  std::vector<int64_t> to_x_order(kept.size());  // argsort: where each kept dim of x is in t
  std::iota(to_x_order.begin(), to_x_order.end(), 0);
  std::sort(to_x_order.begin(), to_x_order.end(), [&](int64_t a, int64_t b) { return kept[a] < kept[b]; });
  return t.permute(to_x_order).contiguous().view(plan.out_shape);
}

// Runs `kernel(in, out, gpu)` (a lambda templated on the element type; gpu is null on
// the CPU) for x's dtype: f32 or f64, and i64 too when kNumeric. The result has x's
// dtype and device and the plan's out_shape.
template <bool kNumeric, class Kernel>
Tensor run_reduction(const Tensor& x, const Plan& plan, const char* op, Kernel kernel) {
  const Tensor in = kernel_input(x, plan);
  Tensor out = kernel_output(plan, x.dtype(), x.device());
  const std::optional<GpuReduction> gpu = gpu_reduction(x, plan);
  auto run = [&]<class T>() { kernel(in.data<T>(), out.data<T>(), gpu ? &*gpu : nullptr); };
  if constexpr (kNumeric) dispatch_numeric(x.dtype(), op, run);
  else dispatch_floating(x.dtype(), op, run);
  return result_from_kernel(out, plan);
}

// Re-inserts the reduced dims as size 1 so a result (or its gradient) broadcasts
// against the input.
Tensor unsqueeze_reduced(const Tensor& t, const Plan& plan) {
  return t.shape() == plan.kept_shape ? t : t.reshape(plan.kept_shape);
}

// ---- differentiable helpers for backward rules ------------------------------------------------
// Some gradients below have a singular point where PyTorch picks 0 (a subgradient) rather
// than NaN. Composing ops naively cannot express "0 where b == 0": NaN or inf from the
// unselected branch leaks into the gradient (0 * inf). Each helper below therefore feeds
// the risky op a safe value at the singular points (masked_fill) and masks its result
// again, so both the value and every derivative (double backward included) are 0 there.
// Written with public Tensor ops only, they run on every device.

// -1, 0 or 1. A constant (comparisons have no history): its derivative is 0 wherever it exists.
Tensor sign_of(const Tensor& x) { return gt(x, 0.0).to(x.dtype()) - lt(x, 0.0).to(x.dtype()); }

// a / b, but 0 where b == 0 (and so are its derivatives there).
Tensor div_or_zero(const Tensor& a, const Tensor& b) {
  const Tensor singular = eq(b, 0.0);
  return masked_fill(a / masked_fill(b, singular, 1.0), singular, 0.0);
}

// |x|^e, with derivative e sign(x) |x|^(e-1) taken as 0 at x = 0.
Tensor abs_pow(const Tensor& x, double e) {
  const Tensor at_zero = eq(x, 0.0);
  return masked_fill(pow(masked_fill(abs(x), at_zero, 1.0), e), at_zero, std::pow(0.0, e));
}

// sign(x) |x|^e, which is 0 at x = 0 for every e (also where |x|^e is inf), with
// derivative e |x|^(e-1) taken as 0 at x = 0.
Tensor signed_pow(const Tensor& x, double e) {
  const Tensor at_zero = eq(x, 0.0);
  return masked_fill(sign_of(x) * pow(masked_fill(abs(x), at_zero, 1.0), e), at_zero, 0.0);
}

// exp(x - shift), but 0 where shift == -inf (then every x of the slice is -inf too).
Tensor exp_shifted(const Tensor& x, const Tensor& shift) {
  const Tensor empty_slice = eq(shift, -std::numeric_limits<double>::infinity());
  return masked_fill(exp(x - masked_fill(shift, empty_slice, 0.0)), empty_slice, 0.0);
}

// Constant weights that share a max's (kMax) or min's gradient evenly among the elements
// equal to it (among the elements of largest |x|, weighted by sign(x), when
// `magnitude`), in x's shape.
template <bool kMax>
Tensor tie_weights(const Tensor& x, const Plan& plan, bool magnitude) {
  const Tensor in = kernel_input(x, plan);
  Tensor weights = empty(in.shape(), {.dtype = x.dtype(), .device = x.device()});
  const std::optional<GpuReduction> gpu = gpu_reduction(x, plan);
  dispatch_floating(x.dtype(), "max backward", [&]<class T>() {
    if (gpu) {
      cuda::tie_weights(in.data<T>(), weights.data<T>(), gpu->geometry, kMax, magnitude, gpu->scratch(), gpu->device);
    } else {
      cpu::tie_weights<kMax>(in.data<T>(), weights.data<T>(), plan.geometry, magnitude);
    }
  });
  return from_kernel_layout(weights, plan);
}

// ---- max / min shared code -----------------------------------------------------------------------

struct Extremum {
  Tensor values, indices;
  Tensor kernel_indices;  // indices as the kernel wrote them (see kept_in_kernel_order)
};

template <bool kMax>
Extremum extremum_along(const Tensor& x, int64_t dim, const Plan& plan, const char* op) {
  KILN_CHECK(plan.count() > 0, op, ": cannot reduce dim ", dim, " of ", describe(x), ": it has size 0");
  const Tensor in = kernel_input(x, plan);
  Tensor values = kernel_output(plan, x.dtype(), x.device()), indices = kernel_output(plan, i64, x.device());
  const std::optional<GpuReduction> gpu = gpu_reduction(x, plan);
  dispatch_numeric(x.dtype(), op, [&]<class T>() {
    if (gpu) {
      cuda::extremum_reduce(in.data<T>(), values.data<T>(), indices.data<int64_t>(), gpu->geometry, kMax,
                            gpu->scratch(), gpu->device);
    } else {
      cpu::extremum_reduce<kMax>(in.data<T>(), values.data<T>(), indices.data<int64_t>(), plan.geometry);
    }
  });
  return {result_from_kernel(values, plan), result_from_kernel(indices, plan), indices};
}

// max/min along one dim. Backward: the gradient flows to the element each output was
// taken from (its index), through a constant one-hot mask.
template <bool kMax>
Tensor extremum(const Tensor& x, int64_t dim, bool keepdim, const char* op) {
  KILN_PROFILE_SCOPE(op, x);
  const Plan plan = plan_reduction(x, {dim}, keepdim, op);
  Extremum r = extremum_along<kMax>(x, dim, plan, op);
  autograd::record(op, r.values, {x}, {r.kernel_indices}, [plan](const Tensor& g, const Saved& s) {
    Tensor mask = zeros(kernel_input_shape(plan), {.dtype = g.dtype(), .device = g.device()});
    const cpu::ReduceGeometry& geo = plan.geometry;
    dispatch_floating(g.dtype(), "max backward", [&]<class T>() {
      if (g.device().is_cuda()) {
        cuda::scatter_ones(s[0].data<int64_t>(), mask.data<T>(), {geo.outer, geo.Ra, geo.mid, geo.Rb, geo.inner},
                           g.device().index);
      } else {
        cpu::scatter_ones(s[0].data<int64_t>(), mask.data<T>(), geo);
      }
    });
    return Grads{unsqueeze_reduced(g, plan) * from_kernel_layout(mask, plan)};
  });
  return r.values;
}

// max/min of all elements, a 0-d tensor. Backward: split evenly among ties.
template <bool kMax>
Tensor extremum(const Tensor& x, const char* op) {
  KILN_PROFILE_SCOPE(op, x);
  const Plan plan = plan_reduction(x, {}, false, op);
  KILN_CHECK(x.numel() > 0, op, ": cannot reduce ", describe(x), ": it has no elements");
  Tensor out = run_reduction<true>(x, plan, op, [&]<class T>(const T* in, T* o, const GpuReduction* gpu) {
    if (gpu) cuda::extremum_reduce(in, o, nullptr, gpu->geometry, kMax, gpu->scratch(), gpu->device);
    else cpu::extremum_reduce<kMax>(in, o, nullptr, plan.geometry);
  });
  autograd::record(op, out, {x}, {x}, [plan](const Tensor& g, const Saved& s) {
    return Grads{g * tie_weights<kMax>(s[0], plan, /*magnitude=*/false)};
  });
  return out;
}

// ---- var / std shared code ---------------------------------------------------------------------

double degrees_of_freedom(const Tensor& x, const Plan& plan, int64_t correction, const char* op) {
  KILN_CHECK(plan.count() - correction > 0, op, ": correction ", correction,
             " leaves no degrees of freedom: each output reduces ", plan.count(), " element(s) of ", describe(x),
             " (need more elements than the correction)");
  return static_cast<double>(plan.count() - correction);
}

// d var / dx = 2 (x - mean) / dof, times the incoming gradient (reduced dims as size 1).
Tensor variance_backward(const Tensor& g_kept, const Tensor& x, const Plan& plan, double dof) {
  return g_kept * (x - mean(x, plan.dims, /*keepdim=*/true)) * (2.0 / dof);
}

}  // namespace

// ---- sum ---------------------------------------------------------------------------
// Backward: every input element contributed once, so its gradient is the output's,
// broadcast back over the reduced dims.

Tensor sum(const Tensor& x, const Dims& dims, bool keepdim) {
  // A bool mask sums to an i64 count, as in PyTorch (sum(eq(pred, target)) counts hits).
  if (x.defined() && x.dtype() == b8) return sum(x.to(i64), dims, keepdim);
  KILN_PROFILE_SCOPE("sum", x);
  const Plan plan = plan_reduction(x, dims, keepdim, "sum");
  Tensor out = run_reduction<true>(x, plan, "sum", [&]<class T>(const T* in, T* o, const GpuReduction* gpu) {
    if (gpu) cuda::sum_reduce(in, o, gpu->geometry, gpu->scratch(), gpu->device);
    else cpu::sum_reduce(in, o, plan.geometry);
  });
  autograd::record("sum", out, {x}, {}, [plan](const Tensor& g, const Saved&) {
    return Grads{unsqueeze_reduced(g, plan).expand(plan.in_shape)};
  });
  return out;
}

Tensor sum(const Tensor& x) { return sum(x, {}, false); }

// ---- mean ----------------------------------------------------------------------------
// sum / count; the backward comes from sum and mul.

Tensor mean(const Tensor& x, const Dims& dims, bool keepdim) {
  KILN_PROFILE_SCOPE("mean", x);
  ops::check_floating("mean", x);
  const Plan plan = plan_reduction(x, dims, keepdim, "mean");
  return sum(x, dims, keepdim) * (1.0 / static_cast<double>(plan.count()));
}

Tensor mean(const Tensor& x) { return mean(x, {}, false); }

// ---- max / min / argmax / argmin ---------------------------------------------------------

Tensor max(const Tensor& x) { return extremum<true>(x, "max"); }
Tensor min(const Tensor& x) { return extremum<false>(x, "min"); }
Tensor max(const Tensor& x, int64_t dim, bool keepdim) { return extremum<true>(x, dim, keepdim, "max"); }
Tensor min(const Tensor& x, int64_t dim, bool keepdim) { return extremum<false>(x, dim, keepdim, "min"); }

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  KILN_PROFILE_SCOPE("argmax", x);
  const Plan plan = plan_reduction(x, {dim}, keepdim, "argmax");
  return extremum_along<true>(x, dim, plan, "argmax").indices;
}

Tensor argmin(const Tensor& x, int64_t dim, bool keepdim) {
  KILN_PROFILE_SCOPE("argmin", x);
  const Plan plan = plan_reduction(x, {dim}, keepdim, "argmin");
  return extremum_along<false>(x, dim, plan, "argmin").indices;
}

// ---- var / std --------------------------------------------------------------------------------

Tensor var(const Tensor& x, const Dims& dims, int64_t correction, bool keepdim) {
  KILN_PROFILE_SCOPE("var", x);
  ops::check_floating("var", x);
  const Plan plan = plan_reduction(x, dims, keepdim, "var");
  const double dof = degrees_of_freedom(x, plan, correction, "var");
  Tensor out = run_reduction<false>(x, plan, "var", [&]<class T>(const T* in, T* o, const GpuReduction* gpu) {
    if (gpu) cuda::variance_reduce(in, o, gpu->geometry, dof, /*take_sqrt=*/false, gpu->scratch(), gpu->device);
    else cpu::variance_reduce(in, o, plan.geometry, dof, /*take_sqrt=*/false);
  });
  autograd::record("var", out, {x}, {x}, [plan, dof](const Tensor& g, const Saved& s) {
    return Grads{variance_backward(unsqueeze_reduced(g, plan), s[0], plan, dof)};
  });
  return out;
}

// d std = d var / (2 std), taken as 0 where std == 0 (a constant slice), as PyTorch does.
Tensor std(const Tensor& x, const Dims& dims, int64_t correction, bool keepdim) {
  KILN_PROFILE_SCOPE("std", x);
  ops::check_floating("std", x);
  const Plan plan = plan_reduction(x, dims, keepdim, "std");
  const double dof = degrees_of_freedom(x, plan, correction, "std");
  Tensor out = run_reduction<false>(x, plan, "std", [&]<class T>(const T* in, T* o, const GpuReduction* gpu) {
    if (gpu) cuda::variance_reduce(in, o, gpu->geometry, dof, /*take_sqrt=*/true, gpu->scratch(), gpu->device);
    else cpu::variance_reduce(in, o, plan.geometry, dof, /*take_sqrt=*/true);
  });
  autograd::record("std", out, {x}, {x, out}, [plan, dof](const Tensor& g, const Saved& s) {
    const Tensor g_var = div_or_zero(unsqueeze_reduced(g, plan), unsqueeze_reduced(s[1], plan) * 2.0);
    return Grads{variance_backward(g_var, s[0], plan, dof)};
  });
  return out;
}

// ---- logsumexp ------------------------------------------------------------------------------
// d/dx log sum exp(x) = exp(x - logsumexp(x)), the softmax over the reduced dims
// (0 for a slice that is all -inf, where PyTorch gives NaN).

Tensor logsumexp(const Tensor& x, const Dims& dims, bool keepdim) {
  KILN_PROFILE_SCOPE("logsumexp", x);
  ops::check_floating("logsumexp", x);
  const Plan plan = plan_reduction(x, dims, keepdim, "logsumexp");
  Tensor out = run_reduction<false>(x, plan, "logsumexp", [&]<class T>(const T* in, T* o, const GpuReduction* gpu) {
    if (gpu) cuda::logsumexp_reduce(in, o, gpu->geometry, gpu->scratch(), gpu->device);
    else cpu::logsumexp_reduce(in, o, plan.geometry);
  });
  autograd::record("logsumexp", out, {x}, {x, out}, [plan](const Tensor& g, const Saved& s) {
    return Grads{unsqueeze_reduced(g, plan) * exp_shifted(s[0], unsqueeze_reduced(s[1], plan))};
  });
  return out;
}

// ---- norm -----------------------------------------------------------------------------------
// d ||x||_p / dx = sign(x) |x|^(p-1) / ||x||^(p-1), which is, by p:
//   1:   sign(x) (0 at x = 0)
//   2:   x / ||x|| (0 when ||x|| = 0: PyTorch's subgradient, not NaN)
//   inf: sign(x) at the elements where |x| is largest, split evenly among ties
// For any p the gradient is 0 when ||x|| = 0, and at x = 0 when p < 1.

Tensor norm(const Tensor& x, double p, const Dims& dims, bool keepdim) {
  KILN_PROFILE_SCOPE("norm", x);
  ops::check_floating("norm", x);
  KILN_CHECK(p > 0, "norm: p must be > 0 (or inf), got ", p);
  const Plan plan = plan_reduction(x, dims, keepdim, "norm");
  Tensor out = run_reduction<false>(x, plan, "norm", [&]<class T>(const T* in, T* o, const GpuReduction* gpu) {
    if (gpu) cuda::norm_reduce(in, o, gpu->geometry, p, gpu->scratch(), gpu->device);
    else cpu::norm_reduce(in, o, plan.geometry, p);
  });
  autograd::record("norm", out, {x}, {x, out}, [plan, p](const Tensor& g, const Saved& s) {
    const Tensor& x = s[0];
    const Tensor g_kept = unsqueeze_reduced(g, plan), norm_kept = unsqueeze_reduced(s[1], plan);
    if (p == 1) return Grads{g_kept * sign_of(x)};
    if (p == 2) return Grads{x * div_or_zero(g_kept, norm_kept)};
    if (std::isinf(p)) return Grads{g_kept * tie_weights</*kMax=*/true>(x, plan, /*magnitude=*/true)};
    return Grads{signed_pow(x, p - 1) * div_or_zero(g_kept, abs_pow(norm_kept, p - 1))};
  });
  return out;
}

// ---- sum_to --------------------------------------------------------------------------

Tensor sum_to(const Tensor& x, const Shape& shape) {
  KILN_PROFILE_SCOPE("sum_to", x);
  if (x.shape() == shape) return x;
  const int64_t lead = x.dim() - static_cast<int64_t>(shape.size());
  KILN_CHECK(lead >= 0, "sum_to: cannot sum ", shape_str(x.shape()), " down to ", shape_str(shape));
  Dims dims;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d < lead) {
      dims.push_back(d);
    } else if (shape[d - lead] == 1 && x.shape()[d] != 1) {
      dims.push_back(d);
    } else {
      KILN_CHECK(shape[d - lead] == x.shape()[d], "sum_to: cannot sum ", shape_str(x.shape()), " down to ",
                 shape_str(shape));
    }
  }
  if (dims.empty()) return x.reshape(shape);
  return sum(x, dims, /*keepdim=*/true).reshape(shape);
}

}  // namespace kiln
