// Reduction kernels (see reduce.h for the plan). Each reduction is a fold, a small struct:
//   identity()           the empty accumulator
//   load(x, c, r)        element x (r-th of its output's reduced range) as an accumulator;
//                        c is the output's center (the mean for var, the max for
//                        logsumexp, 0 where unused)
//   combine(a, b)        associative and commutative (the trees below rely on both)
//   store(sink, at, a, c)   writes the finished output `at`
// and two kernels, rows_kernel and columns_kernel, run any fold.
#include "kiln/cuda/reduce.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "kiln/cuda/launch.cuh"

namespace kiln::cuda {

namespace {

// The accumulator of a sum: float for f32, double for f64, int64 for i64 (Acc<T> is
// float for every non-double type, which would lose i64 counts).
template <class T>
using SumAcc = std::conditional_t<std::is_same_v<T, int64_t>, int64_t, Acc<T>>;

template <class T>
__device__ bool is_nan(T x) {
  if constexpr (std::is_floating_point_v<T>) return x != x;
  else return false;
}

// NaN-propagating max (take_max) or min, as the CPU's extremum_of.
template <bool kMax, class T>
__device__ T extremum_of(T a, T x) {
  if (is_nan(a)) return a;
  if (is_nan(x)) return x;
  return (kMax ? x > a : x < a) ? x : a;
}

template <bool kMax, class T>
__device__ T extremum_identity() {
  using L = std::numeric_limits<T>;
  if constexpr (std::is_floating_point_v<T>) return kMax ? -L::infinity() : L::infinity();
  else return kMax ? L::lowest() : L::max();
}

// Every fold reads T elements and centers and writes T outputs unless it says otherwise.
template <class T, class A>
struct FoldTypes {
  using In = T;
  using Center = T;
  using Acc = A;
  using Sink = T*;
};

template <class T>
struct SumFold : FoldTypes<T, SumAcc<T>> {
  using A = SumAcc<T>;
  double scale = 1;  // the mean: scale = 1 / count
  __device__ A identity() const { return A(0); }
  __device__ A load(T x, T, int64_t) const { return A(x); }
  __device__ A combine(A a, A b) const { return a + b; }
  __device__ void store(T* out, int64_t at, A a, T) const {
    if constexpr (std::is_floating_point_v<T>) out[at] = scale == 1 ? T(a) : T(a * A(scale));
    else out[at] = T(a);
  }
};

template <class T>
struct SquaredDeviationFold : FoldTypes<T, Acc<T>> {  // centered on the mean
  using A = Acc<T>;
  double dof;
  bool take_sqrt;
  __device__ A identity() const { return A(0); }
  __device__ A load(T x, T mean, int64_t) const {
    const A d = A(x) - A(mean);
    return d * d;
  }
  __device__ A combine(A a, A b) const { return a + b; }
  __device__ void store(T* out, int64_t at, A a, T) const {
    const A v = a / A(dof);
    out[at] = T(take_sqrt ? sqrt(v) : v);
  }
};

template <class T>
struct ExpSumFold : FoldTypes<T, Acc<T>> {  // logsumexp, centered on the max m
  using A = Acc<T>;
  __device__ A identity() const { return A(0); }
  __device__ A load(T x, T m, int64_t) const { return exp(A(x) - A(m)); }
  __device__ A combine(A a, A b) const { return a + b; }
  // A non-finite max is the answer itself: -inf (all -inf or empty), +inf, or NaN.
  __device__ void store(T* out, int64_t at, A a, T m) const { out[at] = isfinite(m) ? T(A(m) + log(a)) : m; }
};

// sum |x|^p, finished as (...)^(1/p); p = 1 and 2 get exact, faster forms.
template <class T>
struct PowSumFold : FoldTypes<T, Acc<T>> {
  using A = Acc<T>;
  double p;
  __device__ A identity() const { return A(0); }
  __device__ A load(T x, T, int64_t) const {
    const A v = fabs(A(x));
    return p == 1 ? v : p == 2 ? v * v : pow(v, A(p));
  }
  __device__ A combine(A a, A b) const { return a + b; }
  __device__ void store(T* out, int64_t at, A a, T) const {
    out[at] = T(p == 1 ? a : p == 2 ? sqrt(a) : pow(a, A(1.0 / p)));
  }
};

// max (kMax) or min; `magnitude` folds |x| instead (the infinity norm, identity 0).
template <bool kMax, class T>
struct ExtremumFold : FoldTypes<T, T> {
  bool magnitude = false;
  __device__ T identity() const { return magnitude ? T(0) : extremum_identity<kMax, T>(); }
  __device__ T load(T x, T, int64_t) const {
    if constexpr (std::is_floating_point_v<T>) return magnitude ? T(fabs(x)) : x;
    else return x;
  }
  __device__ T combine(T a, T b) const { return extremum_of<kMax>(a, b); }
  __device__ void store(T* out, int64_t at, T a, T) const { out[at] = a; }
};

// A value and where it was found (an index into the output's reduced range).
template <class T>
struct ValueIndex {
  T value;
  int64_t index;
};

template <class T>
struct ValuesAndIndices {
  T* values;
  int64_t* indices;  // may be null
};

// max/min with the index of its first occurrence; NaN beats every number and the
// earliest NaN wins. Symmetric in its arguments, as the trees need.
template <bool kMax, class T>
struct ArgExtremumFold {
  using In = T;
  using Center = T;
  using Acc = ValueIndex<T>;
  using Sink = ValuesAndIndices<T>;
  __device__ Acc identity() const { return {extremum_identity<kMax, T>(), std::numeric_limits<int64_t>::max()}; }
  __device__ Acc load(T x, T, int64_t r) const { return {x, r}; }
  __device__ Acc combine(Acc a, Acc b) const {
    const bool a_nan = is_nan(a.value), b_nan = is_nan(b.value);
    if (a_nan != b_nan) return a_nan ? a : b;
    const bool tie = a_nan || a.value == b.value;
    if (tie) return a.index <= b.index ? a : b;
    return (kMax ? a.value > b.value : a.value < b.value) ? a : b;
  }
  __device__ void store(Sink out, int64_t at, Acc a, T) const {
    out.values[at] = a.value;
    if (out.indices) out.indices[at] = a.index;
  }
};

// How many elements of each output equal its center (the output's max/min key), NaN
// matching NaN: the ties a max's gradient is shared among.
template <class T>
struct TieCountFold : FoldTypes<T, int64_t> {
  using Sink = int64_t*;
  bool magnitude;
  __device__ int64_t identity() const { return 0; }
  __device__ int64_t load(T x, T top, int64_t) const {
    const T key = magnitude ? T(fabs(x)) : x;
    return (key == top || (is_nan(key) && is_nan(top))) ? 1 : 0;
  }
  __device__ int64_t combine(int64_t a, int64_t b) const { return a + b; }
  __device__ void store(int64_t* out, int64_t at, int64_t a, T) const { out[at] = a; }
};

// First pass of a split reduction: keep the raw accumulator of each (output, chunk).
template <class Fold>
struct ToPartials : Fold {
  using Sink = typename Fold::Acc*;
  __device__ void store(Sink out, int64_t at, typename Fold::Acc a, typename Fold::Center) const { out[at] = a; }
};

// Second pass: the elements are the first pass's accumulators.
template <class Fold>
struct FromPartials : Fold {
  using In = typename Fold::Acc;
  __device__ In load(In a, typename Fold::Center, int64_t) const { return a; }
};

// ---- combining across a warp and a block ---------------------------------------------------------
// launch.cuh's warp_reduce shuffles one scalar; the argmax accumulator is a pair, so the
// folds get their own shuffle.

template <class V>
__device__ V shuffle_xor(V v, int lane_mask) {
  return __shfl_xor_sync(0xffffffffu, v, lane_mask);
}
template <class T>
__device__ ValueIndex<T> shuffle_xor(ValueIndex<T> v, int lane_mask) {
  return {shuffle_xor(v.value, lane_mask), shuffle_xor(v.index, lane_mask)};
}

// Every lane gets the fold of the warp's 32 accumulators.
template <class Fold, class A>
__device__ A warp_fold(A v, const Fold& fold) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) v = fold.combine(v, shuffle_xor(v, offset));
  return v;
}

