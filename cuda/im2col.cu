// Convolution kernels on the GPU (see im2col.h): per pass of images, im2col then one
// strided-batched GEMM per group; the input gradient goes back through col2im.
//
// Notation, as in ops/cpu/conv.h: C = in_channels, O = out_channels, Og = O / groups,
// K = (C / groups) * kh * kw (a weight row's length = a group's column rows), area =
// h.out * w.out, in_area = h.in * w.in. Column matrix row r = (c * kh + i) * kw + j holds
// tap (i, j) of channel c; group grp owns rows [grp * K, (grp + 1) * K).
#include "kiln/cuda/im2col.h"

#include "kiln/cuda/blas.h"
#include "kiln/cuda/copy.h"
#include "kiln/cuda/launch.cuh"

namespace kiln::cuda {

namespace {

using cpu::ConvGeometry;
using cpu::WindowAxis;

// Where column element (image n, row r, output position p) lives in the column buffer:
// n * image_stride + r * row_stride + p. The forward and input grad use one matrix per
// image (row_stride = area); the weight grad lays a pass's images side by side along each
// row (image_stride = area, row_stride = images * area), so that the sum over images
// becomes part of one GEMM's reduction.
struct ColumnLayout {
  int64_t image_stride, row_stride;
};

// im2col for `images` contiguous images of `channels` planes: one thread per column
// element (grid-stride), consecutive threads on consecutive output positions p, so the
// writes are coalesced; a tap in the padding writes 0.
template <class T>
__global__ void im2col_kernel(const T* __restrict__ x, T* __restrict__ cols, int64_t images, int64_t channels,
                              WindowAxis h, WindowAxis w, ColumnLayout layout) {
  const int64_t area = h.out * w.out, taps = h.kernel * w.kernel, rows = channels * taps;
  const int64_t total = images * rows * area;
  for (int64_t idx = global_thread(); idx < total; idx += grid_stride()) {
    const int64_t p = idx % area, row = (idx / area) % rows, n = idx / (area * rows);
    const int64_t c = row / taps, i = (row % taps) / w.kernel, j = row % w.kernel;
    const int64_t iy = h.input_index(p / w.out, i), ix = w.input_index(p % w.out, j);
    const bool inside = iy >= 0 && iy < h.in && ix >= 0 && ix < w.in;
    cols[n * layout.image_stride + row * layout.row_stride + p] =
        inside ? x[((n * channels + c) * h.in + iy) * w.in + ix] : T(0);
  }
}

// col2im (the adjoint of im2col) for one-matrix-per-image columns, overwriting the
// images: one thread per input element (grid-stride) sums, over the taps (i, j) that
// read it, the column entries it was copied to. No two threads write the same element,
// so no atomics, and the taps are summed in the CPU's order (i, then j, ascending).
template <class T>
__global__ void col2im_kernel(const T* __restrict__ cols, T* __restrict__ x, int64_t images, int64_t channels,
                              WindowAxis h, WindowAxis w) {
  const int64_t area = h.out * w.out, in_area = h.in * w.in, taps = h.kernel * w.kernel;
  const int64_t total = images * channels * in_area;
  for (int64_t idx = global_thread(); idx < total; idx += grid_stride()) {
    const int64_t ix = idx % w.in, iy = (idx / w.in) % h.in, plane = idx / in_area;  // plane = n * channels + c
    const T* plane_cols = cols + plane * taps * area;  // rows (c * kh + i) * kw + j of image n
    Acc<T> sum = 0;
    for (int64_t i = 0; i < h.kernel; ++i) {
      const int64_t oy = h.output_reading(iy, i);
      if (oy < 0) continue;
      for (int64_t j = 0; j < w.kernel; ++j) {
        const int64_t ox = w.output_reading(ix, j);
        if (ox >= 0) sum += plane_cols[(i * w.kernel + j) * area + oy * w.out + ox];
      }
    }
    x[idx] = static_cast<T>(sum);
  }
}

// y[n][o][p] = bias[o]: the start the forward GEMMs accumulate onto (beta = 1).
template <class T>
__global__ void fill_bias_kernel(T* __restrict__ y, const T* __restrict__ bias, int64_t total, int64_t channels,
                                 int64_t area) {
  for (int64_t idx = global_thread(); idx < total; idx += grid_stride()) y[idx] = bias[(idx / area) % channels];
}

template <class T>
void im2col(const T* x, T* cols, int64_t images, const ConvGeometry& g, ColumnLayout layout, cudaStream_t s) {
  const int64_t total = images * columns_per_image(g);
  if (total == 0) return;
  im2col_kernel<T><<<blocks_for(total), kThreadsPerBlock, 0, s>>>(x, cols, images, g.in_channels, g.h, g.w, layout);
  KILN_CUDA_LAUNCH_CHECK();
}

template <class T>
void zero(T* p, int64_t count, cudaStream_t s) {
  if (count > 0) KILN_CUDA_CHECK(cudaMemsetAsync(p, 0, sizeof(T) * count, s));
}

}  // namespace

template <class T>
void conv2d_forward(const T* x, const T* weight, const T* bias, T* y, T* columns, const ConvGeometry& g,
                    int device) {
  const int64_t O = g.out_channels, Og = g.group_out(), K = g.col_rows(), area = g.out_area();
  const int64_t y_size = g.batch * O * area;
  if (y_size == 0) return;
  cudaStream_t s = stream(device);
  if (bias) {
    fill_bias_kernel<T><<<blocks_for(y_size), kThreadsPerBlock, 0, s>>>(y, bias, y_size, O, area);
    KILN_CUDA_LAUNCH_CHECK();
  }
  if (K == 0) {  // no input channels: y is the bias alone (cuBLAS refuses a leading dim of 0)
    if (!bias) zero(y, y_size, s);
    return;
  }
  const int64_t image_cols = columns_per_image(g), per_pass = images_per_pass(g);
  const int64_t x_step = g.in_channels * g.in_area(), y_step = O * area;
  for (int64_t n0 = 0; n0 < g.batch; n0 += per_pass) {
    const int64_t images = std::min(per_pass, g.batch - n0);
    // A pointwise convolution reads each image as its own column matrix (area == in_area).
    const T* cols = x + n0 * x_step;
    if (!g.is_pointwise()) {
      im2col(x + n0 * x_step, columns, images, g, {image_cols, area}, s);
      cols = columns;
    }
    // y[n, grp] (Og x area) = W_grp (Og x K) . cols[n, grp] (K x area), batched over the images.
    for (int64_t grp = 0; grp < g.groups; ++grp)
      gemm_strided_batched<T>(device, false, false, Og, area, K, T(1), weight + grp * Og * K, K, 0,
                              cols + grp * K * area, area, image_cols, bias ? T(1) : T(0),
                              y + n0 * y_step + grp * Og * area, area, y_step, images);
  }
}

template <class T>
void conv2d_input_grad(const T* dy, const T* weight, T* dx, T* columns, const ConvGeometry& g, int device) {
  const int64_t O = g.out_channels, Og = g.group_out(), K = g.col_rows(), area = g.out_area();
  const int64_t x_step = g.in_channels * g.in_area(), y_step = O * area;
  if (g.batch * x_step == 0) return;
  cudaStream_t s = stream(device);
  if (Og == 0 || area == 0) {  // no output reads the input
    zero(dx, g.batch * x_step, s);
    return;
  }
  const int64_t image_cols = columns_per_image(g), per_pass = images_per_pass(g);
  for (int64_t n0 = 0; n0 < g.batch; n0 += per_pass) {
    const int64_t images = std::min(per_pass, g.batch - n0);
    // Pointwise: the column gradient is the image gradient, written in place.
    T* cols = g.is_pointwise() ? dx + n0 * x_step : columns;
    // dcols[n, grp] (K x area) = W_grp^T (K x Og) . dy[n, grp] (Og x area)
    for (int64_t grp = 0; grp < g.groups; ++grp)
      gemm_strided_batched<T>(device, true, false, K, area, Og, T(1), weight + grp * Og * K, K, 0,
                              dy + n0 * y_step + grp * Og * area, area, y_step, T(0), cols + grp * K * area, area,
                              image_cols, images);
    if (g.is_pointwise()) continue;
    const int64_t total = images * x_step;
    col2im_kernel<T><<<blocks_for(total), kThreadsPerBlock, 0, s>>>(columns, dx + n0 * x_step, images,
                                                                     g.in_channels, g.h, g.w);
    KILN_CUDA_LAUNCH_CHECK();
  }
}

template <class T>
void conv2d_weight_grad(const T* x, const T* dy, T* dweight, T* columns, T* dy_by_channel, const ConvGeometry& g,
                        int device) {
  const int64_t O = g.out_channels, Og = g.group_out(), K = g.col_rows(), area = g.out_area();
  if (O * K == 0) return;
  cudaStream_t s = stream(device);
  if (g.batch == 0 || area == 0) {  // no output: the weight does not matter
    zero(dweight, O * K, s);
    return;
  }
  // dy (batch, O, area) regrouped as (O, batch, area): row o of the (O, batch * area)
  // matrix holds channel o of every image, so dW_grp = dy_grp . cols_grp^T is one GEMM
  // whose reduction runs over every image and position of a pass.
  const int64_t shape[3] = {O, g.batch, area}, strides[3] = {area, O * area, 1};
  strided_copy(dy_by_channel, dy, sizeof(T), shape, strides, 3, device);

  const int64_t per_pass = images_per_pass(g), x_step = g.in_channels * g.in_area(), dy_row = g.batch * area;
  for (int64_t n0 = 0; n0 < g.batch; n0 += per_pass) {
    const int64_t images = std::min(per_pass, g.batch - n0), pass_row = images * area;
    im2col(x + n0 * x_step, columns, images, g, {area, pass_row}, s);
    // dW_grp (Og x K) (+)= dy_by_channel[grp rows, this pass's columns] (Og x pass_row) . cols_grp^T
    gemm_strided_batched<T>(device, false, true, Og, K, pass_row, T(1), dy_by_channel + n0 * area, dy_row,
                            Og * dy_row, columns, pass_row, K * pass_row, n0 == 0 ? T(0) : T(1), dweight, K, Og * K,
                            g.groups);
  }
}

#define KILN_INSTANTIATE_CUDA_CONV(T)                                                                         \
  template void conv2d_forward<T>(const T*, const T*, const T*, T*, T*, const ConvGeometry&, int);            \
  template void conv2d_input_grad<T>(const T*, const T*, T*, T*, const ConvGeometry&, int);                   \
  template void conv2d_weight_grad<T>(const T*, const T*, T*, T*, T*, const ConvGeometry&, int);
KILN_INSTANTIATE_CUDA_CONV(float)
KILN_INSTANTIATE_CUDA_CONV(double)
#undef KILN_INSTANTIATE_CUDA_CONV

}  // namespace kiln::cuda
