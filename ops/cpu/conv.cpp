// Convolution kernels (see conv.h): per image and group, im2col then one GEMM.
#include "kiln/ops/cpu/conv.h"

#include <omp.h>

#include <algorithm>
#include <memory>

#include "kiln/ops/cpu/gemm.h"
#include "kiln/ops/cpu/im2col.h"

namespace kiln::cpu {

namespace {

// Below this many multiply-adds in total, a convolution runs on one thread.
constexpr double kMinParallelWork = 1 << 18;

double work(const ConvGeometry& g) {
  return static_cast<double>(g.batch) * static_cast<double>(g.out_channels) * static_cast<double>(g.out_area()) *
         static_cast<double>(g.col_rows());
}

// Threads that take whole images: all of them when there is at least one image each
// (and the work is worth forking for), else 1 (and Eigen parallelises inside each GEMM).
int image_threads(const ConvGeometry& g) {
  const int threads = omp_get_max_threads();
  return g.batch >= threads && work(g) >= kMinParallelWork ? threads : 1;
}

// One column buffer per thread, allocated once per call (never per image), uninitialised:
// im2col writes every entry before a GEMM reads it.
template <class T>
struct ColumnBuffers {
  ColumnBuffers(const ConvGeometry& g, int threads)
      : size(g.is_pointwise() ? 0 : g.col_rows() * g.out_area()),
        data(std::make_unique_for_overwrite<T[]>(static_cast<size_t>(size * threads))) {}
  T* of_this_thread() const { return data.get() + size * omp_get_thread_num(); }
  int64_t size;
  std::unique_ptr<T[]> data;
};

// The column matrix of one group of one image: the image itself when pointwise.
template <class T>
const T* columns_of(const T* image, const ConvGeometry& g, T* buffer) {
  if (g.is_pointwise()) return image;
  im2col(image, g.group_in(), g.h, g.w, buffer);
  return buffer;
}

template <class T>
void forward_image(const T* x, const T* weight, const T* bias, T* y, const ConvGeometry& g, T* buffer) {
  const int64_t Cg = g.group_in(), Og = g.group_out(), K = g.col_rows(), area = g.out_area();
  for (int64_t grp = 0; grp < g.groups; ++grp) {
    const T* cols = columns_of(x + grp * Cg * g.in_area(), g, buffer);
    T* out = y + grp * Og * area;
    if (bias) {  // start each output plane at its bias; the GEMM accumulates onto it
      for (int64_t o = 0; o < Og; ++o) std::fill(out + o * area, out + (o + 1) * area, bias[grp * Og + o]);
    }
    gemm<T>(false, false, Og, area, K, T(1), weight + grp * Og * K, K, cols, area, bias ? T(1) : T(0), out, area);
  }
}

template <class T>
void input_grad_image(const T* dy, const T* weight, T* dx, const ConvGeometry& g, T* buffer) {
  const int64_t Cg = g.group_in(), Og = g.group_out(), K = g.col_rows(), area = g.out_area();
  for (int64_t grp = 0; grp < g.groups; ++grp) {
    const T* w_g = weight + grp * Og * K;
    const T* dy_g = dy + grp * Og * area;
    T* dimage = dx + grp * Cg * g.in_area();
    if (g.is_pointwise()) {  // the column gradient is the image gradient
      gemm<T>(true, false, K, area, Og, T(1), w_g, K, dy_g, area, T(0), dimage, area);
      continue;
    }
    gemm<T>(true, false, K, area, Og, T(1), w_g, K, dy_g, area, T(0), buffer, area);
    std::fill(dimage, dimage + Cg * g.in_area(), T(0));
    col2im(buffer, Cg, g.h, g.w, dimage);
  }
}

template <class T>
void weight_grad_image(const T* x, const T* dy, T* dweight, const ConvGeometry& g, T* buffer) {
  const int64_t Cg = g.group_in(), Og = g.group_out(), K = g.col_rows(), area = g.out_area();
  for (int64_t grp = 0; grp < g.groups; ++grp) {
    const T* cols = columns_of(x + grp * Cg * g.in_area(), g, buffer);
    gemm<T>(false, true, Og, K, area, T(1), dy + grp * Og * area, area, cols, area, T(1), dweight + grp * Og * K, K);
  }
}

}  // namespace

template <class T>
void conv2d_forward(const T* x, const T* weight, const T* bias, T* y, const ConvGeometry& g) {
  const int threads = image_threads(g);
  const ColumnBuffers<T> buffers(g, threads);
  const int64_t x_step = g.in_channels * g.in_area(), y_step = g.out_channels * g.out_area();
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t n = 0; n < g.batch; ++n)
    forward_image(x + n * x_step, weight, bias, y + n * y_step, g, buffers.of_this_thread());
}

template <class T>
void conv2d_input_grad(const T* dy, const T* weight, T* dx, const ConvGeometry& g) {
  const int threads = image_threads(g);
  const ColumnBuffers<T> buffers(g, threads);
  const int64_t x_step = g.in_channels * g.in_area(), y_step = g.out_channels * g.out_area();
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t n = 0; n < g.batch; ++n)
    input_grad_image(dy + n * y_step, weight, dx + n * x_step, g, buffers.of_this_thread());
}

template <class T>
void conv2d_weight_grad(const T* x, const T* dy, T* dweight, const ConvGeometry& g) {
  // Every image adds into the whole weight gradient, so each thread sums its images into
  // its own accumulator (thread 0 into dweight itself) and the accumulators are added
  // at the end, in thread order: the result does not depend on scheduling.
  const int threads = image_threads(g);
  const ColumnBuffers<T> buffers(g, threads);
  const int64_t w_size = g.out_channels * g.col_rows();
  const auto partial = std::make_unique<T[]>(static_cast<size_t>(w_size * (threads - 1)));  // zeroed
  std::fill(dweight, dweight + w_size, T(0));
  const int64_t x_step = g.in_channels * g.in_area(), y_step = g.out_channels * g.out_area();
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const int t = omp_get_thread_num();
    T* accumulator = t == 0 ? dweight : partial.get() + (t - 1) * w_size;
#pragma omp for schedule(static)
    for (int64_t n = 0; n < g.batch; ++n)
      weight_grad_image(x + n * x_step, dy + n * y_step, accumulator, g, buffers.of_this_thread());
  }
  for (int t = 1; t < threads; ++t) {
    const T* acc = partial.get() + (t - 1) * w_size;
    for (int64_t i = 0; i < w_size; ++i) dweight[i] += acc[i];
  }
}

#define KILN_INSTANTIATE_CONV(T)                                                          \
  template void conv2d_forward<T>(const T*, const T*, const T*, T*, const ConvGeometry&); \
  template void conv2d_input_grad<T>(const T*, const T*, T*, const ConvGeometry&);        \
  template void conv2d_weight_grad<T>(const T*, const T*, T*, const ConvGeometry&);
KILN_INSTANTIATE_CONV(float)
KILN_INSTANTIATE_CONV(double)
#undef KILN_INSTANTIATE_CONV

}  // namespace kiln::cpu
