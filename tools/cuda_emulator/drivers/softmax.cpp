// Emulated CUDA softmax and log_softmax (cuda/softmax.cu), forward and backward, vs
// ops/cpu/softmax.cpp: warp rows, block rows, columns, special values, a capped grid.
#include "common.h"
#include "kiln/cuda/softmax.h"
#include "kiln/ops/cpu/softmax.h"

namespace cu = kiln::cuda;
namespace cp = kiln::cpu;

enum Special { s_none, s_nan_row, s_neginf_row, s_posinf, s_some_neginf, s_large };
const char* sname(Special s) {
  static const char* n[] = {"normal", "nan-row", "all-inf-row", "+inf", "some -inf", "large(1e4)"};
  return n[s];
}

template <class T>
void run(int64_t outer, int64_t n, int64_t inner, Special sp) {
  const int64_t N = outer * n * inner;
  auto x = normal<T>(N, sp == s_large ? 1e4 : 3);
  // specials go into row (outer 0, column 0) and, when there are more, (outer last, column last)
  auto at = [&](int64_t o, int64_t j, int64_t i) { return (o * n + j) * inner + i; };
  if (N) {
    for (int64_t j = 0; j < n; ++j) {
      if (sp == s_nan_row && j == n / 2) x[at(0, j, 0)] = nan_of<T>();
      if (sp == s_neginf_row) x[at(0, j, 0)] = -inf_of<T>();
      if (sp == s_posinf && j == n - 1) x[at(outer - 1, j, inner - 1)] = inf_of<T>();
      if (sp == s_some_neginf && j % 3 == 0) x[at(0, j, 0)] = -inf_of<T>(), x[at(outer - 1, j, inner - 1)] = -inf_of<T>();
    }
  }
  char cb[160];
  std::snprintf(cb, sizeof cb, "%s outer=%ld n=%ld inner=%ld %s", tname<T>(), (long)outer, (long)n, (long)inner, sname(sp));
  const double t = std::is_same_v<T, float> ? 3e-6 : 1e-13;
  for (bool lg : {false, true}) {
    std::vector<T> ya(N, nan_of<T>()), yb(N, nan_of<T>());
    if (lg) cu::log_softmax_forward(x.data(), ya.data(), outer, n, inner, 0), cp::log_softmax_forward(x.data(), yb.data(), outer, n, inner);
    else cu::softmax_forward(x.data(), ya.data(), outer, n, inner, 0), cp::softmax_forward(x.data(), yb.data(), outer, n, inner);
    report(lg ? "log_softmax" : "softmax", cb, "fwd", ya, yb, lg ? t * 10 : t, t * 4);
    auto g = normal<T>(N);
    std::vector<T> da(N, nan_of<T>()), db(N, nan_of<T>());
    // both backwards from the CPU's y, so only the backward kernels differ
    if (lg) cu::log_softmax_backward(yb.data(), g.data(), da.data(), outer, n, inner, 0), cp::log_softmax_backward(yb.data(), g.data(), db.data(), outer, n, inner);
    else cu::softmax_backward(yb.data(), g.data(), da.data(), outer, n, inner, 0), cp::softmax_backward(yb.data(), g.data(), db.data(), outer, n, inner);
    report(lg ? "log_softmax" : "softmax", cb, "bwd", da, db, t * std::sqrt(double(n)) * 4, t * 4);
  }
}

int main() {
  struct C { int64_t outer, n, inner; };
  const C cases[] = {{1, 1, 1},    {3, 7, 1},     {9, 32, 1},  {2, 33, 1},   {10, 100, 1}, {2, 1024, 1},
                     {2, 1025, 1}, {2, 2500, 1},  {2, 5, 3},   {3, 17, 100}, {1, 1, 7},    {2, 1300, 2},
                     {0, 5, 1},    {3, 0, 1},     {2, 4, 0}};
  for (const C& c : cases) {
    run<float>(c.outer, c.n, c.inner, s_none);
    run<double>(c.outer, c.n, c.inner, s_none);
    if (c.outer * c.n * c.inner == 0) continue;
    for (Special sp : {s_nan_row, s_neginf_row, s_posinf, s_some_neginf, s_large}) run<float>(c.outer, c.n, c.inner, sp);
    run<double>(c.outer, c.n, c.inner, s_neginf_row);
  }
  cpemu::grid_cap = 1;
  std::printf("-- grid capped at 1 block --\n");
  run<float>(20, 50, 1, s_nan_row);     // 20 warp-rows on 8 warps
  run<float>(3, 1100, 1, s_some_neginf);  // 3 block-rows on one block
  run<double>(2, 9, 300, s_neginf_row);  // 600 columns on 256 threads
  cpemu::grid_cap = 0;
  return finish("softmax");
}