// Every thread gets the fold of the block's accumulators (blockDim.x a multiple of 32).
// Every thread must call it; it may be called again right after.
template <class Fold, class A>
__device__ A block_fold(A v, const Fold& fold, A* scratch /* [kWarpSize] */) {
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int warps = blockDim.x / kWarpSize;
  v = warp_fold(v, fold);
  __syncthreads();  // a previous call may still be reading scratch
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : fold.identity();
  return warp_fold(v, fold);
}

// ---- the two kernels ---------------------------------------------------------------------------
// Work items are (output, chunk) pairs: item (s, k, i) folds the reduced indices
// [k * chunk_len, min(reduced, (k + 1) * chunk_len)) of output (s, i) and stores at
// (s * chunks + k) * inner + i; without a split, chunks = 1 and that is output s * inner + i.
// The center is per output: center[s * inner + i].

// inner == 1: a team (one warp, or the whole block) per item, lanes striding the item's
// range, then a warp or block fold; lane 0 stores. Teams loop over items, so any count
// fits the grid; a team's loop bounds are uniform across it, as the folds' syncs need.
template <bool kWarpTeams, class Fold>
__global__ void rows_kernel(const typename Fold::In* __restrict__ in, typename Fold::Sink sink,
                            const typename Fold::Center* __restrict__ center, ReduceGeometry g, int64_t chunks,
                            int64_t chunk_len, Fold fold) {
  using A = typename Fold::Acc;
  using C = typename Fold::Center;
  __shared__ A scratch[kWarpSize];
  const int team_size = kWarpTeams ? kWarpSize : blockDim.x;
  const int lane = threadIdx.x % team_size;
  const int64_t first_team = kWarpTeams ? global_thread() / kWarpSize : blockIdx.x;
  const int64_t teams = kWarpTeams ? grid_stride() / kWarpSize : gridDim.x;
  const int64_t items = g.slices() * chunks, reduced = g.reduced();
  for (int64_t item = first_team; item < items; item += teams) {
    const int64_t s = item / chunks, k = item % chunks;
    const int64_t begin = k * chunk_len, end = std::min(reduced, begin + chunk_len);
    const C c = center ? center[s] : C(0);
    const typename Fold::In* base = in + g.slice_start(s);
    A acc = fold.identity();
    for (int64_t r = begin + lane; r < end; r += team_size)
      acc = fold.combine(acc, fold.load(base[g.reduced_offset(r)], c, r));
    if constexpr (kWarpTeams) acc = warp_fold(acc, fold);
    else acc = block_fold(acc, fold, scratch);
    if (lane == 0) fold.store(sink, item, acc, c);
  }
}

