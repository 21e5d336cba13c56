// The elementwise kernels behind cuda::map (cuda/map.h), as templates: the files
// map_unary.cu, map_binary.cu and map_cast.cu instantiate them for the functors of
// ops/functors.h (split in three so nvcc compiles them in parallel).
//
// Three kernels, from fastest to most general; the launcher picks the first that fits:
//   map_vectorized_kernel  every operand one contiguous run, 16-byte aligned: each thread
//                          loads V elements per operand at once (float4-style);
//   map_1d_kernel          one merged dim, any strides (a broadcast scalar has stride 0);
//   map_nd_kernel          up to kMaxDims merged dims: each thread peels its linear index
//                          into coordinates, in 32-bit arithmetic when the offsets fit.
// All are grid-stride loops with one thread per element (per V elements when vectorised).
#pragma once

#include <climits>
#include <utility>

#include "kiln/core/error.h"
#include "kiln/cuda/launch.cuh"
#include "kiln/cuda/map.h"
#include "kiln/ops/layout.h"

namespace kiln::cuda {

namespace map_detail {

constexpr int kMaxDims = 8;

// ---- vectorised: V elements of each operand per 16-byte load ----------------------------

template <class T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

// Elements per load: 16 bytes of the widest operand.
template <class Out, class... In>
constexpr int vector_width() {
  size_t widest = sizeof(Out);
  ((widest = sizeof(In) > widest ? sizeof(In) : widest), ...);
  return widest >= 16 ? 1 : static_cast<int>(16 / widest);
}

template <int V, class F, class Out, class... P>
__device__ void apply_packs(const F& f, Pack<Out, V>& out, const P&... in) {
#pragma unroll
  for (int k = 0; k < V; ++k) out.v[k] = static_cast<Out>(f(in.v[k]...));
}

template <int V, class F, class Out, class... In>
// No __restrict__: in-place updates (Tensor::add_) pass the output as an input too.
__global__ void map_vectorized_kernel(F f, Out* out, int64_t n, const In*... in) {
  const int64_t packs = n / V;
  for (int64_t p = global_thread(); p < packs; p += grid_stride()) {
    Pack<Out, V> result;
    apply_packs<V>(f, result, reinterpret_cast<const Pack<In, V>*>(in)[p]...);
    reinterpret_cast<Pack<Out, V>*>(out)[p] = result;
  }
  // The last n % V elements, one per thread.
  for (int64_t i = packs * V + global_thread(); i < n; i += grid_stride()) out[i] = static_cast<Out>(f(in[i]...));
}

// ---- one dim, any strides ------------------------------------------------------------------

template <class T>
struct Ptr1d {
  const T* data;
  int64_t stride;
};

template <class F, class Out, class... In>
__global__ void map_1d_kernel(F f, Out* out, int64_t out_stride, int64_t n, Ptr1d<In>... in) {
  for (int64_t i = global_thread(); i < n; i += grid_stride())
    out[i * out_stride] = static_cast<Out>(f(in.data[i * in.stride]...));
}

// ---- N-d ---------------------------------------------------------------------------------

// The merged shape and the N operands' strides (operand 0 is the output), by value in
// the kernel's parameters.
template <int N, class Index>
struct Indexer {
  int ndim;
  Index shape[kMaxDims];
  Index strides[N][kMaxDims];

  __device__ void offsets(Index i, Index (&off)[N]) const {
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const Index coordinate = i % shape[d];
      i /= shape[d];
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] += coordinate * strides[k][d];
    }
  }
};

template <class F, class Index, size_t... K, class... In>
__device__ auto call_at(const F& f, const Index (&off)[sizeof...(In) + 1], std::index_sequence<K...>,
                        const In*... in) {
  return f(in[off[K + 1]]...);
}

