// Emulated CUDA ContextPool (cuda/context_pool.cu) vs ops/cpu/context_pool.cpp: forward and the
// three gradients, 1-D and 2-D, strides, windows, causal, degenerate scales and masks, empty
// sizes, channel counts around the block size, and gradient subsets (null outputs untouched).
#include "common.h"
#include "kiln/cuda/context_pool.h"
#include "kiln/ops/cpu/context_pool.h"

using kiln::cpu::ContextPoolGeometry;
constexpr double kInf = std::numeric_limits<double>::infinity();

struct Case {
  std::string name;
  int64_t batch, height, width, d;
  int64_t stride = 1, window = 0;  // 0 = ceil(3 max s), as the op resolves it
  bool causal = false;
  double eps = 1e-6;
  enum MKind { m_random, m_ones, m_zero } m = m_random;
  enum SKind { s_random, s_const, s_inf, s_tiny } s = s_random;
  double s_value = 1.5;
};

template <class T>
void run(const Case& c, int grad_mask = 7) {
  ContextPoolGeometry g;
  g.batch = c.batch; g.height = c.height; g.width = c.width; g.channels = c.d; g.stride = c.stride;
  g.out_height = (c.height + c.stride - 1) / c.stride; g.out_width = (c.width + c.stride - 1) / c.stride;
  g.causal = c.causal; g.eps = c.eps;
  const int64_t in_cells = g.batch * g.inputs(), out_rows = g.batch * g.outputs(), d = c.d;
  auto x = normal<T>(in_cells * d);
  std::vector<T> m = c.m == Case::m_random ? unif<T>(in_cells, 0.05, 0.95) : std::vector<T>(in_cells, T(c.m == Case::m_ones ? 1 : 0));
  std::vector<T> s = c.s == Case::s_random ? unif<T>(out_rows, 0.3, 3.0)
                     : c.s == Case::s_tiny ? unif<T>(out_rows, 0.02, 0.1)
                     : std::vector<T>(out_rows, T(c.s == Case::s_inf ? kInf : c.s_value));
  const int64_t largest = std::max<int64_t>(0, std::max(g.height, g.width) - 1);
  if (c.window > 0) g.window = std::min(c.window, largest);
  else {
    double ms = 0;
    for (T v : s) ms = std::max(ms, double(v));
    const double w = std::ceil(3 * ms);
    g.window = w >= largest ? largest : int64_t(w);
  }
  const double atol = std::is_same_v<T, double> ? 1e-10 : 2e-4, rtol = atol;
  const T nan = std::numeric_limits<T>::quiet_NaN();

  std::vector<T> y_cpu(out_rows * d, nan), y_gpu(out_rows * d, nan);
  kiln::cpu::context_pool_forward(g, x.data(), m.data(), s.data(), y_cpu.data());
  kiln::cuda::context_pool_forward(g, x.data(), m.data(), s.data(), y_gpu.data(), 0);
  auto gy = normal<T>(out_rows * d);
  const bool want_dx = grad_mask & 1, want_dm = grad_mask & 2, want_ds = grad_mask & 4;
  std::vector<T> dx_c(in_cells * d, nan), dm_c(in_cells, nan), ds_c(out_rows, nan);
  std::vector<T> dx_g(in_cells * d, nan), dm_g(in_cells, nan), ds_g(out_rows, nan);
  const int64_t band = kiln::cuda::context_pool_band_elements(g);
  std::vector<T> dx_band(band, nan), dm_band(band, nan);  // uninitialised scratch on the GPU: poison
  kiln::cpu::context_pool_backward(g, x.data(), m.data(), s.data(), y_cpu.data(), gy.data(), want_dx ? dx_c.data() : nullptr,
                                   want_dm ? dm_c.data() : nullptr, want_ds ? ds_c.data() : nullptr);
  kiln::cuda::context_pool_backward(g, x.data(), m.data(), s.data(), y_gpu.data(), gy.data(), want_dx ? dx_g.data() : nullptr,
                                    want_dm ? dm_g.data() : nullptr, want_ds ? ds_g.data() : nullptr,
                                    want_dx ? dx_band.data() : nullptr, want_dm ? dm_band.data() : nullptr, 0);
  char buf[200];
  std::snprintf(buf, sizeof buf, "%s [%s B=%ld %ldx%ld d=%ld stride=%ld W=%ld%s grads=%c%c%c]", c.name.c_str(),
                tname<T>(), (long)c.batch, (long)c.height, (long)c.width, (long)d, (long)c.stride, (long)g.window,
                c.causal ? " causal" : "", want_dx ? 'x' : '-', want_dm ? 'm' : '-', want_ds ? 's' : '-');
  const std::string name = buf;
  report(name, "y", compare(y_gpu, y_cpu, atol, rtol));
  if (want_dx) report(name, "dx", compare(dx_g, dx_c, atol, rtol));
  if (want_dm) report(name, "dm", compare(dm_g, dm_c, atol, rtol));
  if (want_ds) report(name, "ds", compare(ds_g, ds_c, atol, rtol));
  // Unrequested gradients must stay untouched (still NaN).
  auto untouched = [](const std::vector<T>& v) {
    for (T e : v)
      if (!std::isnan(e)) return false;
    return true;
  };
  if (grad_mask != 7)
    report(name, "untouched", exact((want_dx || untouched(dx_g)) && (want_dm || untouched(dm_g)) && (want_ds || untouched(ds_g)), 3));
}

