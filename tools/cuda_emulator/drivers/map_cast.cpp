// Emulated CUDA elementwise kernels (cuda/map.cuh: vectorised, 1-D and N-d paths, int32 and
// int64 indexers) and dtype conversion (cuda/map_cast.cu, incl. bf16/f16 rounding) vs a naive
// strided host loop and cpu::cast_element, bit for bit; storage around the output must stay
// untouched.
#include "common.h"
#include "kiln/cuda/map.cuh"
#include "kiln/ops/functors.h"
#include "kiln/ops/cpu/cast.h"

using namespace kiln;
using Shape = std::vector<int64_t>;

// An operand: storage, a base offset into it (misalignment) and strides over the shape.
template <class T> struct Op {
  std::vector<T> store;
  int64_t base = 0;
  Shape strides;
  T* ptr() { return store.data() + base; }
};
inline int64_t extent(const Shape& shape, const Shape& strides) {
  int64_t last = 0;
  for (size_t d = 0; d < shape.size(); ++d) last += (shape[d] - 1) * strides[d];
  return last + 1;
}
template <class T> T rand_val() {
  static std::normal_distribution<double> N(0, 2);
  if constexpr (std::is_same_v<T, uint8_t>) return T(rng() % 2);
  else if constexpr (std::is_same_v<T, bfloat16> || std::is_same_v<T, float16>) {
    T t; t.bits = uint16_t(rng()); return t;
  } else if constexpr (std::is_integral_v<T>) return T(int64_t(rng() % 201) - 100);
  else return T(N(rng));
}
template <class T> Op<T> make_op(const Shape& shape, Shape strides, int64_t base) {
  Op<T> o;
  o.base = base;
  o.strides = strides;
  o.store.resize(base + extent(shape, strides) + 1);
  for (auto& e : o.store) e = rand_val<T>();
  return o;
}
Shape contiguous(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (size_t d = s.size(); d-- > 0;) { st[d] = acc; acc *= s[d]; }
  return st;
}
template <class T> double as_double(T v) {
  if constexpr (std::is_same_v<T, bfloat16>) return double(bf16_to_float(v));
  else if constexpr (std::is_same_v<T, float16>) return double(f16_to_float(v));
  else return double(v);
}

// Visits every multi-index of shape with the element offsets of each stride set.
template <class F> void for_each_index(const Shape& shape, F&& f) {
  int64_t n = 1;
  for (auto s : shape) n *= s;
  std::vector<int64_t> c(shape.size(), 0);
  for (int64_t e = 0; e < n; ++e) {
    f(c);
    for (size_t d = shape.size(); d-- > 0;) { if (++c[d] < shape[d]) break; c[d] = 0; }
  }
}
inline int64_t off(const std::vector<int64_t>& c, const Shape& st) {
  int64_t o = 0;
  for (size_t d = 0; d < c.size(); ++d) o += c[d] * st[d];
  return o;
}

// out = f(in...) on the emulated GPU vs a host loop; the output's storage outside the
// written elements must stay untouched. `ref` computes one element.
template <class Out, class F, class Ref, class... In>
void check(const std::string& name, const F& f, const Ref& ref, const Shape& shape, Op<Out> out, Op<In>... in) {
  Op<Out> expect = out;
  for_each_index(shape, [&](const std::vector<int64_t>& c) {
    expect.ptr()[off(c, out.strides)] = ref(in.ptr()[off(c, in.strides)]...);
  });
  cuda::map<F, Out, In...>(f, {out.ptr(), out.strides.data()}, shape, 0,
                           cuda::Strided<const In>{in.ptr(), in.strides.data()}...);
  Diff d;
  d.n = int64_t(out.store.size());
  for (size_t i = 0; i < out.store.size(); ++i) {
    const double a = as_double(out.store[i]), b = as_double(expect.store[i]);
    if (std::isnan(a) && std::isnan(b)) continue;
    if (a != b) { d.nan_mismatch++; d.max_abs = std::max(d.max_abs, std::fabs(a - b)); }
  }
  report(name, "exact", d);
}

// Layouts over which every test runs: name, shape, strides per operand (out first) and base offsets.
struct Layout {
  std::string name;
  Shape shape;
  std::vector<Shape> strides;  // 0: out, 1..: inputs (missing = contiguous)
  std::vector<int64_t> base;   // element offsets (misalign when odd)
};

