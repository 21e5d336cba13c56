// Emulated CUDA index kernels (cuda/index.cu) vs the CPU kernels (ops/cpu/index.h).
#include "common.h"
#include "kiln/cuda/index.h"
#include "kiln/ops/cpu/index.h"

using namespace kiln;

std::vector<int64_t> random_index(int64_t n, int64_t rows) {
  std::uniform_int_distribution<int64_t> U(0, rows - 1);
  std::vector<int64_t> v(n);
  for (auto& e : v) e = U(rng);
  return v;
}

template <class T> std::vector<T> values(int64_t n) {
  if constexpr (std::is_floating_point_v<T>) return normal<T>(n);
  else {
    std::uniform_int_distribution<int64_t> U(-1000, 1000);
    std::vector<T> v(n);
    for (auto& e : v) e = T(U(rng));
    return v;
  }
}

template <class T> void test_index_select(int64_t outer, int64_t src_rows, int64_t inner, int64_t n_index) {
  char name[128];
  std::snprintf(name, sizeof name, "index_select %s outer%lld rows%lld inner%lld n%lld", tname<T>(), (long long)outer,
                (long long)src_rows, (long long)inner, (long long)n_index);
  auto src = values<T>(outer * src_rows * inner);
  auto index = random_index(n_index, src_rows);
  std::vector<T> out_c(outer * n_index * inner), out_g = poison<T>(outer * n_index * inner);
  cpu::index_select(out_c.data(), src.data(), index.data(), n_index, outer, src_rows, inner);
  cuda::index_select(out_g.data(), src.data(), index.data(), n_index, outer, src_rows, inner, 0);
  const Diff d = exact(bitwise_equal(out_g, out_c), out_c.size());
  report(name, "bits", d);
}

template <class T>
void test_index_add(int64_t outer, int64_t out_rows, int64_t inner, int64_t n_index, int64_t distinct) {
  char name[160];
  std::snprintf(name, sizeof name, "index_add %s outer%lld rows%lld inner%lld n%lld distinct%lld", tname<T>(),
                (long long)outer, (long long)out_rows, (long long)inner, (long long)n_index, (long long)distinct);
  auto src = values<T>(outer * n_index * inner);
  // Many repeats: indices drawn from `distinct` rows only.
  std::vector<int64_t> index(n_index);
  {
    std::vector<int64_t> pool = random_index(distinct, out_rows);
    std::uniform_int_distribution<int64_t> U(0, distinct - 1);
    for (auto& e : index) e = pool[U(rng)];
  }
  std::vector<T> out_c(outer * out_rows * inner, T(0));
  cpu::index_add(out_c.data(), src.data(), index.data(), n_index, outer, out_rows, inner);
  std::vector<T> first;
  for (int order = 0; order < 3; ++order) {
    cpemu::block_order = order;
    std::vector<T> out_g = poison<T>(out_c.size());
    std::vector<int64_t> scratch = poison<int64_t>(cuda::index_add_scratch_size(n_index));
    cuda::index_add(out_g.data(), src.data(), index.data(), n_index, outer, out_rows, inner, scratch.data(), 0);
    // sorted?
    for (size_t s = 1; s < scratch.size(); ++s)
      if (scratch[s - 1] > scratch[s]) { std::printf("  keys not sorted at %zu\n", s); break; }
    if (order == 0) {
      report(name, "sum", compare(out_g, out_c, 0, std::is_same_v<T, float> ? 1e-6 : 1e-14));
      const Diff d = exact(bitwise_equal(out_g, out_c), out_c.size());
      report(name, "==cpu", d);
      first = out_g;
    } else {
      const Diff d = exact(bitwise_equal(out_g, first), out_c.size());
      report(name, order == 1 ? "det-rev" : "det-rnd", d);
    }
  }
  cpemu::block_order = 0;
}

// 3-D x (A, X, C), index (a, n, c) along dim 1 (or along dim 2 with `last`), out like index.
struct GatherCase {
  int64_t A, X, C, a, n, c;
  int dim = 1;
  bool transposed_x = false;  // x stored (C, X, A)-major, i.e. strided
};

