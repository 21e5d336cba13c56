// Reduction kernels on raw pointers.
//
// Every kernel reads a contiguous input viewed as (outer, Ra, mid, Rb, inner) and folds
// the Ra and Rb extents away, writing an (outer, mid, inner) output. Reduced dims that
// sit in one block (sum over the last dim, over dims {1, 2}, ...) have Ra = mid = 1;
// two blocks with kept dims between them (dims {0, 2} of a 3-D tensor, batch norm's
// {0, 2, 3}) use all five extents, so they too run in place, without a permuted copy.
//
// With inner == 1 each output folds contiguous runs of Rb elements ("rows"). With
// inner > 1 each output is a column with stride `inner`; the kernels then walk a block
// of up to kColumns neighbouring columns at once, row by row, so the innermost loop is
// unit-stride (it vectorises) and memory is read in order.
//
// Work is split into tasks of (output slice, column block); OpenMP runs them in parallel
// when the input has more than kParallelThreshold elements.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "kiln/ops/cpu/fast_exp.h"
#include "kiln/ops/cpu/loops.h"

namespace kiln::cpu {

struct ReduceGeometry {
  int64_t outer = 1, Ra = 1, mid = 1, Rb = 1, inner = 1;

  int64_t reduced() const { return Ra * Rb; }  // elements folded into each output
  int64_t slices() const { return outer * mid; }
  int64_t input_size() const { return outer * Ra * mid * Rb * inner; }
  // Slice s = o * mid + m folds the elements (o, ra, m, rb, i) at
  // slice_start(s) + ra * run_stride() + rb * inner + i, into output s * inner + i.
  int64_t slice_start(int64_t s) const { return ((s / mid) * Ra * mid + s % mid) * Rb * inner; }
  int64_t run_stride() const { return mid * Rb * inner; }
};

// f32 reductions accumulate in double, so long sums keep their accuracy; f64 and i64
// accumulate in their own type.
template <class T>
using Accumulator = std::conditional_t<std::is_same_v<T, float>, double, T>;

inline constexpr int64_t kColumns = 256;

// Runs task(s, i0, len) for every output slice s and block of columns [i0, i0 + len).
template <class Task>
void for_each_task(const ReduceGeometry& g, Task task) {
  const int64_t blocks = (g.inner + kColumns - 1) / kColumns;
  const int64_t tasks = g.slices() * blocks;
#pragma omp parallel for schedule(static) if (g.input_size() > kParallelThreshold && tasks > 1)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t i0 = (t % blocks) * kColumns;
    task(t / blocks, i0, std::min(kColumns, g.inner - i0));
  }
}

// `x != x` rather than std::isnan: the same for IEEE floats, and it vectorises.
template <class T>
bool is_nan(T x) {
  if constexpr (std::is_floating_point_v<T>) return x != x;
  else return false;
}

// NaN beats every number in a max or min, as in PyTorch, so one NaN makes the result NaN.

// Whether `candidate` replaces `best` in a max (kMax) or min: a first NaN does, a later
// NaN does not (argmax returns the first NaN).
template <bool kMax, class T>
bool beats(T candidate, T best) {
  const bool better = kMax ? candidate > best : candidate < best;
  return better || (is_nan(candidate) && !is_nan(best));
}

// The max (kMax) or min of a and x. Two selects rather than beats(): GCC vectorises this
// form (it only matters which value wins, not which NaN).
template <bool kMax, class T>
T extremum_of(T a, T x) {
  const T m = (kMax ? x > a : x < a) ? x : a;
  return is_nan(x) ? x : m;
}

// ---- folds ---------------------------------------------------------------------------------------
// A fold describes a reduction; fold_reduce() runs any fold, so each reduction below is
// a small struct. The kernel keeps several independent partial results ("lanes", of type
// Lane), so the loop has no dependency chain and vectorises:
//   init()            the empty lane (and the start of the total)
//   step(lane, x)     absorbs one element into a lane
//   merge(acc, lane)  adds a lane into the slice's total, of type Acc; the kernel
//                     flushes its lanes into the total every kFlushSteps steps
//   finish(acc, c)    the output
// Lane is usually Acc. logsumexp keeps f32 lanes (exp and add then vectorise) and a
// double total: the flush bounds how many terms a float lane ever sums.
//
// A fold may run centered: it then sees every element as x - center[output], and finish
// gets the center back (var folds deviations from the mean, logsumexp exp(x - max)).