template <class T> void binary_tests(const std::vector<Layout>& layouts) {
  for (const auto& L : layouts) {
    auto st = [&](size_t k) { return k < L.strides.size() && !L.strides[k].empty() ? L.strides[k] : contiguous(L.shape); };
    auto bs = [&](size_t k) { return k < L.base.size() ? L.base[k] : 0; };
    const std::string nm = std::string("map ") + tname<T>() + " " + L.name;
    check<T>(nm + " Add", ops::fn::Add{}, [](T a, T b) { return T(a + b); }, L.shape, make_op<T>(L.shape, st(0), bs(0)),
             make_op<T>(L.shape, st(1), bs(1)), make_op<T>(L.shape, st(2), bs(2)));
    check<T>(nm + " AddScaled", ops::fn::AddScaled{0.5}, [](T a, T b) { return T(a + T(0.5) * b); }, L.shape,
             make_op<T>(L.shape, st(0), bs(0)), make_op<T>(L.shape, st(1), bs(1)), make_op<T>(L.shape, st(2), bs(2)));
    check<uint8_t>(nm + " Lt->u8", ops::fn::Lt{}, [](T a, T b) { return uint8_t(a < b); }, L.shape,
                   make_op<uint8_t>(L.shape, st(0), bs(0)), make_op<T>(L.shape, st(1), bs(1)),
                   make_op<T>(L.shape, st(2), bs(2)));
    check<T>(nm + " Neg", ops::fn::Neg{}, [](T a) { return T(-a); }, L.shape, make_op<T>(L.shape, st(0), bs(0)),
             make_op<T>(L.shape, st(1), bs(1)));
    check<T>(nm + " Fill", ops::fn::Fill<T>{T(3)}, []() { return T(3); }, L.shape, make_op<T>(L.shape, st(0), bs(0)));
    check<T>(nm + " Select", ops::fn::Select{}, [](uint8_t c, T a, T b) { return c ? a : b; }, L.shape,
             make_op<T>(L.shape, st(0), bs(0)), make_op<uint8_t>(L.shape, st(1), bs(1)),
             make_op<T>(L.shape, st(2), bs(2)), make_op<T>(L.shape, st(3), bs(3)));
  }
}

template <class D, class S> void cast_test(const Layout& L) {
  auto st = [&](size_t k) { return k < L.strides.size() && !L.strides[k].empty() ? L.strides[k] : contiguous(L.shape); };
  auto bs = [&](size_t k) { return k < L.base.size() ? L.base[k] : 0; };
  Op<D> out = make_op<D>(L.shape, st(0), bs(0));
  Op<S> in = make_op<S>(L.shape, st(1), bs(1));
  if constexpr (std::is_floating_point_v<S> && std::is_integral_v<D>)  // keep float->int in range (UB otherwise)
    for (auto& e : in.store) e = std::isfinite(e) ? std::fmod(e, S(100)) : S(1);
  if constexpr ((std::is_same_v<S, float16> || std::is_same_v<S, bfloat16>) && std::is_same_v<D, int64_t>)
    for (auto& e : in.store) if (!std::isfinite(as_double(e))) e.bits = std::is_same_v<S, float16> ? 0x3c00 : 0x3f80;
  if constexpr (std::is_same_v<S, float>) {  // special values for the 16-bit roundings
    const float specials[] = {NAN, INFINITY, -INFINITY, 3.4028235e38f, -0.0f, 1.00390625f /* bf16 tie */,
                              1.01171875f /* bf16 tie, odd */, 65520.0f /* f16 overflow tie */, 65504.0f,
                              5.9604645e-08f /* f16 min subnormal */, 2.9802322e-08f /* half of it: tie to 0 */,
                              1e-40f /* f32 subnormal */, 3.3961514e38f /* bf16 max-finite/inf tie */};
    for (size_t i = 0; i < sizeof specials / sizeof *specials && i < in.store.size(); ++i) in.store[i] = specials[i];
  }
  Op<D> expect = out;
  for_each_index(L.shape, [&](const std::vector<int64_t>& c) {
    expect.ptr()[off(c, out.strides)] = cpu::cast_element<D, S>(in.ptr()[off(c, in.strides)]);
  });
  cuda::cast<D, S>({out.ptr(), out.strides.data()}, L.shape, 0, {in.ptr(), in.strides.data()});
  Diff d;
  d.n = int64_t(out.store.size());
  for (size_t i = 0; i < out.store.size(); ++i) {
    const double a = as_double(out.store[i]), b = as_double(expect.store[i]);
    if (std::isnan(a) && std::isnan(b)) continue;
    if (a != b) d.nan_mismatch++, d.max_abs = std::max(d.max_abs, std::fabs(a - b));
  }
  report(std::string("cast ") + tname<S>() + "->" + tname<D>() + " " + L.name, "exact", d);
}

