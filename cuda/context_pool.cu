// ContextPool kernels on the GPU (see context_pool.h; the formulas and the band scheme
// are derived in ops/cpu/context_pool.cpp). For one output o and its window N(o):
//
//   w_oq = g_o(q) m_q,   Z_o = sum_q w_oq + eps,   y_o = sum_q w_oq x_q / Z_o
//   a_oq = (gy_o . x_q - gy_o . y_o) / Z_o
//   dx_q = sum_{o : q in N(o)} (w_oq / Z_o) gy_o,   dm_q = sum_o g_o(q) a_oq,
//   ds_o = sum_q a_oq w_oq |p_o - q|^2 / s_o^3
//
// Thread mapping (all three kernels loop over their rows with a block-stride loop, so any
// size fits the grid):
//   forward       one block per output row; the window's weights are computed once per
//                 cell into shared memory, a tile of blockDim cells at a time, then each
//                 thread accumulates its channels over the tile (coalesced reads of x_q).
//   backward 1    one block per output row: Z_o and gy_o . y_o by block reductions, then
//                 one warp per window cell for the dot product gy_o . x_q; writes o's band
//                 of w_oq / Z_o and g_o(q) a_oq, and ds_o (block reduction).
//   backward 2    one block per input cell q: gathers dx_q (threads over channels) and dm_q
//                 (block reduction) from the bands of the outputs whose windows hold q.
// Every output element has one owner, so the results are deterministic (no atomics).
#include "kiln/cuda/context_pool.h"

#include "kiln/cuda/launch.cuh"

