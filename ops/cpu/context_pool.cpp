// ContextPool kernels. The formulas (one output o, its window N(o) of grid cells q):
//
//   g_o(q) = exp(-|p_o - q|^2 / (2 s_o^2))          the Gaussian, p_o = o's centre
//   w_oq   = g_o(q) m_q                              the weight of cell q in output o
//   Z_o    = sum_{q in N(o)} w_oq + eps
//   y_o    = sum_{q in N(o)} w_oq x_q / Z_o
//
// Backward, for an output gradient gy (· is the dot product over channels). y_o is a
// ratio, so dy_o/dw_oq = (x_q - y_o) / Z_o and
//
//   a_oq  := dL/dw_oq = gy_o · (x_q - y_o) / Z_o = (gy_o · x_q - gy_o · y_o) / Z_o
//   dx_q   = sum_{o : q in N(o)} (w_oq / Z_o) gy_o
//   dm_q   = sum_{o : q in N(o)} g_o(q) a_oq                    (dw_oq/dm_q = g_o(q))
//   ds_o   = sum_{q in N(o)} a_oq w_oq |p_o - q|^2 / s_o^3       (dg/ds = g |p-q|^2 / s^3)
//
// For s_o = +inf every g_o(q) is 1 and ds_o = 0 (the limit; computing |p-q|^2 / s^3
// literally would give 0 too, but we never form inf / inf).
//
// ds_o is a sum over o's own window, so it is computed per output. dx_q and dm_q sum over
// the outputs whose windows hold q: rather than scattering into them from each output
// (which needs atomics or per-thread copies of dx), pass 1 stores, per output and window
// cell, the two coefficients w_oq / Z_o and g_o(q) a_oq in "band" buffers (outputs x
// window cells), and pass 2 gathers them per input cell q. Each pass writes only its own
// rows, so both run OpenMP-parallel with no races.
//
// Window cells are numbered within a fixed band of (2 Wr + 1) rows x band_cols columns
// around the centre, Wr = min(W, height - 1), Wc = min(W, width - 1), band_cols = 2 Wc + 1
// (Wc + 1 when causal: offsets -Wc..0). Cells outside the grid have a number but are
// never read or written.
#include "kiln/ops/cpu/context_pool.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <vector>

#include "kiln/ops/cpu/loops.h"

namespace kiln::cpu {

namespace {

using Geometry = ContextPoolGeometry;

// The band of window offsets every output's window fits in (see the file comment).
struct Band {
  int64_t half_rows = 0, half_cols = 0;  // Wr, Wc
  int64_t cols = 1;                      // band_cols
  int64_t cells = 1;                     // (2 Wr + 1) * band_cols
  bool causal = false;

  explicit Band(const Geometry& g)
      : half_rows(std::max<int64_t>(0, std::min(g.window, g.height - 1))),
        half_cols(std::max<int64_t>(0, std::min(g.window, g.width - 1))),
        cols(g.causal ? half_cols + 1 : 2 * half_cols + 1),
        cells((2 * half_rows + 1) * cols),
        causal(g.causal) {}

