// Emulated cuda/layer_norm.cu and cuda/cross_entropy.cu vs the CPU kernels.
#include "common.h"
#include "kiln/cuda/cross_entropy.h"
#include "kiln/cuda/layer_norm.h"
#include "kiln/ops/cpu/cross_entropy.h"
#include "kiln/ops/cpu/layer_norm.h"

namespace cu = kiln::cuda;
namespace cp = kiln::cpu;

template <class T>
void layer_norm(int64_t rows, int64_t n, int mode /*0 normal, 1 const rows, 2 offset 1e3*/, int grads = 7) {
  const int64_t N = rows * n;
  auto x = normal<T>(N);
  if (mode == 1) for (int64_t j = 0; j < n && rows; ++j) x[j] = T(2.5);  // row 0 constant: var 0
  if (mode == 2) for (auto& e : x) e += T(1000);
  auto w = normal<T>(n), b = normal<T>(n);
  const double eps = 1e-5;
  char cb[160];
  std::snprintf(cb, sizeof cb, "%s rows=%ld n=%ld%s grads=%d chunks=%ld", tname<T>(), (long)rows, (long)n,
                mode == 1 ? " const-row" : mode == 2 ? " +1000" : "", grads, (long)cu::layer_norm_row_chunks(rows, n));
  const double t = std::is_same_v<T, float> ? 2e-5 : 1e-12;
  std::vector<T> ya(N, nan_of<T>()), yb(N, nan_of<T>()), ma(rows, nan_of<T>()), mb(rows, nan_of<T>()),
      ra(rows, nan_of<T>()), rb(rows, nan_of<T>());
  cu::layer_norm_forward(x.data(), w.data(), b.data(), ya.data(), ma.data(), ra.data(), rows, n, eps, 0);
  cp::layer_norm_forward(x.data(), w.data(), b.data(), yb.data(), mb.data(), rb.data(), rows, n, eps);
  // Rows far from zero (+1000): x - mean loses about |offset| * epsilon in the f32 statistics
  // (the verifiers checked that with double statistics in the kernel the difference vanishes).
  const double offset_err = mode == 2 ? 1000 * std::numeric_limits<T>::epsilon() * 4 : 0;
  report("layer_norm", cb, "y", ya, yb, t * 5 + offset_err, t * 5);
  report("layer_norm", cb, "mean", ma, mb, t, t);
  report("layer_norm", cb, "rstd", ra, rb, t, t * 5);
  auto g = normal<T>(N);
  std::vector<T> dxa(N, nan_of<T>()), dxb(N, nan_of<T>()), dwa(n, nan_of<T>()), dwb(n, nan_of<T>()),
      dba(n, nan_of<T>()), dbb(n, nan_of<T>());
  std::vector<T> ws(cu::layer_norm_backward_workspace(rows, n), nan_of<T>());
  const bool gx = grads & 1, gw = grads & 2, gb = grads & 4;
  // backward from the CPU's saved statistics
  cu::layer_norm_backward(x.data(), mb.data(), rb.data(), w.data(), g.data(), gx ? dxa.data() : nullptr,
                          gw ? dwa.data() : nullptr, gb ? dba.data() : nullptr, rows, n, (gw || gb) ? ws.data() : nullptr, 0);
  cp::layer_norm_backward(x.data(), mb.data(), rb.data(), w.data(), g.data(), gx ? dxb.data() : nullptr,
                          gw ? dwb.data() : nullptr, gb ? dbb.data() : nullptr, rows, n);
  const double big = mode == 1 ? 1 / std::sqrt(eps) : 1;  // rstd of a constant row is 316
  if (gx) report("layer_norm", cb, "dx", dxa, dxb, t * 10 * big, t * 10);
  if (gw) report("layer_norm", cb, "dweight", dwa, dwb, t * 4 * std::sqrt(double(rows) + 1), t * 4);
  if (gb) report("layer_norm", cb, "dbias", dba, dbb, t * 4 * std::sqrt(double(rows) + 1), t * 4);
}