int main() {
  const Shape big{3, 5, 7};
  std::vector<Layout> layouts = {
      {"contig n=1003 (vectorised+tail)", {1003}, {}, {}},
      {"contig n=3", {3}, {}, {}},
      {"contig n=1", {1}, {}, {}},
      {"misaligned out n=257 (1-D)", {257}, {}, {1, 0, 0, 0}},
      {"misaligned in n=257 (1-D)", {257}, {}, {0, 0, 3, 0}},
      {"stride2 n=300 (1-D)", {300}, {{2}, {3}, {1}, {1}}, {}},
      {"scalar-broadcast n=300", {300}, {{}, {0}, {}, {0}}, {}},
      {"2-D transposed 33x45 (nd)", {33, 45}, {{}, {1, 33}, {}, {}}, {}},
      {"row-broadcast 17x40 (nd)", {17, 40}, {{}, {}, {0, 1}, {}}, {}},
      {"3-D 3x5x7 permuted (nd)", big, {{}, {1, 3, 15}, {35, 1, 5}, {}}, {}},
      {"size-1 dims 1x9x1x4", {1, 9, 1, 4}, {{}, {0, 4, 0, 1}, {}, {}}, {}},
      {"8 unmergeable dims", {2, 2, 2, 2, 2, 2, 2, 3}, {{}, {2, 4, 8, 16, 32, 64, 128, 256}, {}, {}}, {}},
  };
  binary_tests<float>(layouts);
  binary_tests<double>(layouts);
  binary_tests<int64_t>(layouts);

  // The int64 indexer, launched directly (a layout past 2^31 elements cannot be allocated here).
  {
    const Shape shape{33, 45};
    auto a = make_op<float>(shape, {1, 33}, 0), b = make_op<float>(shape, contiguous(shape), 0);
    auto out = make_op<float>(shape, contiguous(shape), 0);
    const int64_t* sts[3] = {out.strides.data(), a.strides.data(), b.strides.data()};
    const ops::MergedLayout<3> layout(shape, {sts[0], sts[1], sts[2]});
    auto expect = out;
    for_each_index(shape, [&](const std::vector<int64_t>& c) {
      expect.ptr()[off(c, out.strides)] = a.ptr()[off(c, a.strides)] + b.ptr()[off(c, b.strides)];
    });
    cpemu::launch(cuda::blocks_for(33 * 45), cuda::kThreadsPerBlock, 0,
                  cuda::map_detail::map_nd_kernel<int64_t, ops::fn::Add, float, float, float>, ops::fn::Add{},
                  out.ptr(), cuda::map_detail::make_indexer<int64_t>(layout), int64_t(33 * 45),
                  (const float*)a.ptr(), (const float*)b.ptr());
    const Diff d = exact(bitwise_equal(out.store, expect.store), out.store.size());
    report("map_nd_kernel<int64 index> f32 Add 33x45 transposed", "exact", d);
    // fits_in_int32 at the boundary: last offset INT_MAX fits, INT_MAX + 1 does not.
    const Shape s2{2, 2};
    const int64_t ok_st[2] = {INT_MAX - 1, 1}, bad_st[2] = {INT_MAX, 1}, c2[2] = {2, 1};
    const bool fits = cuda::map_detail::fits_in_int32(ops::MergedLayout<2>(s2, {c2, ok_st}));
    const bool not_fits = !cuda::map_detail::fits_in_int32(ops::MergedLayout<2>(s2, {c2, bad_st}));
    report("fits_in_int32 boundary (INT_MAX fits, INT_MAX+1 not)", "logic", exact(fits && not_fits, 2));
  }

  // Casts, contiguous (vectorised) and strided.
  for (const Layout& L : {Layout{"contig n=1001", {1001}, {}, {}}, Layout{"transposed 19x23", {19, 23}, {{}, {1, 19}}, {}},
                          Layout{"misaligned n=65", {65}, {}, {1, 1}}}) {
    cast_test<float, double>(L); cast_test<double, float>(L); cast_test<int64_t, float>(L);
    cast_test<float, int64_t>(L); cast_test<uint8_t, float>(L); cast_test<float, uint8_t>(L);
    cast_test<bfloat16, float>(L); cast_test<float, bfloat16>(L); cast_test<float16, float>(L);
    cast_test<float, float16>(L); cast_test<bfloat16, double>(L); cast_test<float16, bfloat16>(L);
    cast_test<uint8_t, bfloat16>(L); cast_test<int64_t, float16>(L); cast_test<bfloat16, int64_t>(L);
  }
  return finish("map_cast");
}