template <class T>
struct SumFold {
  using Acc = Accumulator<T>;
  using Lane = Acc;
  Lane init() const { return 0; }
  Lane step(Lane a, T x) const { return a + x; }
  Acc merge(Acc a, Lane b) const { return a + b; }
  T finish(Acc a, T) const { return static_cast<T>(a); }
};

template <bool kMax, class T>
struct ExtremumFold {  // max (kMax) or min
  using Acc = T;
  using Lane = T;
  Lane init() const {
    using L = std::numeric_limits<T>;
    if constexpr (std::is_floating_point_v<T>) return kMax ? -L::infinity() : L::infinity();
    else return kMax ? L::lowest() : L::max();
  }
  Lane step(Lane a, T x) const { return extremum_of<kMax>(a, x); }
  Acc merge(Acc a, Lane b) const { return extremum_of<kMax>(a, b); }
  T finish(Acc a, T) const { return a; }
};

template <class T>
struct L1Fold {  // sum |x|
  using Acc = Accumulator<T>;
  using Lane = Acc;
  Lane init() const { return 0; }
  Lane step(Lane a, T x) const { return a + std::abs(static_cast<Acc>(x)); }
  Acc merge(Acc a, Lane b) const { return a + b; }
  T finish(Acc a, T) const { return static_cast<T>(a); }
};

template <class T>
struct L2Fold {  // sqrt(sum x^2)
  using Acc = Accumulator<T>;
  using Lane = Acc;
  Lane init() const { return 0; }
  Lane step(Lane a, T x) const { return a + static_cast<Acc>(x) * static_cast<Acc>(x); }
  Acc merge(Acc a, Lane b) const { return a + b; }
  T finish(Acc a, T) const { return static_cast<T>(std::sqrt(a)); }
};

template <class T>
struct LpFold {  // (sum |x|^p)^(1/p)
  using Acc = Accumulator<T>;
  using Lane = Acc;
  double p;
  Lane init() const { return 0; }
  Lane step(Lane a, T x) const { return a + std::pow(std::abs(static_cast<Acc>(x)), static_cast<Acc>(p)); }
  Acc merge(Acc a, Lane b) const { return a + b; }
  T finish(Acc a, T) const { return static_cast<T>(std::pow(a, static_cast<Acc>(1.0 / p))); }
};

template <class T>
struct LinfFold {  // max |x|, NaN-propagating
  using Acc = T;
  using Lane = T;
  Lane init() const { return 0; }
  Lane step(Lane a, T x) const { return extremum_of<true>(a, std::abs(x)); }
  Acc merge(Acc a, Lane b) const { return extremum_of<true>(a, b); }
  T finish(Acc a, T) const { return a; }
};

// Centered on the mean: sum of squared deviations / dof, or its square root. Two passes
// (mean, then deviations) avoid the cancellation of sum(x^2) - n mean^2.
template <class T>
struct SquaredDeviationFold {
  using Acc = Accumulator<T>;
  using Lane = Acc;
  double dof;
  bool take_sqrt;
  Lane init() const { return 0; }
  Lane step(Lane a, T d) const { return a + static_cast<Acc>(d) * static_cast<Acc>(d); }
  Acc merge(Acc a, Lane b) const { return a + b; }
  T finish(Acc a, T) const {
    const Acc v = a / static_cast<Acc>(dof);
    return static_cast<T>(take_sqrt ? std::sqrt(v) : v);
  }
};

// Centered on the max m: log sum exp(x) = m + log sum exp(x - m), so no exp overflows.
// When m is not finite the answer is m itself: -inf for an all -inf (or empty) slice,
// +inf when some x is +inf, NaN when some x is NaN.
template <class T>
struct LogSumExpFold {
  using Acc = Accumulator<T>;
  using Lane = T;  // every term is in [0, 1], and a lane sums at most kFlushSteps of them
  Lane init() const { return 0; }
  Lane step(Lane a, T d) const { return a + fast_exp(d); }
  Acc merge(Acc a, Lane b) const { return a + b; }
  T finish(Acc a, T m) const { return std::isfinite(m) ? static_cast<T>(m + std::log(a)) : m; }
};

inline constexpr int64_t kLanes = 16;       // partial results per row: one AVX-512 vector of f32
inline constexpr int64_t kFlushSteps = 64;  // steps a lane takes before it is merged into the total

