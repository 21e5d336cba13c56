// ContextPool, the op: argument checks, the fused kernels (ops/cpu/context_pool.*, where
// the backward formulas are derived; cuda/context_pool.* on the GPU, same formulas), and
// the autograd rule.
//
// 1-D and 2-D share everything: a sequence (B, n, d) is a grid of height 1, (B, 1, n, d).
//
// Checks that read values. s is scanned once before the kernel (B * n_out values, against
// the kernel's B * n_out * (2W+1) * d multiply-adds): every s must be > 0 (NaN and s <= 0
// are refused: the Gaussian would be NaN or a division by zero), and the scan gives max(s)
// that window = 0 needs anyway. s = +inf (a flat window) is allowed only with an explicit
// window, since ceil(3 * inf) is no window. m is not scanned: the module produces it with
// a sigmoid, and any m >= 0 gives a well-defined average (m < 0 is the caller's business).
// On the GPU, reading s means waiting for the GPU, so s is read on the host only when the
// window must come from it (window = 0; the nn module always passes a window). With an
// explicit window a check kernel scans a CUDA s instead, and an s <= 0 or NaN is reported
// as kiln::Error at the next synchronisation (cuda/device_check.h; the outputs are NaN
// until then).
//
// Double backward. The fused backward kernel is a black box to autograd, so the backward
// rule has two paths, like layer_norm's (ops/normalization.cpp):
//   - plain backward (grad mode off): the fused kernel;
//   - backward with create_graph (grad mode on): the same first derivatives written with
//     Tensor ops over a dense (n_out x n) Gaussian matrix, which autograd records, so
//     second derivatives are exact. It costs O(n_out * n) memory: fine for the small
//     problems double backward is used on (gradient penalties, tests), not for training.
#include "kiln/ops/context_pool.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <vector>

#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"
#include "kiln/core/dispatch.h"
#include "kiln/core/factory.h"
#include "kiln/core/profiler.h"
#include "kiln/cuda/context_pool.h"
#include "kiln/cuda/device_check.h"
#include "kiln/ops/common.h"
#include "kiln/ops/cpu/context_pool.h"
#include "kiln/ops/elementwise.h"
#include "kiln/ops/linalg.h"
#include "kiln/ops/reduce.h"