// inner > 1: one thread per item, walking its range row by row; threads of a warp take
// neighbouring columns i, so each step is one coalesced load.
template <class Fold>
__global__ void columns_kernel(const typename Fold::In* __restrict__ in, typename Fold::Sink sink,
                               const typename Fold::Center* __restrict__ center, ReduceGeometry g, int64_t chunks,
                               int64_t chunk_len, Fold fold) {
  using C = typename Fold::Center;
  const int64_t items = g.slices() * chunks * g.inner, reduced = g.reduced();
  for (int64_t item = global_thread(); item < items; item += grid_stride()) {
    const int64_t i = item % g.inner, sk = item / g.inner;
    const int64_t s = sk / chunks, k = sk % chunks;
    const int64_t begin = k * chunk_len, end = std::min(reduced, begin + chunk_len);
    const C c = center ? center[s * g.inner + i] : C(0);
    auto acc = fold.identity();
    if (begin < end) {
      // (ra, rb) of r, stepped incrementally: no division per element.
      int64_t ra = begin / g.Rb, rb = begin % g.Rb;
      const int64_t column = g.slice_start(s) + i;
      int64_t at = column + ra * g.run_stride() + rb * g.inner;
      for (int64_t r = begin; r < end; ++r) {
        acc = fold.combine(acc, fold.load(in[at], c, r));
        at += g.inner;
        if (++rb == g.Rb) rb = 0, ++ra, at = column + ra * g.run_stride();
      }
    }
    fold.store(sink, item, acc, c);
  }
}