// out[s, i] = fold of the slice's elements (of x - center[s, i] when `center` is given;
// center may alias out).
template <class T, class Fold>
void fold_reduce(const T* in, T* out, const ReduceGeometry& g, const Fold& fold, const T* center = nullptr) {
  using Acc = typename Fold::Acc;
  using Lane = typename Fold::Lane;
  for_each_task(g, [&](int64_t s, int64_t i0, int64_t len) {
    const T* base = in + g.slice_start(s) + i0;
    T* dst = out + s * g.inner + i0;
    if (g.inner == 1) {
      // Rows: kLanes lanes take consecutive elements of each contiguous run.
      const T c = center ? center[s] : T(0);
      Acc acc = fold.init();
      Lane lane[kLanes];
      auto flush = [&] {
        for (int64_t k = 0; k < kLanes; ++k) acc = fold.merge(acc, lane[k]), lane[k] = fold.init();
      };
      for (int64_t k = 0; k < kLanes; ++k) lane[k] = fold.init();
      int64_t steps = 0;
      for (int64_t ra = 0; ra < g.Ra; ++ra) {
        const T* run = base + ra * g.run_stride();
        int64_t r = 0;
        for (; r + kLanes <= g.Rb; r += kLanes) {
#pragma omp simd
          for (int64_t k = 0; k < kLanes; ++k) lane[k] = fold.step(lane[k], static_cast<T>(run[r + k] - c));
          if (++steps == kFlushSteps) flush(), steps = 0;
        }
        for (; r < g.Rb; ++r) acc = fold.merge(acc, fold.step(fold.init(), static_cast<T>(run[r] - c)));
      }
      flush();
      dst[0] = fold.finish(acc, c);
      return;
    }
    // Columns: one lane per column of the block, stepping down the rows together.
    T c[kColumns];
    Acc acc[kColumns];
    Lane lane[kColumns];
    auto flush = [&] {
      for (int64_t j = 0; j < len; ++j) acc[j] = fold.merge(acc[j], lane[j]), lane[j] = fold.init();
    };
    for (int64_t j = 0; j < len; ++j) {
      c[j] = center ? center[s * g.inner + i0 + j] : T(0);
      acc[j] = fold.init();
      lane[j] = fold.init();
    }
    int64_t steps = 0;
    for (int64_t ra = 0; ra < g.Ra; ++ra)
      for (int64_t rb = 0; rb < g.Rb; ++rb) {
        const T* row = base + ra * g.run_stride() + rb * g.inner;
#pragma omp simd
        for (int64_t j = 0; j < len; ++j) lane[j] = fold.step(lane[j], static_cast<T>(row[j] - c[j]));
        if (++steps == kFlushSteps) flush(), steps = 0;
      }
    flush();
    for (int64_t j = 0; j < len; ++j) dst[j] = fold.finish(acc[j], c[j]);
  });
}

// ---- the reductions the ops call ------------------------------------------------------------------

template <class T>
void sum_reduce(const T* in, T* out, const ReduceGeometry& g) {
  fold_reduce(in, out, g, SumFold<T>{});
}

// Variance (or standard deviation) with `dof` degrees of freedom (count - correction).
template <class T>
void variance_reduce(const T* in, T* out, const ReduceGeometry& g, double dof, bool take_sqrt) {
  fold_reduce(in, out, g, SumFold<T>{});
  const int64_t n = g.slices() * g.inner;
  for (int64_t k = 0; k < n; ++k) out[k] = static_cast<T>(out[k] / static_cast<T>(g.reduced()));  // means
  fold_reduce(in, out, g, SquaredDeviationFold<T>{dof, take_sqrt}, /*center=*/out);
}

template <class T>
void logsumexp_reduce(const T* in, T* out, const ReduceGeometry& g) {
  fold_reduce(in, out, g, ExtremumFold<true, T>{});
  fold_reduce(in, out, g, LogSumExpFold<T>{}, /*center=*/out);
}

// p-norm for p > 0 (inf: the largest |x|).
template <class T>
void norm_reduce(const T* in, T* out, const ReduceGeometry& g, double p) {
  if (p == 1) fold_reduce(in, out, g, L1Fold<T>{});
  else if (p == 2) fold_reduce(in, out, g, L2Fold<T>{});
  else if (std::isinf(p)) fold_reduce(in, out, g, LinfFold<T>{});
  else fold_reduce(in, out, g, LpFold<T>{p});
}