  // The cell number of offset (dr, dc) = q - p_o.
  int64_t cell(int64_t dr, int64_t dc) const { return (dr + half_rows) * cols + (dc + half_cols); }
  // The largest |offset| along either axis: the Gaussian table's last entry.
  int64_t reach() const { return std::max(half_rows, half_cols); }
};

// Output (oi, oj)'s centre and the grid rows / columns its window covers (inclusive).
struct Window {
  int64_t ci, cj;
  int64_t r0, r1, c0, c1;
};

Window window_of(const Geometry& g, const Band& band, int64_t oi, int64_t oj) {
  Window w;
  w.ci = oi * g.stride;
  w.cj = oj * g.stride;
  w.r0 = std::max<int64_t>(0, w.ci - band.half_rows);
  w.r1 = std::min(g.height - 1, w.ci + band.half_rows);
  w.c0 = std::max<int64_t>(0, w.cj - band.half_cols);
  w.c1 = g.causal ? w.cj : std::min(g.width - 1, w.cj + band.half_cols);
  return w;
}

// The outputs along one axis whose window holds input position p, for windows reaching
// `before` cells before their centre and `after` cells after it: a centre o * stride
// covers p when centre - before <= p <= centre + after, i.e. it lies in
// [p - after, p + before]. Clipped to [0, outs).
struct OutputRange {
  int64_t first, last;  // inclusive; empty when first > last
};

OutputRange outputs_covering(int64_t p, int64_t before, int64_t after, int64_t stride, int64_t outs) {
  const int64_t lo = p - after, hi = p + before;
  return {lo <= 0 ? 0 : (lo + stride - 1) / stride, std::min(outs - 1, hi / stride)};
}

// gauss[k] = exp(-k^2 / (2 s^2)) for k = 0..reach: the Gaussian is separable, so a cell's
// g is gauss[|dr|] * gauss[|dc|]. s = +inf gives all ones (k^2 * 0 = 0).
template <class T>
void fill_gaussian(T* gauss, int64_t reach, T s) {
  const T inv_two_var = T(1) / (T(2) * s * s);
  for (int64_t k = 0; k <= reach; ++k) gauss[k] = std::exp(-T(k * k) * inv_two_var);
}

// y += sum_i w[i] rows[i] over `count` rows of length d: four rows per sweep, so y is
// loaded and stored once per four rows; the loop over d vectorises.
template <class T>
void accumulate_rows(T* __restrict y, const T* const* rows, const T* w, int64_t count, int64_t d) {
  int64_t i = 0;
  for (; i + 4 <= count; i += 4) {
    const T w0 = w[i], w1 = w[i + 1], w2 = w[i + 2], w3 = w[i + 3];
    const T *__restrict r0 = rows[i], *__restrict r1 = rows[i + 1], *__restrict r2 = rows[i + 2],
            *__restrict r3 = rows[i + 3];
#pragma omp simd
    for (int64_t k = 0; k < d; ++k) y[k] += w0 * r0[k] + w1 * r1[k] + w2 * r2[k] + w3 * r3[k];
  }
  for (; i < count; ++i) {
    const T w0 = w[i];
    const T* __restrict r0 = rows[i];
#pragma omp simd
    for (int64_t k = 0; k < d; ++k) y[k] += w0 * r0[k];
  }
}

// out[i] = v . rows[i] for `count` rows of length d. Four dot products per sweep share
// the loads of v and run four independent accumulator chains (one chain alone would wait
// on its own add latency); a last, partial group repeats its first row, whose extra
// results are dropped, so that every row takes the fast path.
template <class T>
void dot_rows(const T* __restrict v, const T* const* rows, int64_t count, int64_t d, T* out) {
  for (int64_t i = 0; i < count; i += 4) {
    auto row = [&](int64_t j) { return rows[i + j < count ? i + j : i]; };
    const T *__restrict r0 = row(0), *__restrict r1 = row(1), *__restrict r2 = row(2), *__restrict r3 = row(3);
    T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
    for (int64_t k = 0; k < d; ++k) {
      s0 += v[k] * r0[k];
      s1 += v[k] * r1[k];
      s2 += v[k] * r2[k];
      s3 += v[k] * r3[k];
    }
    const T sums[4] = {s0, s1, s2, s3};
    for (int64_t j = 0; j < 4 && i + j < count; ++j) out[i + j] = sums[j];
  }
}

// Work above kParallelThreshold multiply-adds is spread over the threads.
bool worth_parallel(const Geometry& g, const Band& band) {
  return g.batch * g.outputs() * band.cells * std::max<int64_t>(g.channels, 1) > kParallelThreshold;
}

// One output's window, gathered into flat arrays (per-thread scratch of band.cells
// entries): for each grid cell q of the window, its feature row x_q, the Gaussian g_o(q),
// the weight w_oq = g_o(q) m_q, the squared distance |p_o - q|^2 and its band cell.
template <class T>
struct WindowCells {
  std::vector<T> gauss_table;  // gauss[k], k = 0..band.reach()
  std::vector<const T*> rows;
  std::vector<T> gauss, weight, distance2, dot;
  std::vector<int64_t> band_cell;
  int64_t count = 0;
  T z = 0;  // Z_o = sum of the weights + eps