// One launch of `fold` over every item of (g, chunks, chunk_len).
template <class Fold>
void launch_fold(const Fold& fold, const typename Fold::In* in, typename Fold::Sink sink,
                 const typename Fold::Center* center, const ReduceGeometry& g, int64_t chunks, int64_t chunk_len,
                 cudaStream_t stream) {
  const int64_t items = g.slices() * chunks;
  if (items == 0 || g.inner == 0) return;
  if (g.inner > 1) {
    columns_kernel<<<blocks_for(items * g.inner), kThreadsPerBlock, 0, stream>>>(in, sink, center, g, chunks,
                                                                                  chunk_len, fold);
  } else if (chunk_len <= 1024) {  // a warp per item: at most 32 elements per lane
    constexpr int kWarpsPerBlock = kThreadsPerBlock / kWarpSize;
    const int64_t warp_blocks = (items + kWarpsPerBlock - 1) / kWarpsPerBlock;
    const auto blocks = static_cast<unsigned>(std::min<int64_t>(warp_blocks, kMaxBlocks));
    rows_kernel<true><<<blocks, kThreadsPerBlock, 0, stream>>>(in, sink, center, g, chunks, chunk_len, fold);
  } else {
    const auto blocks = static_cast<unsigned>(std::min<int64_t>(items, kMaxBlocks));
    rows_kernel<false><<<blocks, kThreadsPerBlock, 0, stream>>>(in, sink, center, g, chunks, chunk_len, fold);
  }
  KILN_CUDA_LAUNCH_CHECK();
}

// Where a launcher's scratch lives inside the op's workspace (reduce_workspace_bytes).
struct Workspace {
  void* center;    // one value per output (8 bytes each)
  int64_t* count;  // one count per output
  void* partials;  // 16 bytes per (output, chunk)
};

Workspace carve(void* workspace, const ReduceGeometry& g) {
  auto* bytes = static_cast<char*>(workspace);
  const int64_t per_output = (g.outputs() * 8 + 255) / 256 * 256;
  return {bytes, reinterpret_cast<int64_t*>(bytes + per_output), bytes + 2 * per_output};
}

// Runs `fold` over g: one launch, or two (chunk partials, then their fold) when g has too
// few outputs to fill the GPU. `center` may be null.
template <class Fold>
void run_fold(const Fold& fold, const typename Fold::In* in, typename Fold::Sink sink,
              const typename Fold::Center* center, const ReduceGeometry& g, const Workspace& ws, cudaStream_t stream) {
  static_assert(sizeof(typename Fold::Acc) <= 16, "a partial must fit the workspace's 16 bytes");
  const int64_t reduced = g.reduced();
  int64_t chunks = reduce_chunks(g);
  if (chunks == 1) return launch_fold(fold, in, sink, center, g, 1, reduced, stream);
  const int64_t chunk_len = (reduced + chunks - 1) / chunks;
  chunks = (reduced + chunk_len - 1) / chunk_len;  // no empty trailing chunk
  auto* partials = static_cast<typename Fold::Acc*>(ws.partials);
  launch_fold(ToPartials<Fold>{fold}, in, partials, center, g, chunks, chunk_len, stream);
  // The partials are (slices, chunks, inner): fold the chunks away.
  ReduceGeometry over_chunks;
  over_chunks.outer = g.slices();
  over_chunks.Rb = chunks;
  over_chunks.inner = g.inner;
  launch_fold(FromPartials<Fold>{fold}, partials, sink, center, over_chunks, 1, chunks, stream);
}

