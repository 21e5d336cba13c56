// Emulated CUDA pooling (cuda/pool.cu) and convolution (cuda/im2col.cu) kernels vs the CPU
// kernels (ops/cpu/pool.h, ops/cpu/im2col.h, ops/cpu/conv.h), on the windows ops/pool.cpp and
// ops/conv.cpp build (ops/cpu/window.h).
//
// Pooling: max pool forward (values and indices bit for bit, ties and NaNs included, windows
// entirely in the padding), its backward and gather_from_planes (bit for bit: both sum in the
// CPU's order), average pool forward and backward within a tolerance (sliding windows with
// count_include_pad both ways, ceil-mode shapes, adaptive windows whose output does not divide
// the input); odd sizes, padding, dilation, stride > kernel, 1-D pools, no planes.
//
// Convolution: the three launchers run their im2col / col2im / fill kernels under the emulator,
// with a host stand-in for cuBLAS (gemm_strided_batched below: a plain loop with cuBLAS's
// argument rules checked) and for cuda::strided_copy (copy.cu, not under test here). Checked:
// y, dx, dweight against cpu::conv2d_* within a tolerance; the column buffers bit for bit
// against cpu::im2col (the forward's per-image layout and the weight grad's side-by-side one);
// dx bit for bit against cpu::col2im of the very columns the GPU's col2im read.
//
// Some cases cap the grid at one block (grid-stride loops) and shuffle the block order.
#include "common.h"
#include "kiln/cuda/blas.h"
#include "kiln/cuda/copy.h"
#include "kiln/cuda/im2col.h"
#include "kiln/cuda/pool.h"
#include "kiln/ops/cpu/conv.h"
#include "kiln/ops/cpu/im2col.h"
#include "kiln/ops/cpu/pool.h"

using namespace kiln;
using cpu::WindowAxis;

// A substring of the case names to run (argv[1]; all when empty): "max_pool", "conv", "f64", ...
std::string only;
bool skipped(const std::string& name) { return !only.empty() && name.find(only) == std::string::npos; }

// ---- host stand-ins for what the conv launchers call outside the emulated kernels -------------

// cuBLAS calls whose arguments cuBLAS would refuse (a leading dimension below a stored row).
int64_t gemm_calls = 0, gemm_bad_args = 0;

template <class T>
void host_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* A, int64_t lda,
               int64_t stride_a, const T* B, int64_t ldb, int64_t stride_b, T beta, T* C, int64_t ldc,
               int64_t stride_c, int64_t batch) {
  ++gemm_calls;
  if (m == 0 || n == 0 || batch == 0) return;  // as cuda/blas.cu
  // cuBLAS (column-major, A and B swapped, see blas.h) wants each leading dim >= max(1, stored row).
  if (lda < std::max<int64_t>(1, trans_a ? m : k) || ldb < std::max<int64_t>(1, trans_b ? k : n) ||
      ldc < std::max<int64_t>(1, n)) {
    std::printf("  gemm m%lld n%lld k%lld: lda %lld ldb %lld ldc %lld refused by cuBLAS\n", (long long)m,
                (long long)n, (long long)k, (long long)lda, (long long)ldb, (long long)ldc);
    ++gemm_bad_args;
  }
  for (int64_t b = 0; b < batch; ++b) {
    const T* Ab = A + b * stride_a;
    const T* Bb = B + b * stride_b;
    T* Cb = C + b * stride_c;
    for (int64_t r = 0; r < m; ++r)
      for (int64_t c = 0; c < n; ++c) {
        double acc = 0;
        for (int64_t i = 0; i < k; ++i)
          acc += double(trans_a ? Ab[i * lda + r] : Ab[r * lda + i]) *
                 double(trans_b ? Bb[c * ldb + i] : Bb[i * ldb + c]);
        // beta == 0: C is write-only (cuBLAS never reads it, so poison does not leak).
        Cb[r * ldc + c] = T(double(alpha) * acc + (beta == T(0) ? 0.0 : double(beta) * double(Cb[r * ldc + c])));
      }
  }
}