  explicit WindowCells(const Band& band)
      : gauss_table(band.reach() + 1),
        rows(band.cells),
        gauss(band.cells),
        weight(band.cells),
        distance2(band.cells),
        dot(band.cells),
        band_cell(band.cells) {}

  // Output `row` (batch b, output o) of x (b, height, width, d).
  void gather(const Geometry& g, const Band& band, const T* x, const T* m, const T* s, int64_t row) {
    const int64_t outputs = g.outputs(), b = row / outputs, o = row % outputs;
    const Window win = window_of(g, band, o / g.out_width, o % g.out_width);
    fill_gaussian(gauss_table.data(), band.reach(), s[row]);
    count = 0;
    z = static_cast<T>(g.eps);
    for (int64_t r = win.r0; r <= win.r1; ++r) {
      const int64_t dr = r - win.ci;
      for (int64_t c = win.c0; c <= win.c1; ++c) {
        const int64_t dc = c - win.cj, q = (b * g.height + r) * g.width + c;
        rows[count] = x + q * g.channels;
        gauss[count] = gauss_table[std::abs(dr)] * gauss_table[std::abs(dc)];
        weight[count] = gauss[count] * m[q];
        distance2[count] = static_cast<T>(dr * dr + dc * dc);
        band_cell[count] = band.cell(dr, dc);
        z += weight[count];
        ++count;
      }
    }
  }
};

}  // namespace

// ---- forward ---------------------------------------------------------------------------

template <class T>
void context_pool_forward(const Geometry& g, const T* x, const T* m, const T* s, T* y) {
  const Band band(g);
  const int64_t d = g.channels;
#pragma omp parallel if (worth_parallel(g, band))
  {
    WindowCells<T> window(band);  // per thread
#pragma omp for schedule(static)
    for (int64_t row = 0; row < g.batch * g.outputs(); ++row) {
      window.gather(g, band, x, m, s, row);
      T* yo = y + row * d;
      std::fill_n(yo, d, T(0));
      accumulate_rows(yo, window.rows.data(), window.weight.data(), window.count, d);
      const T inv_z = T(1) / window.z;
#pragma omp simd
      for (int64_t k = 0; k < d; ++k) yo[k] *= inv_z;
    }
  }
}

// ---- backward --------------------------------------------------------------------------

namespace {

// Pass 1, one output row: ds_o, and o's band of coefficients w_oq / Z_o (for dx) and
// g_o(q) a_oq (for dm). Any output pointer may be null.
template <class T>
struct BackwardPass1 {
  const Geometry& g;
  const Band& band;
  const T *x, *m, *s, *y, *gy;
  T *dx_band, *dm_band, *ds;

  void run(int64_t row, WindowCells<T>& window) const {
    const int64_t d = g.channels;
    window.gather(g, band, x, m, s, row);
    const T inv_z = T(1) / window.z;
    if (dx_band) {
      T* band_row = dx_band + row * band.cells;
      for (int64_t i = 0; i < window.count; ++i) band_row[window.band_cell[i]] = window.weight[i] * inv_z;
    }
    if (!dm_band && !ds) return;

    // a_i = gy_o . (x_q - y_o) / Z_o for every cell of the window
    const T* gy_o = gy + row * d;
    const T* y_o = y + row * d;
    T gy_dot_y;
    dot_rows(gy_o, &y_o, 1, d, &gy_dot_y);
    dot_rows(gy_o, window.rows.data(), window.count, d, window.dot.data());
    T ds_sum = 0;
    T* band_row = dm_band ? dm_band + row * band.cells : nullptr;
    for (int64_t i = 0; i < window.count; ++i) {
      const T a = (window.dot[i] - gy_dot_y) * inv_z;
      if (band_row) band_row[window.band_cell[i]] = window.gauss[i] * a;
      ds_sum += a * window.weight[i] * window.distance2[i];
    }
    if (ds) {
      const T s_o = s[row];
      ds[row] = std::isinf(s_o) ? T(0) : ds_sum / (s_o * s_o * s_o);
    }
  }
};

// Pass 2, one input cell q: gathers dx_q and dm_q from the bands of the outputs covering q.
template <class T>
struct BackwardPass2 {
  const Geometry& g;
  const Band& band;
  const T* gy;
  const T *dx_band, *dm_band;
  T *dx, *dm;