// weight[e] = share of element e in its output's max: 1 / count if key(x) is the top key
// (NaN matching NaN), else 0; times sign(x) for magnitude. One thread per element
// (grid-stride), peeling e into (o, ra, m, rb, i) to find its output (o * mid + m, i).
template <class T>
__global__ void tie_weights_kernel(const T* __restrict__ in, T* __restrict__ weight, const T* __restrict__ top,
                                   const int64_t* __restrict__ count, ReduceGeometry g, bool magnitude) {
  const int64_t n = g.slices() * g.reduced() * g.inner;
  for (int64_t e = global_thread(); e < n; e += grid_stride()) {
    const int64_t i = e % g.inner;
    int64_t rest = e / g.inner / g.Rb;  // drop rb
    const int64_t m = rest % g.mid;
    rest /= g.mid;
    const int64_t o = rest / g.Ra;  // drop ra
    const int64_t out = (o * g.mid + m) * g.inner + i;
    const T x = in[e], key = magnitude ? T(fabs(x)) : x, t = top[out];
    const bool is_top = key == t || (is_nan(key) && is_nan(t));
    const T share = is_top ? T(1) / T(count[out]) : T(0);
    weight[e] = magnitude ? share * T((x > 0) - (x < 0)) : share;
  }
}

// mask[slice start + index * inner + i] = 1 for every output (s, i): one thread per output,
// each writing a different element.
template <class T>
__global__ void scatter_ones_kernel(const int64_t* __restrict__ index, T* __restrict__ mask, ReduceGeometry g) {
  const int64_t outputs = g.outputs();
  for (int64_t at = global_thread(); at < outputs; at += grid_stride()) {
    const int64_t s = at / g.inner, i = at % g.inner;
    mask[g.slice_start(s) + index[at] * g.inner + i] = T(1);
  }
}

}  // namespace

// ---- launchers -------------------------------------------------------------------------------

template <class T>
void sum_reduce(const T* in, T* out, const ReduceGeometry& g, void* workspace, int device) {
  run_fold(SumFold<T>{}, in, out, nullptr, g, carve(workspace, g), stream(device));
}

template <class T>
void variance_reduce(const T* in, T* out, const ReduceGeometry& g, double dof, bool take_sqrt, void* workspace,
                     int device) {
  cudaStream_t s = stream(device);
  const Workspace ws = carve(workspace, g);
  T* mean = static_cast<T*>(ws.center);
  SumFold<T> mean_fold;
  mean_fold.scale = 1.0 / static_cast<double>(g.reduced());
  run_fold(mean_fold, in, mean, nullptr, g, ws, s);
  SquaredDeviationFold<T> deviations;
  deviations.dof = dof;
  deviations.take_sqrt = take_sqrt;
  run_fold(deviations, in, out, mean, g, ws, s);
}

template <class T>
void logsumexp_reduce(const T* in, T* out, const ReduceGeometry& g, void* workspace, int device) {
  cudaStream_t s = stream(device);
  const Workspace ws = carve(workspace, g);
  T* max = static_cast<T*>(ws.center);
  run_fold(ExtremumFold<true, T>{}, in, max, nullptr, g, ws, s);
  run_fold(ExpSumFold<T>{}, in, out, max, g, ws, s);
}