template <class T>
void cross_entropy(int64_t rows, int64_t C, int64_t ignore_index, double e, int special /*0 none,1 nan row,2 some -inf,3 all -inf row,4 large*/) {
  const int64_t N = rows * C;
  auto x = normal<T>(N, special == 4 ? 1e4 : 3);
  std::vector<int64_t> tgt = ints<int64_t>(rows, 0, int(C - 1));
  for (int64_t r = 0; r < rows; r += 3) if (ignore_index == -100) tgt[r] = -100;  // a third ignored
  if (rows > 1 && special == 1) for (int64_t c = 0; c < C; c += 5) x[1 * C + c] = nan_of<T>();
  if (special == 2) for (int64_t i = 0; i < N; i += 4) x[i] = -inf_of<T>();
  if (rows > 1 && special == 3) for (int64_t c = 0; c < C; ++c) x[1 * C + c] = -inf_of<T>();
  if (special == 2) for (int64_t r = 0; r < rows; ++r) if (tgt[r] >= 0 && tgt[r] % 4 == 0 && (r * C + tgt[r]) % 4 == 0) tgt[r] = (tgt[r] + 1) % C;
  char cb[200];
  std::snprintf(cb, sizeof cb, "%s rows=%ld C=%ld ign=%ld e=%.2f%s", tname<T>(), (long)rows, (long)C, (long)ignore_index, e,
                special == 1 ? " nan-row" : special == 2 ? " some -inf" : special == 3 ? " all-inf-row" : special == 4 ? " large" : "");
  const double t = std::is_same_v<T, float> ? 2e-5 : 1e-12;
  std::vector<T> la(rows, nan_of<T>()), lb(rows, nan_of<T>()), mxa(rows, nan_of<T>()), mxb(rows, nan_of<T>()),
      lsa(rows, nan_of<T>()), lsb(rows, nan_of<T>()), valid(rows, nan_of<T>());
  cu::cross_entropy_forward(x.data(), tgt.data(), la.data(), mxa.data(), lsa.data(), valid.data(), rows, C, ignore_index, e, 0);
  cp::cross_entropy_forward(x.data(), tgt.data(), lb.data(), mxb.data(), lsb.data(), rows, C, ignore_index, e);
  const double lt = special == 4 ? 1e-2 : t * 10;
  report("ce fwd", cb, "loss", la, lb, lt, t * 10);
  report("ce fwd", cb, "row_max", mxa, mxb, 0, 0);
  report("ce fwd", cb, "log_sum", lsa, lsb, t, t);
  std::vector<T> vb(rows);
  int64_t count = 0;
  for (int64_t r = 0; r < rows; ++r) vb[r] = tgt[r] == ignore_index ? 0 : 1, count += tgt[r] != ignore_index;
  report("ce fwd", cb, "valid", valid, vb, 0, 0);
  // backward: none (per-row grads), sum (scalar), mean (scalar / device count)
  for (int red = 0; red < 3; ++red) {
    auto g = red == 0 ? normal<T>(rows) : std::vector<T>{T(0.7)};
    const int64_t stride = red == 0 ? 1 : 0;
    const T cnt = T(count);
    const double scale = red == 2 ? (count > 0 ? 1.0 / double(count) : 0.0) : 1.0;
    std::vector<T> da(N, nan_of<T>()), db(N, nan_of<T>());
    cu::cross_entropy_backward(x.data(), tgt.data(), mxb.data(), lsb.data(), g.data(), stride, red == 2 ? &cnt : nullptr,
                               da.data(), rows, C, ignore_index, e, 0);
    cp::cross_entropy_backward(x.data(), tgt.data(), mxb.data(), lsb.data(), g.data(), stride, scale, db.data(), rows, C,
                               ignore_index, e);
    report("ce bwd", std::string(cb) + (red == 0 ? " none" : red == 1 ? " sum" : " mean"), "dlogits", da, db, t, t * 4);
  }
  std::vector<T> qa(N, nan_of<T>()), qb(N, nan_of<T>());
  cu::target_distribution(tgt.data(), qa.data(), rows, C, ignore_index, e, 0);
  cp::target_distribution(tgt.data(), qb.data(), rows, C, ignore_index, e);
  report("ce q", cb, "q", qa, qb, t, t);
}