namespace kiln::cuda {
template <>
void gemm_strided_batched<float>(int, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                                 const float* A, int64_t lda, int64_t stride_a, const float* B, int64_t ldb,
                                 int64_t stride_b, float beta, float* C, int64_t ldc, int64_t stride_c,
                                 int64_t batch) {
  host_gemm(trans_a, trans_b, m, n, k, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C, ldc, stride_c, batch);
}
template <>
void gemm_strided_batched<double>(int, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                                  const double* A, int64_t lda, int64_t stride_a, const double* B, int64_t ldb,
                                  int64_t stride_b, double beta, double* C, int64_t ldc, int64_t stride_c,
                                  int64_t batch) {
  host_gemm(trans_a, trans_b, m, n, k, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C, ldc, stride_c, batch);
}
}  // namespace kiln::cuda

// cuda::strided_copy (copy.cu) as a host loop: dst[i] = src[offset of the i-th row-major element].
// The weight grad regroups dy with it; the CPU-only libkiln.a's throwing definition
// (cuda/without_cuda.cpp) is never pulled in, so this one is the one linked.
namespace kiln::cuda {
void strided_copy(void* dst, const void* src, int64_t element_size, const int64_t* shape, const int64_t* strides,
                  int ndim, int) {
  int64_t n = 1;
  for (int d = 0; d < ndim; ++d) n *= shape[d];
  for (int64_t i = 0; i < n; ++i) {
    int64_t rest = i, offset = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      offset += (rest % shape[d]) * strides[d];
      rest /= shape[d];
    }
    std::memcpy(static_cast<char*>(dst) + i * element_size, static_cast<const char*>(src) + offset * element_size,
                element_size);
  }
}
}  // namespace kiln::cuda

// ---- cases -------------------------------------------------------------------------------------

// One axis of a sliding window, as the ops take it.
struct Axis {
  int64_t in = 1, kernel = 1, stride = 1, pad = 0, dilation = 1;
};
WindowAxis window(const Axis& a, bool ceil_mode = false) {
  return {.in = a.in,
          .out = cpu::window_output_size(a.in, a.kernel, a.stride, a.pad, a.dilation, ceil_mode),
          .kernel = a.kernel,
          .stride = a.stride,
          .pad = a.pad,
          .dilation = a.dilation};
}

// The emulator's block order and grid cap for one case; back to the defaults afterwards.
struct Emulation {
  Emulation(int order, unsigned cap) { cpemu::block_order = order, cpemu::grid_cap = cap; }
  ~Emulation() { cpemu::block_order = 0, cpemu::grid_cap = 0; }
};
std::string emulation_name(int order, unsigned cap) {
  std::string s;
  if (order == 1) s += " rev";
  if (order == 2) s += " rnd";
  if (cap) s += " cap" + std::to_string(cap);
  return s;
}

std::string geometry_name(const WindowAxis& h, const WindowAxis& w) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%lldx%lld->%lldx%lld k%lldx%lld s%lldx%lld p%lldx%lld d%lldx%lld", (long long)h.in,
                (long long)w.in, (long long)h.out, (long long)w.out, (long long)h.kernel, (long long)w.kernel,
                (long long)h.stride, (long long)w.stride, (long long)h.pad, (long long)w.pad, (long long)h.dilation,
                (long long)w.dilation);
  return buf;
}

struct PoolCase {
  std::string name;
  int64_t planes;
  Axis h, w;  // a 1-D pool: h = {1}
  bool ceil_mode = false;
  enum Values { v_normal, v_ties, v_nan } values = v_normal;
  int order = 0;
  unsigned cap = 0;
  // Average pools only: count_include_pad, or an adaptive pool to (adaptive_h, adaptive_w) when > 0.
  bool count_include_pad = true;
  int64_t adaptive_h = 0, adaptive_w = 0;
};

