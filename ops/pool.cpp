// Pooling ops: argument checks, the plane kernels (ops/cpu/pool.h on the CPU,
// cuda/pool.h on the GPU), backward rules.
//
// Every pool here is linear in its input once the windows (and, for max pooling, the
// position of each maximum) are fixed, so each backward is the adjoint map, and the
// adjoint's gradient is the forward map again. Each map is an op with its own node,
// so gradients of any order work:
//
//   average pool  A(x)             backward: A^T(g)                 and A^T's backward is A
//   max pool      gather(x, idx)   backward: scatter(g, idx)        and scatter's backward is gather
//
// (the indices of the maxima are constants: the gradient does not move them).
// 1-D and unbatched inputs run the 2-D kernels: a (N, C, L) tensor is N * C planes of
// height 1.
#include "kiln/ops/pool.h"

#include <string>

#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"
#include "kiln/core/dispatch.h"
#include "kiln/core/factory.h"
#include "kiln/core/profiler.h"
#include "kiln/cuda/pool.h"
#include "kiln/ops/common.h"
#include "kiln/ops/cpu/pool.h"

namespace kiln {

using autograd::Grads;
using autograd::Saved;

namespace {

// ---- planning ------------------------------------------------------------------------

// How a pool call's tensors map onto the kernels' planes.
struct PoolShapes {
  int64_t planes = 0;                 // N * C (or C when unbatched)
  int64_t in_area = 0, out_area = 0;  // elements per input / output plane
  Shape input_shape, output_shape;
};

// "[3]" for a 1-D pool, "[3, 5]" for a 2-D one: sizes as the user gave them.
std::string sizes(int spatial, int64_t h, int64_t w) { return spatial == 1 ? shape_str({w}) : shape_str({h, w}); }

void check_input(const char* op, const Tensor& x, int spatial) {
  ops::check_same_device(op, {x});
  ops::check_floating(op, x);
  const char* layout = spatial == 1 ? "a 2-D (C, L) or 3-D (N, C, L)" : "a 3-D (C, H, W) or 4-D (N, C, H, W)";
  KILN_CHECK(x.dim() == spatial + 1 || x.dim() == spatial + 2, op, ": expected ", layout, " input, got ", describe(x));
}

// x's planes pooled to (out_h, out_w) (out_h = 1 for a 1-D pool).
PoolShapes pool_shapes(const Tensor& x, int spatial, int64_t out_h, int64_t out_w) {
  PoolShapes p;
  p.input_shape = x.shape();
  p.output_shape = Shape(x.shape().begin(), x.shape().end() - spatial);
  p.planes = numel_of(p.output_shape);
  if (spatial == 2) p.output_shape.push_back(out_h);
  p.output_shape.push_back(out_w);
  p.in_area = (spatial == 2 ? x.size(-2) : 1) * x.size(-1);
  p.out_area = out_h * out_w;
  return p;
}

// The settings of a sliding-window pool; a 1-D pool keeps its values in .w and the
// identity window (kernel 1, stride 1, no padding) in .h.
struct WindowSettings {
  int spatial_dims;
  Size2 kernel, stride, padding, dilation;
  bool ceil_mode;
};

struct SlidingPlan {
  PoolShapes shapes;
  cpu::WindowAxis h, w;
};

SlidingPlan plan_sliding(const char* op, const Tensor& x, const WindowSettings& settings) {
  WindowSettings s = settings;  // a stride of 0 is replaced below
  const int spatial = s.spatial_dims;
  check_input(op, x, spatial);
  KILN_CHECK(s.kernel.h > 0 && s.kernel.w > 0, op, ": kernel_size must be positive, got ",
             sizes(spatial, s.kernel.h, s.kernel.w));
  KILN_CHECK(s.stride.h >= 0 && s.stride.w >= 0, op, ": stride must be positive (or 0 for the kernel size), got ",
             sizes(spatial, s.stride.h, s.stride.w));
  if (s.stride.h == 0) s.stride.h = s.kernel.h;
  if (s.stride.w == 0) s.stride.w = s.kernel.w;
  KILN_CHECK(s.dilation.h > 0 && s.dilation.w > 0, op, ": dilation must be positive, got ",
             sizes(spatial, s.dilation.h, s.dilation.w));
  KILN_CHECK(s.padding.h >= 0 && s.padding.w >= 0 && 2 * s.padding.h <= s.kernel.h && 2 * s.padding.w <= s.kernel.w, op,
             ": padding must be between 0 and half the kernel size ", sizes(spatial, s.kernel.h, s.kernel.w), ", got ",
             sizes(spatial, s.padding.h, s.padding.w));

  auto axis = [&](int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation) {
    return cpu::WindowAxis{.in = in,
                           .out = cpu::window_output_size(in, kernel, stride, pad, dilation, s.ceil_mode),
                           .kernel = kernel,
                           .stride = stride,
                           .pad = pad,
                           .dilation = dilation};
  };
  SlidingPlan p;
  p.h = axis(spatial == 2 ? x.size(-2) : 1, s.kernel.h, s.stride.h, s.padding.h, s.dilation.h);
  p.w = axis(x.size(-1), s.kernel.w, s.stride.w, s.padding.w, s.dilation.w);
  KILN_CHECK(p.h.out > 0 && p.w.out > 0, op, ": input ", describe(x), " is too small for kernel ",
             sizes(spatial, s.kernel.h, s.kernel.w), " with dilation ", sizes(spatial, s.dilation.h, s.dilation.w),
             " and padding ", sizes(spatial, s.padding.h, s.padding.w), ": the output would be ",
             sizes(spatial, p.h.out, p.w.out));
  p.shapes = pool_shapes(x, spatial, p.h.out, p.w.out);
  return p;
}

// The kernels read contiguous buffers; this copy (when needed) is internal, not recorded.
Tensor dense(const Tensor& t) {
  NoGradGuard no_grad;
  return t.contiguous();
}

// A new tensor of `shape` and `dtype` on like's device.
Tensor empty_on(const Shape& shape, DType dtype, const Tensor& like) {
  return empty(shape, {.dtype = dtype, .device = like.device()});
}

// ---- max pooling -----------------------------------------------------------------------

Tensor gather_maxima(const Tensor& x, const Tensor& indices, const SlidingPlan& plan);

// dx: zeros, with each g entry added at its maximum's position. The GPU kernel gathers
// per input element, so it needs the windows (plan.h, plan.w), not just the indices.
Tensor scatter_to_maxima(const Tensor& g, const Tensor& indices, const SlidingPlan& plan) {
  const PoolShapes& shapes = plan.shapes;
  const Tensor g_dense = dense(g);
  Tensor dx = empty_on(shapes.input_shape, g.dtype(), g);
  dispatch_floating(g.dtype(), "max_pool_backward", [&]<class T>() {
    if (g.device().is_cuda()) {
      cuda::max_pool2d_backward(g_dense.data<T>(), indices.data<int64_t>(), dx.data<T>(), shapes.planes, plan.h,
                                plan.w, g.device().index);
    } else {
      cpu::max_pool2d_backward(g_dense.data<T>(), indices.data<int64_t>(), dx.data<T>(), shapes.planes,
                               shapes.in_area, shapes.out_area);
    }
  });
  autograd::record("max_pool_backward", dx, {g}, {indices},
                   [plan](const Tensor& gg, const Saved& s) { return Grads{gather_maxima(gg, s[0], plan)}; });
  return dx;
}

// The input's value at each maximum's position (output-shaped).
Tensor gather_maxima(const Tensor& x, const Tensor& indices, const SlidingPlan& plan) {
  const PoolShapes& shapes = plan.shapes;
  const Tensor x_dense = dense(x);
  Tensor y = empty_on(shapes.output_shape, x.dtype(), x);
  dispatch_floating(x.dtype(), "max_pool_gather", [&]<class T>() {
    if (x.device().is_cuda()) {
      cuda::gather_from_planes(x_dense.data<T>(), indices.data<int64_t>(), y.data<T>(), shapes.planes,
                               shapes.in_area, shapes.out_area, x.device().index);
    } else {
      cpu::gather_from_planes(x_dense.data<T>(), indices.data<int64_t>(), y.data<T>(), shapes.planes,
                              shapes.in_area, shapes.out_area);
    }
  });
  autograd::record("max_pool_gather", y, {x}, {indices},
                   [plan](const Tensor& g, const Saved& s) { return Grads{scatter_to_maxima(g, s[0], plan)}; });
  return y;
}

Tensor max_pool(const char* op, const Tensor& x, const WindowSettings& settings) {
  const SlidingPlan plan = plan_sliding(op, x, settings);
  const Tensor x_dense = dense(x);
  Tensor y = empty_on(plan.shapes.output_shape, x.dtype(), x);
  Tensor indices = empty_on(plan.shapes.output_shape, i64, x);
  dispatch_floating(x.dtype(), op, [&]<class T>() {
    if (x.device().is_cuda()) {
      cuda::max_pool2d_forward(x_dense.data<T>(), y.data<T>(), indices.data<int64_t>(), plan.shapes.planes, plan.h,
                               plan.w, x.device().index);
    } else {
      cpu::max_pool2d_forward(x_dense.data<T>(), y.data<T>(), indices.data<int64_t>(), plan.shapes.planes, plan.h,
                              plan.w);
    }
  });
  autograd::record(op, y, {x}, {indices},
                   [plan](const Tensor& g, const Saved& s) { return Grads{scatter_to_maxima(g, s[0], plan)}; });
  return y;
}

// ---- average pooling -------------------------------------------------------------------

// The windows twice: as the CPU kernels' tables and as the GPU kernels' closed forms.
struct AveragePlan {
  PoolShapes shapes;
  cpu::AverageAxis h, w;
  cuda::AverageWindows gpu_h, gpu_w;
};

Tensor average_pool(const char* op, const Tensor& x, const AveragePlan& plan);

// A^T(g): each output's gradient spread over its window (input-shaped).
Tensor average_pool_adjoint(const Tensor& g, const AveragePlan& plan) {
  const Tensor g_dense = dense(g);
  Tensor dx = empty_on(plan.shapes.input_shape, g.dtype(), g);
  dispatch_floating(g.dtype(), "avg_pool_backward", [&]<class T>() {
    if (g.device().is_cuda()) {
      cuda::avg_pool2d_backward(g_dense.data<T>(), dx.data<T>(), plan.shapes.planes, plan.gpu_h, plan.gpu_w,
                                g.device().index);
    } else {
      cpu::avg_pool2d_backward(g_dense.data<T>(), dx.data<T>(), plan.shapes.planes, plan.h, plan.w);
    }
  });
  autograd::record("avg_pool_backward", dx, {g}, {},
                   [plan](const Tensor& gg, const Saved&) { return Grads{average_pool("avg_pool", gg, plan)}; });
  return dx;
}

Tensor average_pool(const char* op, const Tensor& x, const AveragePlan& plan) {
  const Tensor x_dense = dense(x);
  Tensor y = empty_on(plan.shapes.output_shape, x.dtype(), x);
  dispatch_floating(x.dtype(), op, [&]<class T>() {
    if (x.device().is_cuda()) {
      cuda::avg_pool2d_forward(x_dense.data<T>(), y.data<T>(), plan.shapes.planes, plan.gpu_h, plan.gpu_w,
                               x.device().index);
    } else {
      cpu::avg_pool2d_forward(x_dense.data<T>(), y.data<T>(), plan.shapes.planes, plan.h, plan.w);
    }
  });
  autograd::record(op, y, {x}, {},
                   [plan](const Tensor& g, const Saved&) { return Grads{average_pool_adjoint(g, plan)}; });
  return y;
}

Tensor avg_pool(const char* op, const Tensor& x, const WindowSettings& settings, bool count_include_pad) {
  const SlidingPlan sliding = plan_sliding(op, x, settings);
  const AveragePlan plan{.shapes = sliding.shapes,
                         .h = cpu::average_windows(sliding.h, count_include_pad),
                         .w = cpu::average_windows(sliding.w, count_include_pad),
                         .gpu_h = cuda::sliding_average_windows(sliding.h, count_include_pad),
                         .gpu_w = cuda::sliding_average_windows(sliding.w, count_include_pad)};
  return average_pool(op, x, plan);
}

Tensor adaptive_avg_pool(const char* op, const Tensor& x, int spatial, Size2 output_size) {
  check_input(op, x, spatial);
  const int64_t in_h = spatial == 2 ? x.size(-2) : 1, in_w = x.size(-1);
  KILN_CHECK(output_size.h > 0 && output_size.w > 0, op, ": output_size must be positive, got ",
             sizes(spatial, output_size.h, output_size.w));
  KILN_CHECK(in_h > 0 && in_w > 0, op, ": cannot pool an empty spatial dim, got ", describe(x));
  const AveragePlan plan{.shapes = pool_shapes(x, spatial, output_size.h, output_size.w),
                         .h = cpu::adaptive_windows(in_h, output_size.h),
                         .w = cpu::adaptive_windows(in_w, output_size.w),
                         .gpu_h = cuda::adaptive_average_windows(in_h, output_size.h),
                         .gpu_w = cuda::adaptive_average_windows(in_w, output_size.w)};
  return average_pool(op, x, plan);
}

}  // namespace

Tensor max_pool2d(const Tensor& x, Size2 kernel_size, const MaxPool2dOptions& o) {
  KILN_PROFILE_SCOPE("max_pool2d", x);
  return max_pool("max_pool2d", x,
                  {.spatial_dims = 2,
                   .kernel = kernel_size,
                   .stride = o.stride,
                   .padding = o.padding,
                   .dilation = o.dilation,
                   .ceil_mode = o.ceil_mode});
}

Tensor max_pool1d(const Tensor& x, int64_t kernel_size, const MaxPool1dOptions& o) {
  KILN_PROFILE_SCOPE("max_pool1d", x);
  return max_pool("max_pool1d", x,
                  {.spatial_dims = 1,
                   .kernel = {1, kernel_size},
                   .stride = {1, o.stride},
                   .padding = {0, o.padding},
                   .dilation = {1, o.dilation},
                   .ceil_mode = o.ceil_mode});
}

Tensor avg_pool2d(const Tensor& x, Size2 kernel_size, const AvgPool2dOptions& o) {
  KILN_PROFILE_SCOPE("avg_pool2d", x);
  return avg_pool("avg_pool2d", x,
                  {.spatial_dims = 2,
                   .kernel = kernel_size,
                   .stride = o.stride,
                   .padding = o.padding,
                   .dilation = 1,
                   .ceil_mode = o.ceil_mode},
                  o.count_include_pad);
}

Tensor avg_pool1d(const Tensor& x, int64_t kernel_size, const AvgPool1dOptions& o) {
  KILN_PROFILE_SCOPE("avg_pool1d", x);
  return avg_pool("avg_pool1d", x,
                  {.spatial_dims = 1,
                   .kernel = {1, kernel_size},
                   .stride = {1, o.stride},
                   .padding = {0, o.padding},
                   .dilation = 1,
                   .ceil_mode = o.ceil_mode},
                  o.count_include_pad);
}

Tensor adaptive_avg_pool2d(const Tensor& x, Size2 output_size) {
  KILN_PROFILE_SCOPE("adaptive_avg_pool2d", x);
  return adaptive_avg_pool("adaptive_avg_pool2d", x, 2, output_size);
}

Tensor adaptive_avg_pool1d(const Tensor& x, int64_t output_size) {
  KILN_PROFILE_SCOPE("adaptive_avg_pool1d", x);
  return adaptive_avg_pool("adaptive_avg_pool1d", x, 1, {1, output_size});
}

}  // namespace kiln