namespace kiln::cuda {

namespace {

using Geometry = cpu::ContextPoolGeometry;
using Band = ContextPoolBand;

__device__ inline float exponential(float v) { return expf(v); }
__device__ inline double exponential(double v) { return exp(v); }

// exp(-delta^2 / (2 s^2)) given inv_two_var = 1 / (2 s^2): one axis of the separable
// Gaussian, computed as the CPU's table entry is (s = +inf gives inv_two_var = 0, so 1).
template <class T>
__device__ inline T gaussian(int64_t delta, T inv_two_var) {
  return exponential(-T(delta * delta) * inv_two_var);
}

// Output (oi, oj)'s centre and the grid rows / columns its window covers (inclusive),
// as the CPU's window_of.
struct Window {
  int64_t ci, cj;
  int64_t r0, r1, c0, c1;
  __device__ int64_t cols() const { return c1 - c0 + 1; }
  __device__ int64_t cells() const { return (r1 - r0 + 1) * cols(); }
};

__device__ inline Window window_of(const Geometry& g, const Band& band, int64_t oi, int64_t oj) {
  Window w;
  w.ci = oi * g.stride;
  w.cj = oj * g.stride;
  w.r0 = max(int64_t(0), w.ci - band.half_rows);
  w.r1 = min(g.height - 1, w.ci + band.half_rows);
  w.c0 = max(int64_t(0), w.cj - band.half_cols);
  w.c1 = g.causal ? w.cj : min(g.width - 1, w.cj + band.half_cols);
  return w;
}

// The band cell number of offset (dr, dc) = q - p_o.
__device__ inline int64_t band_cell(const Band& band, int64_t dr, int64_t dc) {
  return (dr + band.half_rows) * band.cols + (dc + band.half_cols);
}

// Window cell t (row-major within the window) of output row `row` in batch b: its input
// cell q (flat over batch, height, width), offsets from the centre, and Gaussian.
template <class T>
struct Cell {
  int64_t q, dr, dc;
  T gauss;
};

template <class T>
__device__ inline Cell<T> cell_of(const Geometry& g, const Window& win, int64_t b, int64_t t, T inv_two_var) {
  const int64_t r = win.r0 + t / win.cols(), c = win.c0 + t % win.cols();
  const int64_t dr = r - win.ci, dc = c - win.cj;
  return {(b * g.height + r) * g.width + c, dr, dc, gaussian(dr, inv_two_var) * gaussian(dc, inv_two_var)};
}

template <class T>
__device__ inline T inverse_two_variance(T s) {
  return T(1) / (T(2) * s * s);
}

// ---- forward ---------------------------------------------------------------------------

template <class T>
__global__ void forward_kernel(Geometry g, Band band, const T* __restrict__ x, const T* __restrict__ m,
                               const T* __restrict__ s, T* __restrict__ y) {
  __shared__ T tile_weight[kThreadsPerBlock];
  __shared__ int64_t tile_cell[kThreadsPerBlock];
  __shared__ Acc<T> scratch[kWarpSize];
  const int64_t outputs = g.out_height * g.out_width, rows = g.batch * outputs, d = g.channels;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t b = row / outputs, o = row % outputs;
    const Window win = window_of(g, band, o / g.out_width, o % g.out_width);
    const int64_t count = win.cells();  // >= 1: the centre is always on the grid
    const T inv_two_var = inverse_two_variance(s[row]);
    T* y_o = y + row * d;
    Acc<T> z_part = 0;
    for (int64_t tile = 0; tile < count; tile += blockDim.x) {
      __syncthreads();  // every thread is done reading the previous tile (or row)
      const int64_t t = tile + threadIdx.x;
      if (t < count) {
        const Cell<T> cell = cell_of(g, win, b, t, inv_two_var);
        const T weight = cell.gauss * m[cell.q];
        tile_weight[threadIdx.x] = weight;
        tile_cell[threadIdx.x] = cell.q;
        z_part += weight;
      }
      __syncthreads();
      const int64_t in_tile = min(int64_t(blockDim.x), count - tile);
      for (int64_t k = threadIdx.x; k < d; k += blockDim.x) {
        Acc<T> acc = tile == 0 ? Acc<T>(0) : Acc<T>(y_o[k]);  // y_o[k] is this thread's own partial sum
        for (int64_t i = 0; i < in_tile; ++i) acc += tile_weight[i] * x[tile_cell[i] * d + k];
        y_o[k] = static_cast<T>(acc);
      }
    }
    const T z = static_cast<T>(block_reduce(z_part, SumOp{}, Acc<T>(0), scratch) + static_cast<Acc<T>>(g.eps));
    const T inv_z = T(1) / z;
    for (int64_t k = threadIdx.x; k < d; k += blockDim.x) y_o[k] *= inv_z;
  }
}

// ---- backward --------------------------------------------------------------------------

template <class T>
__global__ void backward_outputs_kernel(Geometry g, Band band, const T* __restrict__ x, const T* __restrict__ m,
                                        const T* __restrict__ s, const T* __restrict__ y, const T* __restrict__ gy,
                                        T* __restrict__ dx_band, T* __restrict__ dm_band, T* __restrict__ ds) {
  __shared__ Acc<T> scratch[kWarpSize];
  const int64_t outputs = g.out_height * g.out_width, rows = g.batch * outputs, d = g.channels;
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize, warps = blockDim.x / kWarpSize;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t b = row / outputs, o = row % outputs;
    const Window win = window_of(g, band, o / g.out_width, o % g.out_width);
    const int64_t count = win.cells();
    const T s_o = s[row], inv_two_var = inverse_two_variance(s_o);

    Acc<T> z_part = 0;
    for (int64_t t = threadIdx.x; t < count; t += blockDim.x) {
      const Cell<T> cell = cell_of(g, win, b, t, inv_two_var);
      z_part += cell.gauss * m[cell.q];
    }
    const T z = static_cast<T>(block_reduce(z_part, SumOp{}, Acc<T>(0), scratch) + static_cast<Acc<T>>(g.eps));
    const T inv_z = T(1) / z;
    if (dx_band) {
      for (int64_t t = threadIdx.x; t < count; t += blockDim.x) {
        const Cell<T> cell = cell_of(g, win, b, t, inv_two_var);
        dx_band[row * band.cells + band_cell(band, cell.dr, cell.dc)] = cell.gauss * m[cell.q] * inv_z;
      }
    }
    if (!dm_band && !ds) continue;  // uniform over the block: no thread skips a reduction

    const T* gy_o = gy + row * d;
    const T* y_o = y + row * d;
    Acc<T> gy_y_part = 0;
    for (int64_t k = threadIdx.x; k < d; k += blockDim.x) gy_y_part += Acc<T>(gy_o[k]) * Acc<T>(y_o[k]);
    const Acc<T> gy_dot_y = block_reduce(gy_y_part, SumOp{}, Acc<T>(0), scratch);

    // One warp per window cell (the loop bound is the same for every lane of a warp, so
    // the whole warp enters warp_reduce); lane 0 holds the results.
    Acc<T> ds_part = 0;
    for (int64_t t = warp; t < count; t += warps) {
      const Cell<T> cell = cell_of(g, win, b, t, inv_two_var);
      const T* x_q = x + cell.q * d;
      Acc<T> dot = 0;
      for (int64_t k = lane; k < d; k += kWarpSize) dot += Acc<T>(gy_o[k]) * Acc<T>(x_q[k]);
      dot = warp_reduce(dot, SumOp{});
      if (lane == 0) {
        const T a = static_cast<T>(dot - gy_dot_y) * inv_z;
        if (dm_band) dm_band[row * band.cells + band_cell(band, cell.dr, cell.dc)] = cell.gauss * a;
        ds_part += a * (cell.gauss * m[cell.q]) * T(cell.dr * cell.dr + cell.dc * cell.dc);
      }
    }
    const Acc<T> ds_sum = block_reduce(ds_part, SumOp{}, Acc<T>(0), scratch);
    if (ds && threadIdx.x == 0) ds[row] = isinf(s_o) ? T(0) : static_cast<T>(ds_sum) / (s_o * s_o * s_o);
  }
}