template <class T>
std::vector<T> pool_input(const PoolCase& c, int64_t n) {
  if (c.values == PoolCase::v_ties) return ints<T>(n, -2, 2);  // many ties: the first maximum wins
  auto x = normal<T>(n);
  if (c.values == PoolCase::v_nan && n > 0) {  // scattered NaNs, two of them side by side (one window, two NaNs)
    for (int64_t i = 3; i < n; i += 17) x[i] = nan_of<T>();
    x[n / 2] = x[n / 2 + 1 < n ? n / 2 + 1 : n / 2] = nan_of<T>();
    x[0] = inf_of<T>();
  }
  return x;
}

// ---- max pooling -------------------------------------------------------------------------------

template <class T>
void run_max(const PoolCase& c) {
  const WindowAxis h = window(c.h, c.ceil_mode), w = window(c.w, c.ceil_mode);
  const int64_t in_area = h.in * w.in, out_area = h.out * w.out, P = c.planes;
  const std::string name = "max_pool " + std::string(tname<T>()) + " planes" + std::to_string(P) + " " +
                           geometry_name(h, w) + (c.ceil_mode ? " ceil" : "") + emulation_name(c.order, c.cap) +
                           " (" + c.name + ")";
  if (skipped(name)) return;
  const auto x = pool_input<T>(c, P * in_area);
  std::vector<T> y_c(P * out_area), y_g = poison<T>(P * out_area);
  std::vector<int64_t> i_c(P * out_area), i_g = poison<int64_t>(P * out_area);
  const auto dy = normal<T>(P * out_area);
  std::vector<T> dx_c(P * in_area), dx_g = poison<T>(P * in_area);
  const auto x2 = normal<T>(P * in_area);  // gather_from_planes reads another tensor at the maxima
  std::vector<T> z_c(P * out_area), z_g = poison<T>(P * out_area);

  cpu::max_pool2d_forward(x.data(), y_c.data(), i_c.data(), P, h, w);
  cpu::max_pool2d_backward(dy.data(), i_c.data(), dx_c.data(), P, in_area, out_area);
  cpu::gather_from_planes(x2.data(), i_c.data(), z_c.data(), P, in_area, out_area);
  {
    Emulation emu(c.order, c.cap);
    cuda::max_pool2d_forward(x.data(), y_g.data(), i_g.data(), P, h, w, 0);
    cuda::max_pool2d_backward(dy.data(), i_c.data(), dx_g.data(), P, h, w, 0);
    cuda::gather_from_planes(x2.data(), i_c.data(), z_g.data(), P, in_area, out_area, 0);
  }
  report(name, "y bits", exact(bitwise_equal(y_g, y_c), y_c.size()));
  report(name, "indices", exact(bitwise_equal(i_g, i_c), i_c.size()));
  report(name, "dx bits", exact(bitwise_equal(dx_g, dx_c), dx_c.size()));
  report(name, "gather", exact(bitwise_equal(z_g, z_c), z_c.size()));
}

// ---- average pooling ---------------------------------------------------------------------------