namespace kiln {

using autograd::Grads;
using autograd::Saved;
using cpu::ContextPoolGeometry;

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// One call's shapes, as the kernels see them, plus what error messages need.
struct ContextPoolCall {
  const char* op;
  ContextPoolGeometry geometry;
  Shape x_shape, m_shape, s_shape;
};

// Shapes, dtypes, device and options; fills in the geometry except the window.
ContextPoolCall plan_call(const char* op, int spatial, const Tensor& x, const Tensor& m, const Tensor& s,
                          const ContextPoolOptions& options) {
  ops::check_same_device(op, {x, m, s});
  ops::check_floating(op, x);
  ops::check_same_dtype(op, x, m);
  ops::check_same_dtype(op, x, s);
  const char* x_layout = spatial == 1 ? "a 3-D (B, n, d)" : "a 4-D (B, H, W, d)";
  KILN_CHECK(x.dim() == spatial + 2, op, ": x must be ", x_layout, " tensor, got ", describe(x));
  KILN_CHECK(options.stride >= 1, op, ": stride must be >= 1, got ", options.stride);
  KILN_CHECK(options.window >= 0, op, ": window must be >= 0 (0 = ceil(3 * max(s))), got ", options.window);
  KILN_CHECK(options.eps >= 0 && std::isfinite(options.eps), op, ": eps must be finite and >= 0, got ", options.eps);
  KILN_CHECK(!(spatial == 2 && options.causal), op, ": causal pooling is only defined for sequences (context_pool), "
             "not on a 2-D grid");

  ContextPoolCall call{op, {}, x.shape(), {}, {}};
  ContextPoolGeometry& g = call.geometry;
  g.batch = x.size(0);
  g.height = spatial == 1 ? 1 : x.size(1);
  g.width = x.size(-2);
  g.channels = x.size(-1);
  g.stride = options.stride;
  g.out_height = ceil_div(g.height, g.stride);
  g.out_width = ceil_div(g.width, g.stride);
  g.causal = options.causal;
  g.eps = options.eps;

  call.m_shape = Shape(x.shape().begin(), x.shape().end() - 1);
  call.s_shape = spatial == 1 ? Shape{g.batch, g.out_width} : Shape{g.batch, g.out_height, g.out_width};
  KILN_CHECK(m.shape() == call.m_shape, op, ": m must have shape ", shape_str(call.m_shape), " (x ", describe(x),
             " without its channel dim), got ", describe(m));
  KILN_CHECK(s.shape() == call.s_shape, op, ": s must have shape ", shape_str(call.s_shape),
             " (one support size per output token, stride ", g.stride, "), got ", describe(s));
  return call;
}

// W never needs to exceed the grid's extent - 1.
int64_t largest_useful_window(const ContextPoolGeometry& g) {
  return std::max<int64_t>(0, std::max(g.height, g.width) - 1);
}

// The window half-width W: options.window, or ceil(3 * max(s)) when it is 0. Checks every
// s > 0 on the way (see the file comment); s is host memory.
template <class T>
int64_t scan_window(const ContextPoolCall& call, const T* s, int64_t count, int64_t requested) {
  double max_s = 0;
  for (int64_t i = 0; i < count; ++i) {
    KILN_CHECK(s[i] > 0, call.op, ": support sizes s must be > 0 (and not NaN), got ", s[i], " at flat index ", i,
               " of s ", shape_str(call.s_shape));
    max_s = std::max(max_s, static_cast<double>(s[i]));
  }
  const int64_t largest_useful = largest_useful_window(call.geometry);
  if (requested > 0) return std::min(requested, largest_useful);
  KILN_CHECK(std::isfinite(max_s), call.op, ": s holds +inf (a flat window), which needs an explicit window "
             "(options.window > 0): the default ceil(3 * max(s)) would be infinite");
  const double window = std::ceil(3 * max_s);
  return window >= static_cast<double>(largest_useful) ? largest_useful : static_cast<int64_t>(window);
}

// scan_window for a contiguous s on any device. A CUDA s is copied to the host (a wait
// for the GPU) only when the window must be read from it; see the file comment.
int64_t resolve_window(const ContextPoolCall& call, const Tensor& s, int64_t requested) {
  if (s.device().is_cuda() && requested > 0) {
    dispatch_floating(s.dtype(), call.op, [&]<class T>() {
      cuda::check_positive<T>(call.op, "support size s", s.data<T>(), s.numel(), s.device().index);
    });
    return std::min(requested, largest_useful_window(call.geometry));
  }
  const Tensor s_host = s.to(Device::cpu());
  return dispatch_floating(s.dtype(), call.op, [&]<class T>() {
    return scan_window(call, s_host.data<T>(), s_host.numel(), requested);
  });
}

// ---- backward ---------------------------------------------------------------------------

// The fused kernel. Saved tensors are the caller's own (so create_graph can differentiate
// through them), hence the contiguous copies here.
Grads backward_fused(const ContextPoolCall& call, const Tensor& gy, const Saved& saved) {
  const Tensor &x = saved[0], &m = saved[1], &s = saved[2], &y = saved[3];
  ops::check_same_dtype(call.op, x, gy);
  const Tensor xc = x.contiguous(), mc = m.contiguous(), sc = s.contiguous(), gyc = gy.contiguous();
  const bool on_gpu = x.device().is_cuda();
  auto empty_if = [&](bool needed, const Shape& shape) {
    return needed ? empty(shape, {.dtype = x.dtype(), .device = x.device()}) : Tensor();
  };
  Tensor dx = empty_if(saved.needs_grad(0), x.shape());
  Tensor dm = empty_if(saved.needs_grad(1), m.shape());
  Tensor ds = empty_if(saved.needs_grad(2), s.shape());
  // The GPU backward's band buffers (cuda/context_pool.h), one per gradient gathered per input.
  const Shape band_shape{on_gpu ? cuda::context_pool_band_elements(call.geometry) : 0};
  const Tensor dx_band = empty_if(on_gpu && dx.defined(), band_shape);
  const Tensor dm_band = empty_if(on_gpu && dm.defined(), band_shape);
  dispatch_floating(x.dtype(), call.op, [&]<class T>() {
    auto out = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
    if (on_gpu) {
      cuda::context_pool_backward(call.geometry, xc.data<T>(), mc.data<T>(), sc.data<T>(), y.data<T>(),
                                  gyc.data<T>(), out(dx), out(dm), out(ds), out(dx_band), out(dm_band),
                                  x.device().index);
    } else {
      cpu::context_pool_backward(call.geometry, xc.data<T>(), mc.data<T>(), sc.data<T>(), y.data<T>(),
                                 gyc.data<T>(), out(dx), out(dm), out(ds));
    }
  });
  return {dx, dm, ds};
}

// Constants of the dense form, (outputs x inputs) per batch: squared distances from each
// output's centre to each input cell, and the window mask (1 inside, 0 outside). Built on
// the host, then moved to `device`.
struct DenseLayout {
  Tensor squared_distance, mask;
};

DenseLayout dense_layout(const ContextPoolGeometry& g, DType dtype, Device device) {
  const int64_t outputs = g.outputs(), inputs = g.inputs();
  std::vector<double> distance(outputs * inputs), mask(outputs * inputs);
  for (int64_t o = 0; o < outputs; ++o) {
    const int64_t ci = (o / g.out_width) * g.stride, cj = (o % g.out_width) * g.stride;
    for (int64_t q = 0; q < inputs; ++q) {
      const int64_t dr = q / g.width - ci, dc = q % g.width - cj;
      const bool inside = std::abs(dr) <= g.window && std::abs(dc) <= g.window && !(g.causal && dc > 0);
      distance[o * inputs + q] = static_cast<double>(dr * dr + dc * dc);
      mask[o * inputs + q] = inside ? 1.0 : 0.0;
    }
  }
  return {from_vector(distance, {outputs, inputs}, {.dtype = dtype}).to(device),
          from_vector(mask, {outputs, inputs}, {.dtype = dtype}).to(device)};
}

// The fused kernel's formulas (ops/cpu/context_pool.cpp) as a graph of Tensor ops over
// the dense (B, outputs, inputs) weight matrix, for create_graph. y is the saved output:
// its own node is this op, so second derivatives flow through it too (as softmax's do).
Grads backward_composite(const ContextPoolCall& call, const Tensor& gy, const Saved& saved) {
  const ContextPoolGeometry& g = call.geometry;
  const int64_t inputs = g.inputs(), outputs = g.outputs(), d = g.channels;
  const DenseLayout layout = dense_layout(g, saved[0].dtype(), saved[0].device());
  const Tensor x = saved[0].reshape({g.batch, inputs, d});
  const Tensor m = saved[1].reshape({g.batch, 1, inputs});
  const Tensor s = saved[2].reshape({g.batch, outputs, 1});
  const Tensor y = saved[3].reshape({g.batch, outputs, d});
  const Tensor gy3 = gy.reshape({g.batch, outputs, d});

  const Tensor gauss = exp(layout.squared_distance * (pow(s, -2.0) * -0.5)) * layout.mask;  // g_o(q)
  const Tensor w = gauss * m;
  const Tensor z = sum(w, {2}, /*keepdim=*/true) + g.eps;
  // a_oq = gy_o . (x_q - y_o) / Z_o
  const Tensor a = (matmul(gy3, x.transpose(1, 2)) - sum(gy3 * y, {2}, /*keepdim=*/true)) / z;
  Tensor dx, dm, ds;
  if (saved.needs_grad(0)) dx = matmul((w / z).transpose(1, 2), gy3).reshape(call.x_shape);
  if (saved.needs_grad(1)) dm = sum(gauss * a, {1}).reshape(call.m_shape);
  if (saved.needs_grad(2)) ds = (sum(a * w * layout.squared_distance, {2}, true) * pow(s, -3.0)).reshape(call.s_shape);
  return {dx, dm, ds};
}

// ---- forward ----------------------------------------------------------------------------

Tensor context_pool_impl(const char* op, int spatial, const Tensor& x, const Tensor& m, const Tensor& s,
                         const ContextPoolOptions& options) {
  ContextPoolCall call = plan_call(op, spatial, x, m, s, options);
  Shape y_shape = call.s_shape;
  y_shape.push_back(call.geometry.channels);
  Tensor y = empty(y_shape, {.dtype = x.dtype(), .device = x.device()});
  {
    NoGradGuard no_grad;  // the copies are an implementation detail, not part of the graph
    const Tensor xc = x.contiguous(), mc = m.contiguous(), sc = s.contiguous();
    call.geometry.window = resolve_window(call, sc, options.window);
    dispatch_floating(x.dtype(), op, [&]<class T>() {
      if (x.device().is_cuda()) {
        cuda::context_pool_forward(call.geometry, xc.data<T>(), mc.data<T>(), sc.data<T>(), y.data<T>(),
                                   x.device().index);
      } else {
        cpu::context_pool_forward(call.geometry, xc.data<T>(), mc.data<T>(), sc.data<T>(), y.data<T>());
      }
    });
  }
  autograd::record(op, y, {x, m, s}, {x, m, s, y}, [call](const Tensor& gy, const Saved& saved) {
    if (GradMode::is_enabled()) return backward_composite(call, gy, saved);
    return backward_fused(call, gy, saved);
  });
  return y;
}

}  // namespace

Tensor context_pool(const Tensor& x, const Tensor& m, const Tensor& s, const ContextPoolOptions& options) {
  KILN_PROFILE_SCOPE("context_pool", x, m, s);
  return context_pool_impl("context_pool", 1, x, m, s, options);
}

Tensor context_pool2d(const Tensor& x, const Tensor& m, const Tensor& s, const ContextPoolOptions& options) {
  KILN_PROFILE_SCOPE("context_pool2d", x, m, s);
  return context_pool_impl("context_pool2d", 2, x, m, s, options);
}

}  // namespace kiln