template <class Index, class F, class Out, class... In>
__global__ void map_nd_kernel(F f, Out* out, Indexer<1 + sizeof...(In), Index> ix, int64_t n, const In*... in) {
  for (int64_t i = global_thread(); i < n; i += grid_stride()) {
    Index off[1 + sizeof...(In)];
    ix.offsets(static_cast<Index>(i), off);
    out[off[0]] = static_cast<Out>(call_at(f, off, std::index_sequence_for<In...>{}, in...));
  }
}

// ---- the launcher ----------------------------------------------------------------------------

inline bool aligned_to(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

template <size_t N>
bool fits_in_int32(const ops::MergedLayout<N>& layout) {
  for (size_t k = 0; k < N; ++k) {
    int64_t last = 0;  // offset of the last element
    for (size_t d = 0; d < layout.shape.size(); ++d) last += (layout.shape[d] - 1) * layout.strides[k][d];
    if (last > INT_MAX) return false;
  }
  int64_t n = 1;
  for (int64_t s : layout.shape) n *= s;
  return n <= INT_MAX;
}

template <class Index, size_t N>
Indexer<N, Index> make_indexer(const ops::MergedLayout<N>& layout) {
  Indexer<N, Index> ix{};
  ix.ndim = static_cast<int>(layout.shape.size());
  for (int d = 0; d < ix.ndim; ++d) {
    ix.shape[d] = static_cast<Index>(layout.shape[d]);
    for (size_t k = 0; k < N; ++k) ix.strides[k][d] = static_cast<Index>(layout.strides[k][d]);
  }
  return ix;
}

template <class F, class Out, class... In, size_t... K>
void launch(const F& f, Strided<Out> out, const std::vector<int64_t>& shape, int device,
            std::index_sequence<K...>, Strided<const In>... in) {
  constexpr size_t N = 1 + sizeof...(In);
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  if (n == 0) return;
  const ops::MergedLayout<N> layout(shape, {out.strides, in.strides...});
  cudaStream_t s = stream(device);

  if (layout.shape.size() == 1) {
    constexpr int V = vector_width<Out, In...>();
    bool contiguous = true;
    for (size_t k = 0; k < N; ++k) contiguous &= layout.strides[k][0] == 1;
    const bool aligned = aligned_to(out.data, sizeof(Out) * V) && (aligned_to(in.data, sizeof(In) * V) && ...);
    if (V > 1 && contiguous && aligned) {
      map_vectorized_kernel<V><<<blocks_for((n + V - 1) / V), kThreadsPerBlock, 0, s>>>(f, out.data, n, in.data...);
    } else {
      map_1d_kernel<<<blocks_for(n), kThreadsPerBlock, 0, s>>>(f, out.data, layout.strides[0][0], n,
                                                               Ptr1d<In>{in.data, layout.strides[K + 1][0]}...);
    }
  } else {
    KILN_CHECK(layout.shape.size() <= static_cast<size_t>(kMaxDims), "cuda elementwise: ", layout.shape.size(),
               " non-mergeable dims; at most ", kMaxDims, " are supported (make the operands contiguous first)");
    if (fits_in_int32(layout))
      map_nd_kernel<<<blocks_for(n), kThreadsPerBlock, 0, s>>>(f, out.data, make_indexer<int32_t>(layout), n,
                                                               in.data...);
    else
      map_nd_kernel<<<blocks_for(n), kThreadsPerBlock, 0, s>>>(f, out.data, make_indexer<int64_t>(layout), n,
                                                               in.data...);
  }
  KILN_CUDA_LAUNCH_CHECK();
}

}  // namespace map_detail

template <class F, class Out, class... In>
void map(const F& f, Strided<Out> out, const std::vector<int64_t>& shape, int device, Strided<const In>... in) {
  map_detail::launch(f, out, shape, device, std::index_sequence_for<In...>{}, in...);
}

}  // namespace kiln::cuda

// Explicit instantiations, one line per (functor, dtype group) of ops/functors.h's lists.
#define KILN_CUDA_FOR_FLOATING(M, F) M(F, float) M(F, double)
#define KILN_CUDA_FOR_NUMERIC(M, F) M(F, float) M(F, double) M(F, int64_t)