template <class T>
void run_avg(const PoolCase& c) {
  const bool adaptive = c.adaptive_h > 0;
  cpu::AverageAxis h, w;
  cuda::AverageWindows gh, gw;
  std::string geometry;
  if (adaptive) {
    h = cpu::adaptive_windows(c.h.in, c.adaptive_h), w = cpu::adaptive_windows(c.w.in, c.adaptive_w);
    gh = cuda::adaptive_average_windows(c.h.in, c.adaptive_h);
    gw = cuda::adaptive_average_windows(c.w.in, c.adaptive_w);
    geometry = "adaptive " + std::to_string(c.h.in) + "x" + std::to_string(c.w.in) + "->" +
               std::to_string(c.adaptive_h) + "x" + std::to_string(c.adaptive_w);
  } else {
    const WindowAxis wh = window(c.h, c.ceil_mode), ww = window(c.w, c.ceil_mode);
    h = cpu::average_windows(wh, c.count_include_pad), w = cpu::average_windows(ww, c.count_include_pad);
    gh = cuda::sliding_average_windows(wh, c.count_include_pad);
    gw = cuda::sliding_average_windows(ww, c.count_include_pad);
    geometry = geometry_name(wh, ww) + (c.ceil_mode ? " ceil" : "") + (c.count_include_pad ? " incl-pad" : " excl-pad");
  }
  const int64_t in_area = h.in * w.in, out_area = h.out() * w.out(), P = c.planes;
  const std::string name = "avg_pool " + std::string(tname<T>()) + " planes" + std::to_string(P) + " " + geometry +
                           emulation_name(c.order, c.cap) + " (" + c.name + ")";
  if (skipped(name)) return;
  const auto x = pool_input<T>(c, P * in_area);
  const auto dy = normal<T>(P * out_area);
  std::vector<T> y_c(P * out_area), y_g = poison<T>(P * out_area);
  std::vector<T> dx_c(P * in_area), dx_g = poison<T>(P * in_area);
  cpu::avg_pool2d_forward(x.data(), y_c.data(), P, h, w);
  cpu::avg_pool2d_backward(dy.data(), dx_c.data(), P, h, w);
  {
    Emulation emu(c.order, c.cap);
    cuda::avg_pool2d_forward(x.data(), y_g.data(), P, gh, gw, 0);
    cuda::avg_pool2d_backward(dy.data(), dx_g.data(), P, gh, gw, 0);
  }
  // Same windows and summation order; the tolerance covers the GPU's FMA contraction.
  const double tol = std::is_same_v<T, float> ? 1e-6 : 1e-14;
  report(name, "y", compare(y_g, y_c, tol, tol));
  report(name, "dx", compare(dx_g, dx_c, tol, tol));
}

// ---- convolution -------------------------------------------------------------------------------

struct ConvCase {
  std::string name;
  int64_t batch, in_channels, out_channels, groups;
  Axis h, w;  // a 1-D convolution: h = {1}
  bool bias = true;
  int order = 0;
  unsigned cap = 0;
};

