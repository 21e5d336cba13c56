// Emulated CUDA reductions (cuda/reduce.cu: sum, max/min/argmax/argmin, var/std, logsumexp,
// norms, tie weights, scatter_ones) vs ops/cpu/reduce.h, over the geometries that pick each
// kernel (warp rows, block rows, split rows, columns, split columns, empty), special values,
// and with the grid capped at one block (grid-stride loops).
#include "common.h"
#include "kiln/cuda/reduce.h"
#include "kiln/ops/cpu/reduce.h"

namespace cu = kiln::cuda;
namespace cp = kiln::cpu;

template <class T> double tol() { return std::is_same_v<T, float> ? 2e-5 : std::is_same_v<T, double> ? 1e-12 : 0; }

struct Geo { int64_t outer, Ra, mid, Rb, inner; };
std::string gstr(const Geo& g) {
  char b[128];
  std::snprintf(b, sizeof b, "(%ld,%ld,%ld,%ld,%ld)", (long)g.outer, (long)g.Ra, (long)g.mid, (long)g.Rb, (long)g.inner);
  return b;
}

enum Fill { f_normal, f_ties, f_nan, f_inf, f_neginf_slices, f_allnan };
const char* fname(Fill f) {
  static const char* n[] = {"normal", "ties", "nan", "+-inf", "-inf-slices", "allnan"};
  return n[f];
}

template <class T>
std::vector<T> make_input(const Geo& g, Fill f) {
  const int64_t n = g.outer * g.Ra * g.mid * g.Rb * g.inner;
  std::vector<T> x;
  if constexpr (!std::is_floating_point_v<T>) return ints<T>(n, -4, 4);
  else {
    if (f == f_ties) x = ints<T>(n, -3, 3);
    else x = normal<T>(n);
    std::uniform_int_distribution<int64_t> U(0, std::max<int64_t>(n - 1, 0));
    if (n && f == f_nan) for (int k = 0; k < 1 + n / 50; ++k) x[U(rng)] = nan_of<T>();
    if (n && f == f_inf) for (int k = 0; k < 1 + n / 50; ++k) x[U(rng)] = (k % 2 ? -1 : 1) * inf_of<T>();
    if (n && f == f_neginf_slices) {  // ~half the elements -inf: some slices all -inf when short
      for (auto& e : x) if (U(rng) % 3) e = -inf_of<T>();
    }
    if (f == f_allnan) for (auto& e : x) e = nan_of<T>();
    return x;
  }
}

template <class T>
struct Ws {
  std::vector<int64_t> w;
  explicit Ws(const cu::ReduceGeometry& g) : w((cu::reduce_workspace_bytes(g) + 7) / 8) {
    std::memset(w.data(), 0xff, w.size() * 8);  // poison: NaN / -1
  }
  void* p() { return w.data(); }
};