// The outputs along one axis whose window holds input position p, for windows reaching
// `before` cells before their centre and `after` after it (the CPU's outputs_covering):
// centres o * stride in [p - after, p + before], clipped to [0, outs). Empty when
// first > last.
struct OutputRange {
  int64_t first, last;
  __device__ int64_t size() const { return last >= first ? last - first + 1 : 0; }
};

__device__ inline OutputRange outputs_covering(int64_t p, int64_t before, int64_t after, int64_t stride,
                                               int64_t outs) {
  const int64_t lo = p - after, hi = p + before;
  return {lo <= 0 ? 0 : (lo + stride - 1) / stride, min(outs - 1, hi / stride)};
}

template <class T>
__global__ void backward_inputs_kernel(Geometry g, Band band, const T* __restrict__ gy,
                                       const T* __restrict__ dx_band, const T* __restrict__ dm_band,
                                       T* __restrict__ dx, T* __restrict__ dm) {
  __shared__ Acc<T> scratch[kWarpSize];
  const int64_t inputs = g.height * g.width, cells = g.batch * inputs, d = g.channels;
  for (int64_t cell_index = blockIdx.x; cell_index < cells; cell_index += gridDim.x) {
    const int64_t b = cell_index / inputs, q = cell_index % inputs, r = q / g.width, c = q % g.width;
    // A causal window reaches no cell after its centre, so only centres at or right of q see q.
    const OutputRange rows = outputs_covering(r, band.half_rows, band.half_rows, g.stride, g.out_height);
    const OutputRange cols =
        outputs_covering(c, band.half_cols, band.causal ? 0 : band.half_cols, g.stride, g.out_width);
    // Covering output (oi, oj): its row of gy / the bands, and the entry of its band that holds q.
    struct Entry {
      int64_t out_row, band_index;
    };
    auto entry = [&](int64_t oi, int64_t oj) {
      const int64_t out_row = (b * g.out_height + oi) * g.out_width + oj;
      return Entry{out_row, out_row * band.cells + band_cell(band, r - oi * g.stride, c - oj * g.stride)};
    };
    if (dx) {
      // Threads over channels, each walking every covering output.
      for (int64_t k = threadIdx.x; k < d; k += blockDim.x) {
        Acc<T> acc = 0;
        for (int64_t oi = rows.first; oi <= rows.last; ++oi) {
          for (int64_t oj = cols.first; oj <= cols.last; ++oj) {
            const Entry e = entry(oi, oj);
            acc += dx_band[e.band_index] * gy[e.out_row * d + k];
          }
        }
        dx[cell_index * d + k] = static_cast<T>(acc);
      }
    }
    if (dm) {  // uniform over the block
      // Threads over the covering outputs, numbered row-major over rows x cols.
      const int64_t covering = rows.size() * cols.size();
      Acc<T> part = 0;
      for (int64_t t = threadIdx.x; t < covering; t += blockDim.x) {
        part += dm_band[entry(rows.first + t / cols.size(), cols.first + t % cols.size()).band_index];
      }
      const Acc<T> total = block_reduce(part, SumOp{}, Acc<T>(0), scratch);
      if (threadIdx.x == 0) dm[cell_index] = static_cast<T>(total);
    }
  }
}