template <class T>
void run_conv(const ConvCase& c) {
  cpu::ConvGeometry g;
  g.batch = c.batch, g.in_channels = c.in_channels, g.out_channels = c.out_channels, g.groups = c.groups;
  g.h = window(c.h), g.w = window(c.w);
  char buf[96];
  std::snprintf(buf, sizeof buf, " B%lld C%lld O%lld g%lld ", (long long)g.batch, (long long)g.in_channels,
                (long long)g.out_channels, (long long)g.groups);
  const std::string name = "conv " + std::string(tname<T>()) + buf + geometry_name(g.h, g.w) +
                           (c.bias ? "" : " nobias") + emulation_name(c.order, c.cap) + " (" + c.name + ")";
  if (skipped(name)) return;
  const int64_t C = g.in_channels, O = g.out_channels, K = g.col_rows(), area = g.out_area();
  const int64_t x_step = C * g.in_area(), y_step = O * area, w_size = O * K;
  const int64_t image_cols = cuda::columns_per_image(g), pass_cols = cuda::columns_per_pass(g);
  const bool one_pass = cuda::images_per_pass(g) >= g.batch;  // always, at these sizes
  const double tol = std::is_same_v<T, float> ? 1e-4 : 1e-11;

  const auto x = normal<T>(g.batch * x_step), weight = normal<T>(w_size), bias = normal<T>(O);
  const auto dy = normal<T>(g.batch * y_step);
  const T* b = c.bias ? bias.data() : nullptr;

  // The CPU's column matrices, image by image.
  std::vector<T> cols_c(g.batch * image_cols);
  for (int64_t n = 0; n < g.batch; ++n) cpu::im2col(x.data() + n * x_step, C, g.h, g.w, cols_c.data() + n * image_cols);

  const int64_t calls0 = gemm_calls, bad0 = gemm_bad_args;
  Emulation emu(c.order, c.cap);

  // Forward, and the columns it left in the scratch (one matrix per image).
  {
    std::vector<T> y_c(g.batch * y_step), y_g = poison<T>(g.batch * y_step), cols_g = poison<T>(pass_cols);
    cpu::conv2d_forward(x.data(), weight.data(), b, y_c.data(), g);
    cuda::conv2d_forward(x.data(), weight.data(), b, y_g.data(), cols_g.data(), g, 0);
    report(name, "y", compare(y_g, y_c, tol, tol));
    if (!g.is_pointwise() && one_pass && g.batch > 0 && K > 0)
      report(name, "im2col", exact(std::memcmp(cols_g.data(), cols_c.data(), cols_c.size() * sizeof(T)) == 0,
                                   int64_t(cols_c.size())));
  }
  // Input gradient; its dx must be exactly cpu::col2im of the column gradient the GEMMs left.
  {
    std::vector<T> dx_c(g.batch * x_step), dx_g = poison<T>(g.batch * x_step), cols_g = poison<T>(pass_cols);
    cpu::conv2d_input_grad(dy.data(), weight.data(), dx_c.data(), g);
    cuda::conv2d_input_grad(dy.data(), weight.data(), dx_g.data(), cols_g.data(), g, 0);
    report(name, "dx", compare(dx_g, dx_c, tol, tol));
    if (!g.is_pointwise() && one_pass && x_step > 0 && g.batch > 0 && g.group_out() > 0 && area > 0) {
      std::vector<T> dx_e(g.batch * x_step, T(0));
      for (int64_t n = 0; n < g.batch; ++n)
        cpu::col2im(cols_g.data() + n * image_cols, C, g.h, g.w, dx_e.data() + n * x_step);
      report(name, "col2im", exact(bitwise_equal(dx_g, dx_e), int64_t(dx_e.size())));
    }
  }
  // Weight gradient, and its columns: the pass's images side by side along each row.
  {
    std::vector<T> dw_c(w_size), dw_g = poison<T>(w_size), cols_g = poison<T>(pass_cols);
    std::vector<T> dy_by_channel = poison<T>(g.batch * y_step);
    cpu::conv2d_weight_grad(x.data(), dy.data(), dw_c.data(), g);
    cuda::conv2d_weight_grad(x.data(), dy.data(), dw_g.data(), cols_g.data(), dy_by_channel.data(), g, 0);
    report(name, "dweight", compare(dw_g, dw_c, tol, tol));
    if (one_pass && g.batch > 0 && area > 0 && w_size > 0) {
      const int64_t rows = C * g.h.kernel * g.w.kernel, row_stride = g.batch * area;
      std::vector<T> side(rows * row_stride);
      for (int64_t n = 0; n < g.batch; ++n)
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t p = 0; p < area; ++p)
            side[r * row_stride + n * area + p] = cols_c[n * image_cols + r * area + p];
      report(name, "im2col wg", exact(std::memcmp(cols_g.data(), side.data(), side.size() * sizeof(T)) == 0,
                                      int64_t(side.size())));
    }
  }
  report(name, "gemm args", exact(gemm_bad_args == bad0, gemm_calls - calls0));
}

// ---- the case lists ----------------------------------------------------------------------------