int main() {
  std::vector<Case> cases;
  using C = Case;
  {
    cases.push_back({"n=37 d=19 W from s", 1, 1, 37, 19, 1, 0});
    cases.push_back({"n=37 d=19 causal", 1, 1, 37, 19, 1, 4, true});
    cases.push_back({"stride 2 causal W from s", 2, 1, 37, 19, 2, 0, true});
    cases.push_back({"eps=0.5", 2, 1, 13, 5, 1, 3, false, 0.5});
    cases.push_back({"window 100 on 13", 2, 1, 13, 7, 1, 100, true});
    cases.push_back({"one token", 3, 1, 1, 4, 1, 2});
    C u{"uniform m=1 s=inf", 2, 1, 23, 11, 1, 3}; u.m = C::m_ones; u.s = C::s_inf; cases.push_back(u);
    C f{"constant s=1.5 (fixed/weights_only)", 1, 1, 23, 11, 1, 5}; f.s = C::s_const; cases.push_back(f);
    cases.push_back({"2-D 7x9 d=19 W3", 1, 7, 9, 19, 1, 3});
    cases.push_back({"2-D stride 3 W from s", 1, 8, 5, 6, 3, 0});
    cases.push_back({"2-D stride 4 W1 (uncovered inputs)", 1, 9, 10, 5, 4, 1});
    cases.push_back({"B=0", 0, 1, 5, 3, 1, 2});
    cases.push_back({"n=0", 2, 1, 0, 3, 1, 2});
    cases.push_back({"d=0 2-D", 1, 3, 4, 0, 1, 1});
    cases.push_back({"d=33 causal", 1, 1, 17, 33, 1, 3, true});
    C z{"m=0 (Z=eps)", 1, 1, 12, 5, 1, 3}; z.m = C::m_zero; cases.push_back(z);
    C t{"tiny s (Gaussian underflow)", 1, 1, 15, 6, 1, 4}; t.s = C::s_tiny; cases.push_back(t);
    cases.push_back({"d=257 (>256 threads)", 1, 1, 20, 257, 1, 3});
  }
  // Every case in f32; every third also in f64 (the emulation is slow: one OS thread per GPU thread).
  for (size_t i = 0; i < cases.size(); ++i) {
    run<float>(cases[i]);
    if (i % 3 == 0) run<double>(cases[i]);
  }
  for (int mask : {0, 1, 2, 4, 6})  // subsets of the gradients (null outputs)
    run<float>({"subset 2-D stride 2", 1, 7, 9, 19, 2, 2}, mask);
  return finish("context_pool");
}