// Threads for a block that spreads `channels` over its threads: a whole number of warps,
// at least 2 (the forward's weight tiles and the reductions want some width), at most
// kThreadsPerBlock (the forward's shared tile size).
int threads_for_channels(int64_t channels) {
  const int64_t warps = (channels + kWarpSize - 1) / kWarpSize;
  return static_cast<int>(std::clamp<int64_t>(warps, 2, kThreadsPerBlock / kWarpSize) * kWarpSize);
}

// One block per row, block-stride beyond the grid cap.
unsigned blocks_for_rows(int64_t rows) { return static_cast<unsigned>(std::clamp<int64_t>(rows, 1, kMaxBlocks)); }

template <class T>
void zero(T* p, int64_t count, cudaStream_t s) {
  if (p && count > 0) KILN_CUDA_CHECK(cudaMemsetAsync(p, 0, sizeof(T) * count, s));
}

}  // namespace

template <class T>
void context_pool_forward(const Geometry& g, const T* x, const T* m, const T* s, T* y, int device) {
  const int64_t rows = g.batch * g.outputs();
  if (rows == 0 || g.channels == 0) return;
  forward_kernel<T><<<blocks_for_rows(rows), threads_for_channels(g.channels), 0, stream(device)>>>(
      g, context_pool_band(g), x, m, s, y);
  KILN_CUDA_LAUNCH_CHECK();
}

template <class T>
void context_pool_backward(const Geometry& g, const T* x, const T* m, const T* s, const T* y, const T* gy, T* dx,
                           T* dm, T* ds, T* dx_band, T* dm_band, int device) {
  const Band band = context_pool_band(g);
  const int64_t out_rows = g.batch * g.outputs(), in_cells = g.batch * g.inputs();
  cudaStream_t stream_ = stream(device);
  if (out_rows == 0) {  // no output: nothing depends on the inputs
    zero(dx, in_cells * g.channels, stream_);
    zero(dm, in_cells, stream_);
    return;
  }
  // Band cells outside the grid are never written nor read, so no initialisation.
  backward_outputs_kernel<T><<<blocks_for_rows(out_rows), kThreadsPerBlock, 0, stream_>>>(
      g, band, x, m, s, y, gy, dx ? dx_band : nullptr, dm ? dm_band : nullptr, ds);
  KILN_CUDA_LAUNCH_CHECK();
  if ((!dx && !dm) || in_cells == 0) return;
  backward_inputs_kernel<T><<<blocks_for_rows(in_cells), threads_for_channels(g.channels), 0, stream_>>>(
      g, band, gy, dx_band, dm_band, dx, dm);
  KILN_CUDA_LAUNCH_CHECK();
}

#define KILN_INSTANTIATE_CUDA_CONTEXT_POOL(T)                                                                    \
  template void context_pool_forward<T>(const Geometry&, const T*, const T*, const T*, T*, int);                \
  template void context_pool_backward<T>(const Geometry&, const T*, const T*, const T*, const T*, const T*, T*, \
                                         T*, T*, T*, T*, int);
KILN_INSTANTIATE_CUDA_CONTEXT_POOL(float)
KILN_INSTANTIATE_CUDA_CONTEXT_POOL(double)
#undef KILN_INSTANTIATE_CUDA_CONTEXT_POOL

}  // namespace kiln::cuda