template <class T>
void run_geo(const Geo& G, Fill f) {
  const cu::ReduceGeometry g{G.outer, G.Ra, G.mid, G.Rb, G.inner};
  cp::ReduceGeometry c;
  c.outer = G.outer, c.Ra = G.Ra, c.mid = G.mid, c.Rb = G.Rb, c.inner = G.inner;
  const int64_t outs = g.outputs(), N = outs * g.reduced();
  const auto x = make_input<T>(G, f);
  const int64_t chunks = cu::reduce_chunks(g);
  char cb[200];
  std::snprintf(cb, sizeof cb, "%s %s %s chunks=%ld", tname<T>(), gstr(G).c_str(), fname(f), (long)chunks);
  const std::string cas = cb;
  const double t = tol<T>();
  auto fresh = [&] { return std::vector<T>(outs, nan_of<T>()); };
  {
    auto a = fresh(), b = fresh();
    Ws<T> ws(g);
    cu::sum_reduce(x.data(), a.data(), g, ws.p(), 0);
    cp::sum_reduce(x.data(), b.data(), c);
    report("sum", cas, "out", a, b, t * std::sqrt(double(g.reduced()) + 1), t);
  }
  for (bool mx : {true, false}) {
    auto a = fresh(), b = fresh();
    Ws<T> ws(g);
    if (g.reduced() == 0) continue;
    cu::extremum_reduce(x.data(), a.data(), nullptr, g, mx, ws.p(), 0);
    // cpu::extremum_reduce handles one reduced block only (Ra == 1, as the ops call it);
    // for Ra > 1 the reference is the generic fold with the CPU's ExtremumFold.
    if (g.Ra != 1) {
      if (mx) cp::fold_reduce(x.data(), b.data(), c, cp::ExtremumFold<true, T>{});
      else cp::fold_reduce(x.data(), b.data(), c, cp::ExtremumFold<false, T>{});
    } else if (mx) cp::extremum_reduce<true>(x.data(), b.data(), nullptr, c);
    else cp::extremum_reduce<false>(x.data(), b.data(), nullptr, c);
    report(mx ? "max" : "min", cas + (g.Ra != 1 ? " ref=fold" : ""), "values", a, b, 0, 0);
    if (g.Ra == 1 && g.Rb > 0) {
      auto a2 = fresh(), b2 = fresh();
      std::vector<int64_t> ia(outs, -7), ib(outs, -7);
      Ws<T> ws2(g);
      cu::extremum_reduce(x.data(), a2.data(), ia.data(), g, mx, ws2.p(), 0);
      if (mx) cp::extremum_reduce<true>(x.data(), b2.data(), ib.data(), c);
      else cp::extremum_reduce<false>(x.data(), b2.data(), ib.data(), c);
      report(mx ? "argmax" : "argmin", cas, "values", a2, b2, 0, 0);
      report(mx ? "argmax" : "argmin", cas, "indices", ia, ib, 0, 0);
      if constexpr (std::is_floating_point_v<T>) {
        std::vector<T> ma(N, T(0)), mb(N, T(0));
        cu::scatter_ones(ib.data(), ma.data(), g, 0);
        cp::scatter_ones(ib.data(), mb.data(), c);
        report("scatter_ones", cas, "mask", ma, mb, 0, 0);
      }
    }
  }
  if constexpr (std::is_floating_point_v<T>) {
    const int64_t R = g.reduced();
    if (R > 0) {
      for (int64_t corr : {0, 1}) {
        if (R - corr <= 0) continue;
        for (bool sq : {false, true}) {
          auto a = fresh(), b = fresh();
          Ws<T> ws(g);
          cu::variance_reduce(x.data(), a.data(), g, double(R - corr), sq, ws.p(), 0);
          cp::variance_reduce(x.data(), b.data(), c, double(R - corr), sq);
          report(sq ? "std" : "var", cas + (corr ? " corr=1" : " corr=0"), "out", a, b, 4 * t, 4 * t);
        }
      }
    }
    {
      auto a = fresh(), b = fresh();
      Ws<T> ws(g);
      cu::logsumexp_reduce(x.data(), a.data(), g, ws.p(), 0);
      cp::logsumexp_reduce(x.data(), b.data(), c);
      report("logsumexp", cas, "out", a, b, 2 * t, 2 * t);
    }
    for (double p : {1.0, 2.0, 3.0, 0.5, double(INFINITY)}) {
      auto a = fresh(), b = fresh();
      Ws<T> ws(g);
      cu::norm_reduce(x.data(), a.data(), g, p, ws.p(), 0);
      cp::norm_reduce(x.data(), b.data(), c, p);
      report("norm", cas + " p=" + std::to_string(p).substr(0, 4), "out", a, b, 4 * t * std::sqrt(double(R) + 1), 4 * t);
    }
    // tie_weights: max, min, and max |x| (the infinity norm's backward)
    for (int mode = 0; mode < 3; ++mode) {
      std::vector<T> wa(N, nan_of<T>()), wb(N, nan_of<T>());
      Ws<T> ws(g);
      const bool mx = mode != 1, mag = mode == 2;
      cu::tie_weights(x.data(), wa.data(), g, mx, mag, ws.p(), 0);
      if (mx) cp::tie_weights<true>(x.data(), wb.data(), c, mag);
      else cp::tie_weights<false>(x.data(), wb.data(), c, mag);
      report(mode == 0 ? "tie_w max" : mode == 1 ? "tie_w min" : "tie_w |max|", cas, "weights", wa, wb, t, t);
    }
  }
}

int main(int argc, char** argv) {
  const std::string only = argc > 1 ? argv[1] : "";
  std::vector<Geo> geos = {
      {1, 1, 1, 1, 1},      {3, 1, 1, 33, 1},      {9, 1, 1, 70, 1},                      // warp rows, >8 warps
      {2, 1, 1, 1500, 1},                                                                   // block rows (len > 1024)
      {2, 3, 2, 5, 1},                                                                      // Ra > 1 rows
      {1, 1, 1, 9000, 1},                                                                   // rows split: 3 chunks of 3000
      {1, 3, 2, 1700, 1},                                                                   // rows split with Ra > 1
      {2, 1, 1, 7, 3},      {2, 3, 2, 7, 37},      {1, 5, 2, 30, 3},                      // columns, col split
      {2, 1, 1, 5, 300},                                                                    // columns over 3 blocks
      {3, 1, 1, 0, 1},      {0, 1, 1, 5, 1},                                               // empty
  };
  for (const Geo& G : geos) {
    if (!only.empty() && only != "all" && gstr(G) != only) continue;
    run_geo<float>(G, f_normal);
    run_geo<double>(G, f_normal);
    run_geo<int64_t>(G, f_normal);
    if (G.outer * G.Rb > 0) {
      run_geo<float>(G, f_ties);
      run_geo<float>(G, f_nan);
      run_geo<double>(G, f_inf);
      run_geo<float>(G, f_neginf_slices);
      run_geo<double>(G, f_allnan);
    }
  }
  // the grid-stride / team loops: fewer blocks than the work needs
  cpemu::grid_cap = 1;
  std::printf("-- grid capped at 1 block --\n");
  run_geo<float>({20, 1, 1, 40, 1}, f_ties);   // 20 warp-rows in one block of 8 warps
  run_geo<float>({3, 1, 1, 1100, 1}, f_nan);   // 3 block-rows on one block
  run_geo<double>({2, 1, 1, 9, 300}, f_normal);  // 600 columns on 256 threads
  cpemu::grid_cap = 0;
  return finish("reduce");
}
