// Layer norm kernels (see layer_norm.h for the mapping of threads to work).
#include "kiln/cuda/layer_norm.h"

#include "kiln/cuda/softmax.cuh"

namespace kiln::cuda {

namespace {

using softmax_detail::team_blocks;
using softmax_detail::team_sum;
using softmax_detail::Team;
using softmax_detail::kWarpRowLimit;

// A team (warp or block) per row: the mean, the mean of squared deviations, then
// y = (x - mean) * rstd * weight + bias. Lane 0 saves mean and rstd for the backward.
template <bool kWarpTeams, class T>
__global__ void layer_norm_forward_kernel(const T* __restrict__ x, const T* __restrict__ weight,
                                          const T* __restrict__ bias, T* __restrict__ y, T* __restrict__ mean,
                                          T* __restrict__ rstd, int64_t rows, int64_t n, double eps) {
  using A = Acc<T>;
  __shared__ A scratch[kWarpSize];
  const Team<kWarpTeams> team;
  for (int64_t row = team.first; row < rows; row += team.count) {
    const T* xr = x + row * n;
    A sum = 0;
    for (int64_t j = team.lane; j < n; j += team.size) sum += A(xr[j]);
    const A mu = team_sum<kWarpTeams>(sum, scratch) / A(n);
    A squares = 0;
    for (int64_t j = team.lane; j < n; j += team.size) {
      const A d = A(xr[j]) - mu;
      squares += d * d;
    }
    const A rs = A(1) / sqrt(team_sum<kWarpTeams>(squares, scratch) / A(n) + A(eps));
    if (team.lane == 0) mean[row] = T(mu), rstd[row] = T(rs);
    T* yr = y + row * n;
    for (int64_t j = team.lane; j < n; j += team.size) yr[j] = T((A(xr[j]) - mu) * rs * A(weight[j]) + A(bias[j]));
  }
}

// dx of each row, a team per row: two row sums, then one write.
template <bool kWarpTeams, class T>
__global__ void layer_norm_dx_kernel(const T* __restrict__ x, const T* __restrict__ mean, const T* __restrict__ rstd,
                                     const T* __restrict__ weight, const T* __restrict__ g, T* __restrict__ dx,
                                     int64_t rows, int64_t n) {
  using A = Acc<T>;
  __shared__ A scratch[kWarpSize];
  const Team<kWarpTeams> team;
  for (int64_t row = team.first; row < rows; row += team.count) {
    const int64_t base = row * n;
    const A mu = mean[row], rs = rstd[row];
    A sum_gw = 0, sum_gw_xhat = 0;
    for (int64_t j = team.lane; j < n; j += team.size) {
      const A gw = A(g[base + j]) * A(weight[j]);
      sum_gw += gw;
      sum_gw_xhat += gw * (A(x[base + j]) - mu) * rs;
    }
    const A mean_gw = team_sum<kWarpTeams>(sum_gw, scratch) / A(n);
    const A mean_gw_xhat = team_sum<kWarpTeams>(sum_gw_xhat, scratch) / A(n);
    for (int64_t j = team.lane; j < n; j += team.size) {
      const A xhat = (A(x[base + j]) - mu) * rs;
      dx[base + j] = T(rs * (A(g[base + j]) * A(weight[j]) - mean_gw - xhat * mean_gw_xhat));
    }
  }
}

// Partial dweight/dbias: thread (column j, chunk blockIdx.y) sums g * xhat and g over the
// chunk's rows into partial_w/partial_b[chunk * n + j]. Threads of a warp take
// neighbouring columns, so each row step is a coalesced load.
template <class T>
__global__ void layer_norm_param_partials_kernel(const T* __restrict__ x, const T* __restrict__ mean,
                                                 const T* __restrict__ rstd, const T* __restrict__ g,
                                                 T* __restrict__ partial_w, T* __restrict__ partial_b, int64_t rows,
                                                 int64_t n, int64_t rows_per_chunk) {
  using A = Acc<T>;
  const int64_t chunk = blockIdx.y;
  const int64_t begin = chunk * rows_per_chunk, end = std::min(rows, begin + rows_per_chunk);
  for (int64_t j = global_thread(); j < n; j += grid_stride()) {
    A w = 0, b = 0;
    for (int64_t r = begin; r < end; ++r) {
      const A gr = g[r * n + j];
      w += gr * (A(x[r * n + j]) - A(mean[r])) * A(rstd[r]);
      b += gr;
    }
    partial_w[chunk * n + j] = T(w);
    partial_b[chunk * n + j] = T(b);
  }
}

// dweight[j], dbias[j] = the sums of column j's chunk partials, in chunk order.
template <class T>
__global__ void layer_norm_param_sums_kernel(const T* __restrict__ partial_w, const T* __restrict__ partial_b,
                                             T* __restrict__ dweight, T* __restrict__ dbias, int64_t chunks,
                                             int64_t n) {
  using A = Acc<T>;
  for (int64_t j = global_thread(); j < n; j += grid_stride()) {
    A w = 0, b = 0;
    for (int64_t k = 0; k < chunks; ++k) w += A(partial_w[k * n + j]), b += A(partial_b[k * n + j]);
    if (dweight) dweight[j] = T(w);
    if (dbias) dbias[j] = T(b);
  }
}

}  // namespace

template <class T>
void layer_norm_forward(const T* x, const T* weight, const T* bias, T* y, T* mean, T* rstd, int64_t rows, int64_t n,
                        double eps, int device) {
  if (rows == 0) return;  // rows > 0 implies n > 0: the op sets rows = 0 when n is
  cudaStream_t s = stream(device);
  const bool warp_teams = n <= kWarpRowLimit;
  if (warp_teams) {
    layer_norm_forward_kernel<true>
        <<<team_blocks(rows, true), kThreadsPerBlock, 0, s>>>(x, weight, bias, y, mean, rstd, rows, n, eps);
  } else {
    layer_norm_forward_kernel<false>
        <<<team_blocks(rows, false), kThreadsPerBlock, 0, s>>>(x, weight, bias, y, mean, rstd, rows, n, eps);
  }
  KILN_CUDA_LAUNCH_CHECK();
}

template <class T>
void layer_norm_backward(const T* x, const T* mean, const T* rstd, const T* weight, const T* g, T* dx, T* dweight,
                         T* dbias, int64_t rows, int64_t n, T* workspace, int device) {
  if (n == 0) return;
  cudaStream_t s = stream(device);
  if (dx && rows > 0) {
    if (n <= kWarpRowLimit) {
      layer_norm_dx_kernel<true><<<team_blocks(rows, true), kThreadsPerBlock, 0, s>>>(x, mean, rstd, weight, g, dx,
                                                                                       rows, n);
    } else {
      layer_norm_dx_kernel<false><<<team_blocks(rows, false), kThreadsPerBlock, 0, s>>>(x, mean, rstd, weight, g,
                                                                                         dx, rows, n);
    }
    KILN_CUDA_LAUNCH_CHECK();
  }
  if (!dweight && !dbias) return;
  // With rows == 0 each chunk is empty and the sums are 0, as on the CPU.
  const int64_t chunks = layer_norm_row_chunks(rows, n);
  const int64_t rows_per_chunk = (rows + chunks - 1) / chunks;
  T* partial_w = workspace;
  T* partial_b = workspace + chunks * n;
  const dim3 grid(blocks_for(n), static_cast<unsigned>(chunks));
  layer_norm_param_partials_kernel<<<grid, kThreadsPerBlock, 0, s>>>(x, mean, rstd, g, partial_w, partial_b, rows, n,
                                                                     rows_per_chunk);
  KILN_CUDA_LAUNCH_CHECK();
  layer_norm_param_sums_kernel<<<blocks_for(n), kThreadsPerBlock, 0, s>>>(partial_w, partial_b, dweight, dbias,
                                                                          chunks, n);
  KILN_CUDA_LAUNCH_CHECK();
}

#define KILN_INSTANTIATE_LAYER_NORM(T)                                                                     \
  template void layer_norm_forward<T>(const T*, const T*, const T*, T*, T*, T*, int64_t, int64_t, double, int); \
  template void layer_norm_backward<T>(const T*, const T*, const T*, const T*, const T*, T*, T*, T*, int64_t,   \
                                       int64_t, T*, int);
KILN_INSTANTIATE_LAYER_NORM(float)
KILN_INSTANTIATE_LAYER_NORM(double)
#undef KILN_INSTANTIATE_LAYER_NORM

}  // namespace kiln::cuda
