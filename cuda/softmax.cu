// Softmax / log-softmax kernels, forward and backward (see softmax.h for the mapping of
// threads to rows). Arithmetic in Acc<T>.
#include "kiln/cuda/softmax.h"

#include "kiln/cuda/softmax.cuh"

namespace kiln::cuda {

namespace {

using namespace softmax_detail;

// What a forward kernel writes for element x of a row with max m and sum of exp(x - m) s.
template <bool kLog>
struct SoftmaxOutput {
  template <class A>
  __device__ A operator()(A x, A m, A s, bool nan_row) const {
    if (nan_row) return NAN;
    return kLog ? (x - m) - log(s) : exp(x - m) / s;
  }
};

// inner == 1: a team per contiguous row of n; pass 1 absorbs the row into (max, sum),
// pass 2 writes it.
template <bool kWarpTeams, bool kLog, class T>
__global__ void softmax_rows_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t rows, int64_t n) {
  using A = Acc<T>;
  __shared__ MaxSum<A> scratch[kWarpSize];
  const Team<kWarpTeams> team;
  for (int64_t row = team.first; row < rows; row += team.count) {
    const T* xr = x + row * n;
    T* yr = y + row * n;
    MaxSum<A> ms = empty_max_sum<A>();
    for (int64_t j = team.lane; j < n; j += team.size) ms = absorb(ms, A(xr[j]));
    ms = team_merge<kWarpTeams>(ms, scratch);
    const bool nan_row = is_nan_row(ms.max);
    const SoftmaxOutput<kLog> output;
    for (int64_t j = team.lane; j < n; j += team.size) yr[j] = T(output(A(xr[j]), ms.max, ms.sum, nan_row));
  }
}

// inner > 1: a thread per column (o, i), elements n apart by `inner`.
template <bool kLog, class T>
__global__ void softmax_columns_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t outer, int64_t n,
                                       int64_t inner) {
  using A = Acc<T>;
  for (int64_t c = global_thread(); c < outer * inner; c += grid_stride()) {
    const int64_t start = (c / inner) * n * inner + c % inner;
    MaxSum<A> ms = empty_max_sum<A>();
    for (int64_t j = 0; j < n; ++j) ms = absorb(ms, A(x[start + j * inner]));
    const bool nan_row = is_nan_row(ms.max);
    for (int64_t j = 0; j < n; ++j) {
      const int64_t at = start + j * inner;
      y[at] = T(SoftmaxOutput<kLog>{}(A(x[at]), ms.max, ms.sum, nan_row));
    }
  }
}

// The backward of both: dx = y * (g - sum(g * y)) for softmax, g - exp(y) * sum(g) for
// log-softmax (y = log p). One reduction per row, then one write.
template <bool kLog>
struct SoftmaxGrad {
  template <class A>
  __device__ A term(A y, A g) const { return kLog ? g : g * y; }  // summed over the row
  template <class A>
  __device__ A dx(A y, A g, A total) const { return kLog ? g - exp(y) * total : y * (g - total); }
};

template <bool kWarpTeams, bool kLog, class T>
__global__ void softmax_backward_rows_kernel(const T* __restrict__ y, const T* __restrict__ g, T* __restrict__ dx,
                                             int64_t rows, int64_t n) {
  using A = Acc<T>;
  __shared__ A scratch[kWarpSize];
  const Team<kWarpTeams> team;
  const SoftmaxGrad<kLog> grad;
  for (int64_t row = team.first; row < rows; row += team.count) {
    const int64_t base = row * n;
    A total = 0;
    for (int64_t j = team.lane; j < n; j += team.size) total += grad.term(A(y[base + j]), A(g[base + j]));
    total = team_sum<kWarpTeams>(total, scratch);
    for (int64_t j = team.lane; j < n; j += team.size)
      dx[base + j] = T(grad.dx(A(y[base + j]), A(g[base + j]), total));
  }
}