int main(int argc, char** argv) {
  only = argc > 1 ? argv[1] : "";
  using P = PoolCase;
  const std::vector<PoolCase> max_cases = {
      {.name = "3x3 s2 p1, odd sizes", .planes = 3, .h = {9, 3, 2, 1}, .w = {7, 3, 2, 1}},
      {.name = "2x2 s2 ceil (last window cut)", .planes = 2, .h = {7, 2, 2}, .w = {9, 2, 2}, .ceil_mode = true},
      {.name = "k3 s2 p1 ceil", .planes = 2, .h = {6, 3, 2, 1}, .w = {8, 3, 2, 1}, .ceil_mode = true},
      {.name = "dilation 2, pad 2", .planes = 2, .h = {8, 4, 1, 2, 2}, .w = {9, 3, 2, 1, 2}},
      {.name = "stride > kernel (uncovered inputs)", .planes = 2, .h = {10, 2, 3}, .w = {11, 2, 3, 1}},
      {.name = "windows in the padding (indices -1)", .planes = 3, .h = {2, 2, 1, 1, 3}, .w = {5, 3, 2, 1}},
      {.name = "NaN and inf inputs", .planes = 2, .h = {7, 3, 2, 1}, .w = {7, 3, 1, 1}, .values = P::v_nan},
      {.name = "ties: first maximum", .planes = 4, .h = {6, 3, 1, 1}, .w = {6, 3, 1, 1}, .values = P::v_ties},
      {.name = "1-D", .planes = 5, .h = {1}, .w = {33, 4, 3, 2}},
      {.name = "1x1 kernel", .planes = 2, .h = {5}, .w = {6}},
      {.name = "grid-stride, shuffled", .planes = 40, .h = {5, 2, 2}, .w = {5, 2, 2}, .ceil_mode = true, .order = 2,
       .cap = 1},
      {.name = "overlapping, shuffled", .planes = 6, .h = {10, 3, 1, 1}, .w = {11, 3, 1, 1, 2}, .order = 2, .cap = 2},
      {.name = "many blocks, shuffled", .planes = 16, .h = {12, 3, 2, 1}, .w = {11, 3, 2, 1}, .order = 2},
      {.name = "many blocks, reversed, NaNs", .planes = 9, .h = {13, 2, 2}, .w = {10, 3, 3, 1, 2}, .ceil_mode = true,
       .values = P::v_nan, .order = 1},
      {.name = "no planes", .planes = 0, .h = {4, 2, 2}, .w = {4, 2, 2}},
  };
  const std::vector<PoolCase> avg_cases = {
      {.name = "3x3 s2 p1", .planes = 3, .h = {9, 3, 2, 1}, .w = {7, 3, 2, 1}},
      {.name = "3x3 s2 p1", .planes = 3, .h = {9, 3, 2, 1}, .w = {7, 3, 2, 1}, .count_include_pad = false},
      {.name = "ceil k3 s2 p1", .planes = 2, .h = {8, 3, 2, 1}, .w = {6, 3, 2, 1}, .ceil_mode = true},
      {.name = "ceil k3 s2 p1", .planes = 2, .h = {8, 3, 2, 1}, .w = {6, 3, 2, 1}, .ceil_mode = true,
       .count_include_pad = false},
      {.name = "ceil k2 s2 (cut window)", .planes = 2, .h = {7, 2, 2}, .w = {5, 3, 3}, .ceil_mode = true},
      {.name = "stride > kernel", .planes = 2, .h = {10, 2, 3}, .w = {8, 2, 3, 1}, .count_include_pad = false},
      {.name = "k4 s1 p2 overlapping", .planes = 2, .h = {6, 4, 1, 2}, .w = {7, 4, 1, 2}},
      {.name = "k4 s1 p2 overlapping", .planes = 2, .h = {6, 4, 1, 2}, .w = {7, 4, 1, 2}, .count_include_pad = false},
      {.name = "1-D k5 s2 p2", .planes = 4, .h = {1}, .w = {21, 5, 2, 2}, .count_include_pad = false},
      {.name = "grid-stride, shuffled", .planes = 30, .h = {6, 3, 2, 1}, .w = {5, 3, 2, 1}, .order = 2, .cap = 1},
      {.name = "adaptive, out does not divide in", .planes = 3, .h = {7}, .w = {10}, .adaptive_h = 3, .adaptive_w = 4},
      {.name = "adaptive, out > in", .planes = 2, .h = {5}, .w = {3}, .adaptive_h = 7, .adaptive_w = 4},
      {.name = "adaptive 1-D", .planes = 3, .h = {1}, .w = {13}, .adaptive_h = 1, .adaptive_w = 5},
      {.name = "adaptive global", .planes = 4, .h = {6}, .w = {5}, .adaptive_h = 1, .adaptive_w = 1},
      {.name = "many blocks, reversed", .planes = 14, .h = {11, 3, 2, 1}, .w = {13, 2, 1, 1}, .order = 1,
       .count_include_pad = false},
      {.name = "adaptive, shuffled", .planes = 12, .h = {9}, .w = {11}, .order = 2, .cap = 1, .adaptive_h = 4,
       .adaptive_w = 3},
      {.name = "no planes", .planes = 0, .h = {4, 2, 2}, .w = {4, 2, 2}},
      {.name = "no planes adaptive", .planes = 0, .h = {4}, .w = {4}, .adaptive_h = 3, .adaptive_w = 3},
  };
  const std::vector<ConvCase> conv_cases = {
      {.name = "3x3 pad 1", .batch = 2, .in_channels = 3, .out_channels = 4, .groups = 1, .h = {7, 3, 1, 1},
       .w = {6, 3, 1, 1}},
      {.name = "5x4 kernel, stride 2, odd pads", .batch = 1, .in_channels = 2, .out_channels = 3, .groups = 1,
       .h = {9, 5, 2, 2}, .w = {8, 4, 2, 1}, .bias = false},
      {.name = "dilation 2, stride 3", .batch = 2, .in_channels = 2, .out_channels = 2, .groups = 1,
       .h = {11, 3, 3, 1, 2}, .w = {10, 3, 3, 2, 2}},
      {.name = "stride > kernel (uncovered inputs)", .batch = 2, .in_channels = 2, .out_channels = 3, .groups = 1,
       .h = {8, 2, 3}, .w = {9, 2, 3, 1}},
      {.name = "groups 2", .batch = 2, .in_channels = 4, .out_channels = 6, .groups = 2, .h = {6, 3, 1, 1},
       .w = {5, 3, 1, 1}},
      {.name = "depthwise", .batch = 1, .in_channels = 3, .out_channels = 6, .groups = 3, .h = {5, 3, 2, 1},
       .w = {7, 3, 1, 1}},
      {.name = "pointwise", .batch = 2, .in_channels = 3, .out_channels = 5, .groups = 1, .h = {4}, .w = {5}},
      {.name = "1x1 stride 2 (not pointwise)", .batch = 2, .in_channels = 3, .out_channels = 2, .groups = 1,
       .h = {5, 1, 2}, .w = {6, 1, 2}},
      {.name = "1-D", .batch = 3, .in_channels = 2, .out_channels = 3, .groups = 1, .h = {1}, .w = {17, 5, 2, 3, 2}},
      {.name = "kernel wider than the input", .batch = 1, .in_channels = 2, .out_channels = 2, .groups = 1,
       .h = {3, 5, 1, 2}, .w = {3, 5, 1, 2}},
      {.name = "grid-stride, shuffled", .batch = 3, .in_channels = 3, .out_channels = 4, .groups = 1,
       .h = {7, 3, 2, 1}, .w = {8, 3, 1, 1, 2}, .order = 2, .cap = 1},
      {.name = "many blocks, shuffled", .batch = 4, .in_channels = 4, .out_channels = 5, .groups = 1,
       .h = {9, 3, 1, 1}, .w = {9, 3, 1, 1}, .order = 2},
      {.name = "groups 2, shuffled", .batch = 2, .in_channels = 4, .out_channels = 4, .groups = 2, .h = {5, 2, 1, 1},
       .w = {6, 3, 2, 1}, .bias = false, .order = 2, .cap = 2},
      {.name = "no input channels", .batch = 2, .in_channels = 0, .out_channels = 3, .groups = 1, .h = {4, 3, 1, 1},
       .w = {4, 3, 1, 1}},
      {.name = "no input channels, no bias (zeros)", .batch = 2, .in_channels = 0, .out_channels = 2, .groups = 1,
       .h = {3, 2, 1}, .w = {5, 3, 2, 1}, .bias = false},
      {.name = "no images", .batch = 0, .in_channels = 2, .out_channels = 3, .groups = 1, .h = {4, 3, 1, 1},
       .w = {4, 3, 1, 1}},
  };
  // Every case in f32; every third also in f64 (one OS thread per GPU thread: the emulation is slow).
  for (size_t i = 0; i < max_cases.size(); ++i) {
    run_max<float>(max_cases[i]);
    if (i % 3 == 0) run_max<double>(max_cases[i]);
  }
  for (size_t i = 0; i < avg_cases.size(); ++i) {
    run_avg<float>(avg_cases[i]);
    if (i % 3 == 0) run_avg<double>(avg_cases[i]);
  }
  for (size_t i = 0; i < conv_cases.size(); ++i) {
    run_conv<float>(conv_cases[i]);
    if (i % 3 == 0) run_conv<double>(conv_cases[i]);
  }
  return finish("pool_conv");
}