template <class T>
void norm_reduce(const T* in, T* out, const ReduceGeometry& g, double p, void* workspace, int device) {
  cudaStream_t s = stream(device);
  const Workspace ws = carve(workspace, g);
  if (std::isinf(p)) {
    ExtremumFold<true, T> largest_magnitude;
    largest_magnitude.magnitude = true;
    run_fold(largest_magnitude, in, out, nullptr, g, ws, s);
    return;
  }
  PowSumFold<T> fold;
  fold.p = p;
  run_fold(fold, in, out, nullptr, g, ws, s);
}

template <class T>
void extremum_reduce(const T* in, T* values, int64_t* indices, const ReduceGeometry& g, bool take_max,
                     void* workspace, int device) {
  cudaStream_t s = stream(device);
  const Workspace ws = carve(workspace, g);
  if (indices) {
    const ValuesAndIndices<T> sink{values, indices};
    if (take_max) run_fold(ArgExtremumFold<true, T>{}, in, sink, nullptr, g, ws, s);
    else run_fold(ArgExtremumFold<false, T>{}, in, sink, nullptr, g, ws, s);
  } else if (take_max) {
    run_fold(ExtremumFold<true, T>{}, in, values, nullptr, g, ws, s);
  } else {
    run_fold(ExtremumFold<false, T>{}, in, values, nullptr, g, ws, s);
  }
}

template <class T>
void scatter_ones(const int64_t* index, T* mask, const ReduceGeometry& g, int device) {
  if (g.outputs() == 0) return;
  scatter_ones_kernel<<<blocks_for(g.outputs()), kThreadsPerBlock, 0, stream(device)>>>(index, mask, g);
  KILN_CUDA_LAUNCH_CHECK();
}

template <class T>
void tie_weights(const T* in, T* weight, const ReduceGeometry& g, bool take_max, bool magnitude, void* workspace,
                 int device) {
  const int64_t n = g.outputs() * g.reduced();
  if (n == 0) return;  // no elements, no weights
  cudaStream_t s = stream(device);
  const Workspace ws = carve(workspace, g);
  T* top = static_cast<T*>(ws.center);
  ExtremumFold<true, T> largest;
  largest.magnitude = magnitude;
  if (take_max) run_fold(largest, in, top, nullptr, g, ws, s);
  else run_fold(ExtremumFold<false, T>{}, in, top, nullptr, g, ws, s);
  TieCountFold<T> ties;
  ties.magnitude = magnitude;
  run_fold(ties, in, ws.count, top, g, ws, s);
  tie_weights_kernel<<<blocks_for(n), kThreadsPerBlock, 0, s>>>(in, weight, top, ws.count, g, magnitude);
  KILN_CUDA_LAUNCH_CHECK();
}

#define KILN_INSTANTIATE_REDUCE(T)                                                                            \
  template void sum_reduce<T>(const T*, T*, const ReduceGeometry&, void*, int);                                \
  template void extremum_reduce<T>(const T*, T*, int64_t*, const ReduceGeometry&, bool, void*, int);
#define KILN_INSTANTIATE_REDUCE_FLOATING(T)                                                                   \
  template void variance_reduce<T>(const T*, T*, const ReduceGeometry&, double, bool, void*, int);            \
  template void logsumexp_reduce<T>(const T*, T*, const ReduceGeometry&, void*, int);                         \
  template void norm_reduce<T>(const T*, T*, const ReduceGeometry&, double, void*, int);                      \
  template void scatter_ones<T>(const int64_t*, T*, const ReduceGeometry&, int);                              \
  template void tie_weights<T>(const T*, T*, const ReduceGeometry&, bool, bool, void*, int);
KILN_INSTANTIATE_REDUCE(float)
KILN_INSTANTIATE_REDUCE(double)
KILN_INSTANTIATE_REDUCE(int64_t)
KILN_INSTANTIATE_REDUCE_FLOATING(float)
KILN_INSTANTIATE_REDUCE_FLOATING(double)
#undef KILN_INSTANTIATE_REDUCE
#undef KILN_INSTANTIATE_REDUCE_FLOATING

}  // namespace kiln::cuda