// values = max (kMax) or min of each slice; indices (when not null) = the position rb of
// its first occurrence (of the first NaN, if any). One reduced block (Ra == 1), Rb > 0.
template <bool kMax, class T>
void extremum_reduce(const T* in, T* values, int64_t* indices, const ReduceGeometry& g) {
  // Same value, where NaN counts as equal to NaN.
  auto same = [](T a, T b) { return a == b || (is_nan(a) && is_nan(b)); };
  for_each_task(g, [&](int64_t s, int64_t i0, int64_t len) {
    const T* base = in + g.slice_start(s) + i0;
    if (g.inner == 1) {
      // A row: kLanes lanes each keep their best value and where it first occurs (with
      // selects, so the scan vectorises); then the best lane wins, ties to the earliest.
      T best[kLanes];
      int64_t where[kLanes];
      for (int64_t k = 0; k < kLanes; ++k) best[k] = base[0], where[k] = 0;
      int64_t r = 0;
      for (; r + kLanes <= g.Rb; r += kLanes) {
#pragma omp simd
        for (int64_t k = 0; k < kLanes; ++k) {
          const bool better = beats<kMax>(base[r + k], best[k]);
          best[k] = better ? base[r + k] : best[k];
          where[k] = better ? r + k : where[k];
        }
      }
      T v = best[0];
      int64_t at = where[0];
      for (int64_t k = 1; k < kLanes; ++k)
        if (beats<kMax>(best[k], v) || (same(best[k], v) && where[k] < at)) v = best[k], at = where[k];
      for (; r < g.Rb; ++r)
        if (beats<kMax>(base[r], v)) v = base[r], at = r;
      values[s] = v;
      if (indices) indices[s] = at;
      return;
    }
    // Columns: the same, with one lane per column of the block.
    T* best = values + s * g.inner + i0;
    int64_t where[kColumns];
    for (int64_t j = 0; j < len; ++j) best[j] = base[j], where[j] = 0;
    for (int64_t r = 1; r < g.Rb; ++r) {
      const T* row = base + r * g.inner;
#pragma omp simd
      for (int64_t j = 0; j < len; ++j) {
        const bool better = beats<kMax>(row[j], best[j]);
        best[j] = better ? row[j] : best[j];
        where[j] = better ? r : where[j];
      }
    }
    if (indices) std::copy(where, where + len, indices + s * g.inner + i0);
  });
}

// ---- backward helpers: where the gradient of a max goes ---------------------------------------

// mask (input-shaped, zeroed by the caller) gets a 1 at each output's index: routes a
// max/min gradient to the element the forward picked. One reduced block (Ra == 1).
template <class T>
void scatter_ones(const int64_t* index, T* mask, const ReduceGeometry& g) {
  for (int64_t s = 0; s < g.slices(); ++s)
    for (int64_t i = 0; i < g.inner; ++i) mask[g.slice_start(s) + index[s * g.inner + i] * g.inner + i] = T(1);
}

// Splits a max's (kMax) or min's gradient evenly among ties, as PyTorch does for max()
// without a dim: weight = 1 / count where key(x) equals the slice's max (min) key (NaN
// matching NaN), else 0, with count the number of such elements in the slice. The key is x
// itself, or |x| for the infinity norm (`magnitude`), whose weight then carries sign(x).
template <bool kMax, class T>
void tie_weights(const T* in, T* weight, const ReduceGeometry& g, bool magnitude) {
  auto key = [&](T x) { return magnitude ? std::abs(x) : x; };
  auto sign = [](T x) { return static_cast<T>((x > 0) - (x < 0)); };
  if (g.reduced() == 0) return;  // empty slices: no weights to write
  for_each_task(g, [&](int64_t s, int64_t i0, int64_t len) {
    const int64_t start = g.slice_start(s) + i0;
    // Visits every element of the task's columns: fn(offset of the element, column j).
    auto for_each_element = [&](auto fn) {
      for (int64_t ra = 0; ra < g.Ra; ++ra)
        for (int64_t rb = 0; rb < g.Rb; ++rb) {
          const int64_t at = start + ra * g.run_stride() + rb * g.inner;
          for (int64_t j = 0; j < len; ++j) fn(at + j, j);
        }
    };
    T top[kColumns];
    int64_t count[kColumns] = {};
    for (int64_t j = 0; j < len; ++j) top[j] = key(in[start + j]);
    for_each_element([&](int64_t at, int64_t j) { top[j] = extremum_of<kMax>(top[j], key(in[at])); });
    auto is_top = [&](int64_t at, int64_t j) {
      return key(in[at]) == top[j] || (is_nan(key(in[at])) && is_nan(top[j]));
    };
    for_each_element([&](int64_t at, int64_t j) { count[j] += is_top(at, j); });
    for_each_element([&](int64_t at, int64_t j) {
      const T share = is_top(at, j) ? T(1) / static_cast<T>(count[j]) : T(0);
      weight[at] = magnitude ? share * sign(in[at]) : share;
    });
  });
}

}  // namespace kiln::cpu