// A target outside [0, C): the CPU op throws; the GPU contract is NaN loss/grad/q for that row only.
template <class T>
void cross_entropy_bad_target(int64_t rows, int64_t C) {
  auto x = normal<T>(rows * C);
  std::vector<int64_t> tgt = ints<int64_t>(rows, 0, int(C - 1));
  tgt[1] = C;  // out of range
  tgt[2] = -1;
  std::vector<T> l(rows, 7), mx(rows), ls(rows), v(rows), d(rows * C, 7), q(rows * C, 7);
  const T g = 1, cnt = T(rows);
  cu::cross_entropy_forward(x.data(), tgt.data(), l.data(), mx.data(), ls.data(), v.data(), rows, C, -100, 0.1, 0);
  cu::cross_entropy_backward(x.data(), tgt.data(), mx.data(), ls.data(), &g, 0, &cnt, d.data(), rows, C, -100, 0.1, 0);
  cu::target_distribution(tgt.data(), q.data(), rows, C, -100, 0.1, 0);
  bool ok = !std::isnan(l[0]) && std::isnan(l[1]) && std::isnan(l[2]) && !std::isnan(l[3]);
  for (int64_t c = 0; c < C; ++c)
    ok = ok && std::isnan(d[1 * C + c]) && std::isnan(d[2 * C + c]) && !std::isnan(d[c]) && std::isnan(q[C + c]) && !std::isnan(q[c]);
  report(std::string("ce bad target ") + tname<T>() + " rows=" + std::to_string(rows) + " C=" + std::to_string(C) +
             " targets C and -1",
         "NaN rows", exact(ok, rows * C));
}

int main(int argc, char** argv) {
  const std::string only = argc > 1 ? argv[1] : "all";
  if (only == "all" || only == "ln") {
    struct L { int64_t rows, n; };
    for (L c : {L{1, 1}, L{5, 7}, L{9, 32}, L{3, 100}, L{2, 1024}, L{2, 1500}, L{0, 5}, L{4, 1}}) {
      layer_norm<float>(c.rows, c.n, 0);
      layer_norm<double>(c.rows, c.n, 0);
      if (c.rows) layer_norm<float>(c.rows, c.n, 1), layer_norm<float>(c.rows, c.n, 2);
    }
    layer_norm<float>(100, 1500, 0);     // 88 chunks of 2 rows (the last 38 empty)
    layer_norm<double>(70, 2000, 0, 6);  // dweight/dbias only: 66 chunks of 2 rows
    layer_norm<float>(3, 40, 0, 1);
    layer_norm<float>(3, 40, 0, 2);
    layer_norm<float>(3, 40, 0, 4);
    cpemu::grid_cap = 1;
    std::printf("-- grid capped at 1 block --\n");
    layer_norm<float>(20, 50, 0);
    layer_norm<float>(3, 1100, 1);
    layer_norm<double>(3, 600, 0);  // 600 columns on 256 threads (dweight/dbias)
    cpemu::grid_cap = 0;
  }
  if (only == "all" || only == "ce") {
    struct E { int64_t rows, C; };
    for (E c : {E{1, 1}, E{5, 3}, E{9, 40}, E{3, 1500}, E{2, 1024}, E{2, 1025}}) {
      for (double e : {0.0, 0.1, 1.0}) {
        cross_entropy<float>(c.rows, c.C, -100, e, 0);
        cross_entropy<double>(c.rows, c.C, -100, e, 0);
      }
      if (c.C > 2) cross_entropy<float>(c.rows, c.C, 2, 0.2, 0);  // ignore_index a real class
      for (int sp = 1; sp <= 4; ++sp) cross_entropy<float>(c.rows, c.C, -100, 0.1, sp), cross_entropy<double>(c.rows, c.C, -100, 0, sp);
    }
    cross_entropy<float>(4, 6, 3, 0.1, 0);
    {  // every target ignored: mean count 0
      const int64_t rows = 3, C = 5;
      auto x = normal<float>(rows * C);
      std::vector<int64_t> tgt(rows, -100);
      std::vector<float> l(rows), mx(rows), ls(rows), v(rows), da(rows * C, 7), db(rows * C, 7);
      const float g = 1, cnt = 0;
      cu::cross_entropy_forward(x.data(), tgt.data(), l.data(), mx.data(), ls.data(), v.data(), rows, C, -100, 0.1, 0);
      cu::cross_entropy_backward(x.data(), tgt.data(), mx.data(), ls.data(), &g, 0, &cnt, da.data(), rows, C, -100, 0.1, 0);
      cp::cross_entropy_backward(x.data(), tgt.data(), mx.data(), ls.data(), &g, 0, 0.0, db.data(), rows, C, -100, 0.1);
      report("ce bwd", "f32 rows=3 C=5 all ignored, mean (count 0)", "dlogits", da, db, 0, 0);
    }
    cross_entropy_bad_target<float>(5, 7);
    cross_entropy_bad_target<double>(4, 1100);
    cpemu::grid_cap = 1;
    std::printf("-- grid capped at 1 block --\n");
    cross_entropy<float>(20, 30, -100, 0.1, 1);
    cross_entropy<float>(3, 1100, -100, 0.1, 2);
    cpemu::grid_cap = 0;
  }
  return finish("layer_norm_cross_entropy");
}