template <bool kLog, class T>
__global__ void softmax_backward_columns_kernel(const T* __restrict__ y, const T* __restrict__ g,
                                                T* __restrict__ dx, int64_t outer, int64_t n, int64_t inner) {
  using A = Acc<T>;
  const SoftmaxGrad<kLog> grad;
  for (int64_t c = global_thread(); c < outer * inner; c += grid_stride()) {
    const int64_t start = (c / inner) * n * inner + c % inner;
    A total = 0;
    for (int64_t j = 0; j < n; ++j) total += grad.term(A(y[start + j * inner]), A(g[start + j * inner]));
    for (int64_t j = 0; j < n; ++j) {
      const int64_t at = start + j * inner;
      dx[at] = T(grad.dx(A(y[at]), A(g[at]), total));
    }
  }
}

template <bool kLog, class T>
void launch_forward(const T* x, T* y, int64_t outer, int64_t n, int64_t inner, int device) {
  if (outer * n * inner == 0) return;
  cudaStream_t s = stream(device);
  if (inner > 1) {
    softmax_columns_kernel<kLog><<<blocks_for(outer * inner), kThreadsPerBlock, 0, s>>>(x, y, outer, n, inner);
  } else if (n <= kWarpRowLimit) {
    softmax_rows_kernel<true, kLog><<<team_blocks(outer, true), kThreadsPerBlock, 0, s>>>(x, y, outer, n);
  } else {
    softmax_rows_kernel<false, kLog><<<team_blocks(outer, false), kThreadsPerBlock, 0, s>>>(x, y, outer, n);
  }
  KILN_CUDA_LAUNCH_CHECK();
}

template <bool kLog, class T>
void launch_backward(const T* y, const T* g, T* dx, int64_t outer, int64_t n, int64_t inner, int device) {
  if (outer * n * inner == 0) return;
  cudaStream_t s = stream(device);
  if (inner > 1) {
    softmax_backward_columns_kernel<kLog>
        <<<blocks_for(outer * inner), kThreadsPerBlock, 0, s>>>(y, g, dx, outer, n, inner);
  } else if (n <= kWarpRowLimit) {
    softmax_backward_rows_kernel<true, kLog><<<team_blocks(outer, true), kThreadsPerBlock, 0, s>>>(y, g, dx, outer, n);
  } else {
    softmax_backward_rows_kernel<false, kLog>
        <<<team_blocks(outer, false), kThreadsPerBlock, 0, s>>>(y, g, dx, outer, n);
  }
  KILN_CUDA_LAUNCH_CHECK();
}

}  // namespace

template <class T>
void softmax_forward(const T* x, T* y, int64_t outer, int64_t n, int64_t inner, int device) {
  launch_forward<false>(x, y, outer, n, inner, device);
}
template <class T>
void log_softmax_forward(const T* x, T* y, int64_t outer, int64_t n, int64_t inner, int device) {
  launch_forward<true>(x, y, outer, n, inner, device);
}
template <class T>
void softmax_backward(const T* y, const T* g, T* dx, int64_t outer, int64_t n, int64_t inner, int device) {
  launch_backward<false>(y, g, dx, outer, n, inner, device);
}
template <class T>
void log_softmax_backward(const T* y, const T* g, T* dx, int64_t outer, int64_t n, int64_t inner, int device) {
  launch_backward<true>(y, g, dx, outer, n, inner, device);
}

#define KILN_INSTANTIATE_SOFTMAX(T)                                                                   \
  template void softmax_forward<T>(const T*, T*, int64_t, int64_t, int64_t, int);                    \
  template void log_softmax_forward<T>(const T*, T*, int64_t, int64_t, int64_t, int);                \
  template void softmax_backward<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, int);         \
  template void log_softmax_backward<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, int);
KILN_INSTANTIATE_SOFTMAX(float)
KILN_INSTANTIATE_SOFTMAX(double)
#undef KILN_INSTANTIATE_SOFTMAX

}  // namespace kiln::cuda