  // Scratch: the covering outputs' gy rows and coefficients (band.cells entries each).
  struct Scratch {
    std::vector<const T*> rows;
    std::vector<T> coefficients;
    explicit Scratch(const Band& band) : rows(band.cells), coefficients(band.cells) {}
  };

  void run(int64_t cell_index, Scratch& scratch) const {
    const int64_t inputs = g.inputs(), d = g.channels;
    const int64_t b = cell_index / inputs, q = cell_index % inputs;
    const int64_t r = q / g.width, c = q % g.width;
    // A causal window reaches no cell after its centre, so only centres at or right of q see q.
    const OutputRange rows = outputs_covering(r, band.half_rows, band.half_rows, g.stride, g.out_height);
    const OutputRange cols =
        outputs_covering(c, band.half_cols, band.causal ? 0 : band.half_cols, g.stride, g.out_width);
    int64_t count = 0;
    T dm_sum = 0;
    for (int64_t oi = rows.first; oi <= rows.last; ++oi) {
      const int64_t dr = r - oi * g.stride;
      for (int64_t oj = cols.first; oj <= cols.last; ++oj) {
        const int64_t out_row = (b * g.out_height + oi) * g.out_width + oj;
        const int64_t cell = out_row * band.cells + band.cell(dr, c - oj * g.stride);
        if (dm_band) dm_sum += dm_band[cell];
        if (dx) {
          scratch.rows[count] = gy + out_row * d;
          scratch.coefficients[count++] = dx_band[cell];
        }
      }
    }
    if (dx) {
      T* dx_q = dx + cell_index * d;
      std::fill_n(dx_q, d, T(0));
      accumulate_rows(dx_q, scratch.rows.data(), scratch.coefficients.data(), count, d);
    }
    if (dm) dm[cell_index] = dm_sum;
  }
};

}  // namespace

template <class T>
void context_pool_backward(const Geometry& g, const T* x, const T* m, const T* s, const T* y, const T* gy, T* dx,
                           T* dm, T* ds) {
  const Band band(g);
  const int64_t out_rows = g.batch * g.outputs(), in_cells = g.batch * g.inputs();
  if (out_rows == 0) {  // no output: nothing depends on the inputs
    if (dx) std::fill_n(dx, in_cells * g.channels, T(0));
    if (dm) std::fill_n(dm, in_cells, T(0));
    return;
  }
  // Band cells outside the grid are never written nor read, so no initialisation.
  auto band_buffer = [&](bool needed) {
    return needed ? std::make_unique_for_overwrite<T[]>(static_cast<size_t>(out_rows * band.cells)) : nullptr;
  };
  const std::unique_ptr<T[]> dx_band = band_buffer(dx != nullptr), dm_band = band_buffer(dm != nullptr);
  const bool parallel = worth_parallel(g, band);

  const BackwardPass1<T> pass1{g, band, x, m, s, y, gy, dx_band.get(), dm_band.get(), ds};
#pragma omp parallel if (parallel)
  {
    WindowCells<T> window(band);
#pragma omp for schedule(static)
    for (int64_t row = 0; row < out_rows; ++row) pass1.run(row, window);
  }
  if (!dx && !dm) return;

  const BackwardPass2<T> pass2{g, band, gy, dx_band.get(), dm_band.get(), dx, dm};
#pragma omp parallel if (parallel)
  {
    typename BackwardPass2<T>::Scratch scratch(band);
#pragma omp for schedule(static)
    for (int64_t cell = 0; cell < in_cells; ++cell) pass2.run(cell, scratch);
  }
}

#define KILN_INSTANTIATE(T)                                                                             \
  template void context_pool_forward<T>(const Geometry&, const T*, const T*, const T*, T*);            \
  template void context_pool_backward<T>(const Geometry&, const T*, const T*, const T*, const T*, const T*, \
                                         T*, T*, T*);
KILN_INSTANTIATE(float)
KILN_INSTANTIATE(double)
#undef KILN_INSTANTIATE

}  // namespace kiln::cpu