template <class T> void test_gather_scatter(const GatherCase& g) {
  char name[160];
  std::snprintf(name, sizeof name, "gather/scatter %s x(%lld,%lld,%lld) idx(%lld,%lld,%lld) dim%d%s", tname<T>(),
                (long long)g.A, (long long)g.X, (long long)g.C, (long long)g.a, (long long)g.n, (long long)g.c, g.dim,
                g.transposed_x ? " xT" : "");
  const int64_t xs[3] = {g.A, g.X, g.C}, is[3] = {g.a, g.n, g.c};
  int64_t x_st[3], i_st[3] = {g.n * g.c, g.c, 1};
  if (g.transposed_x) { x_st[0] = 1; x_st[1] = g.A; x_st[2] = g.A * g.X; }
  else { x_st[0] = g.X * g.C; x_st[1] = g.C; x_st[2] = 1; }
  auto x = values<T>(g.A * g.X * g.C);
  auto index = random_index(g.a * g.n * g.c, xs[g.dim]);
  // lines (index, indexed=x, dense=out); out contiguous like index
  cpu::IndexLines L;
  for (int d = 0; d < 3; ++d) {
    if (d == g.dim) {
      L.length = is[d];
      L.step = {i_st[d], x_st[d], i_st[d]};
    } else {
      L.grid.push_back(is[d]);
      L.strides[0].push_back(i_st[d]);
      L.strides[1].push_back(x_st[d]);
      L.strides[2].push_back(i_st[d]);
    }
  }
  cuda::IndexLinesLayout layout;
  layout.ndim = int(L.grid.size());
  for (int d = 0; d < layout.ndim; ++d) {
    layout.grid[d] = L.grid[d];
    for (int k = 0; k < 3; ++k) layout.strides[k][d] = L.strides[k][d];
  }
  for (int k = 0; k < 3; ++k) layout.step[k] = L.step[k];
  layout.length = L.length;
  layout.lines = L.count();
  layout.indexed_size = xs[g.dim];

  const int64_t n_out = g.a * g.n * g.c;
  std::vector<T> out_c(n_out), out_g = poison<T>(n_out);
  cpu::gather(out_c.data(), x.data(), index.data(), L);
  using W = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;  // as dispatch_word
  cuda::gather(reinterpret_cast<W*>(out_g.data()), reinterpret_cast<const W*>(x.data()), index.data(), layout, 0);
  const Diff d = exact(bitwise_equal(out_g, out_c), n_out);
  report(name, "gather", d);

  // scatter_add into a copy of x (indexed), src = a fresh (a, n, c) tensor (dense, contiguous)
  auto src = values<T>(n_out);
  std::vector<T> sc_c = x, sc_g = x;
  cpu::scatter_add(sc_c.data(), src.data(), index.data(), L);
  cpemu::block_order = 2;
  cuda::scatter_add(sc_g.data(), src.data(), index.data(), layout, 0);
  cpemu::block_order = 0;
  const Diff e = exact(bitwise_equal(sc_g, sc_c), sc_c.size());
  report(name, "scatter", e);
}

int main() {
  for (auto [o, r, i, n] : std::vector<std::array<int64_t, 4>>{
           {1, 1, 1, 1}, {3, 7, 1, 5}, {2, 50, 33, 17}, {1, 300, 5, 1000}, {4, 3, 257, 9}, {1, 10, 1, 0}}) {
    test_index_select<uint8_t>(o, r, i, n);
    test_index_select<uint16_t>(o, r, i, n);
    test_index_select<uint32_t>(o, r, i, n);
    test_index_select<uint64_t>(o, r, i, n);
  }
  // index_add (embedding backward): many repeats, n not a power of two, inner > 256 threads, inner 1
  for (auto [o, r, i, n, dist] : std::vector<std::array<int64_t, 5>>{{1, 1, 1, 1, 1},
                                                                      {1, 7, 1, 1000, 3},
                                                                      {1, 50, 33, 513, 5},
                                                                      {2, 11, 300, 97, 4},
                                                                      {3, 5, 7, 300, 5},
                                                                      {1, 1000, 16, 129, 129},
                                                                      {1, 4, 2, 2048, 2},
                                                                      {2, 9, 40, 0, 1}}) {
    if (n == 0) {  // no index: every row zero
      std::vector<float> out = poison<float>(o * r * i), src;
      cuda::index_add(out.data(), src.data(), nullptr, 0, o, r, i, nullptr, 0);
      Diff d;
      d.n = out.size();
      for (float v : out) d.nan_mismatch += v != 0;
      report("index_add f32 n0 (all rows zero)", "zeros", d);
      continue;
    }
    test_index_add<float>(o, r, i, n, dist);
    test_index_add<double>(o, r, i, n, dist);
    test_index_add<int64_t>(o, r, i, n, dist);
  }
  for (const GatherCase& g : std::vector<GatherCase>{{2, 5, 3, 2, 4, 3},
                                                     {3, 40, 33, 2, 70, 30},
                                                     {4, 6, 9, 3, 6, 9, 2},
                                                     {5, 17, 300, 5, 3, 260, 1, true},
                                                     {1, 1, 1, 1, 1, 1}}) {
    test_gather_scatter<float>(g);
    test_gather_scatter<double>(g);
    test_gather_scatter<int64_t>(g);
  }
  return finish("index");
}
