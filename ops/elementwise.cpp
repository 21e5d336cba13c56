// Elementwise ops. Each op: forward as a one-line map (ops/map.h), then its backward
// rule right below, written with Tensor ops (so double backward works).
//
// Factors such as sign(x) or "is x inside [min, max]" are piecewise constant, so the
// backward rules build them with a plain map (no history): their own derivative is zero
// almost everywhere, which is exactly what double backward needs.
#include "kiln/ops/elementwise.h"

#include <algorithm>
#include <cmath>

#include "kiln/autograd/node.h"
#include "kiln/core/profiler.h"
#include "kiln/ops/cpu/ternary.h"
#include "kiln/ops/map.h"
#include "kiln/ops/reduce.h"

namespace kiln {

using autograd::Grads;
using autograd::Saved;
using ops::map_binary;
using ops::map_unary;
namespace fn = ops::fn;

namespace {

// -1, 0 or 1 in x's dtype.
Tensor sign_of(const Tensor& x) {
  return map_unary("sign", x, fn::Sign{});
}

void check_bool(const char* op, const char* what, const Tensor& t) {
  KILN_CHECK(t.dtype() == b8, op, ": ", what, " must be a bool (b8) tensor, got ", describe(t),
             "; make one with a comparison such as gt(x, 0.0)");
}

// out = cond ? a : b over the broadcast shape of all three: the forward of where and
// masked_fill. Any numeric dtype (selection does no arithmetic).
Tensor select_by_mask(const char* op, const Tensor& cond, const Tensor& a, const Tensor& b) {
  ops::check_same_device(op, {cond, a, b});
  check_bool(op, "the condition", cond);
  ops::check_same_dtype(op, a, b);
  const Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), op), b.shape(), op);
  const Shape sc = ops::broadcast_strides(cond, shape, op), sa = ops::broadcast_strides(a, shape, op),
              sb = ops::broadcast_strides(b, shape, op);
  Tensor out = empty(shape, {.dtype = a.dtype(), .device = a.device()});
  const Shape out_strides = out.strides();
  dispatch_numeric(a.dtype(), op, [&]<class T>() {
    if (a.device().is_cuda()) {
      cuda::map<fn::Select, T, uint8_t, T, T>(fn::Select{}, {out.data<T>(), out_strides.data()}, shape,
                                              a.device().index, ops::gpu_operand<uint8_t>(cond, sc),
                                              ops::gpu_operand<T>(a, sa), ops::gpu_operand<T>(b, sb));
    } else {
      cpu::ternary_loop(out.data<T>(), out_strides.data(), cond.data<uint8_t>(), sc.data(), a.data<T>(), sa.data(),
                        b.data<T>(), sb.data(), shape, fn::Select{});
    }
  });
  return out;
}

// maximum/minimum route the gradient to the operand they picked; on a tie each gets
// half, so the two shares always add up to the incoming gradient.
void record_pick_backward(const char* op, Tensor& out, const Tensor& a, const Tensor& b, bool picks_larger) {
  autograd::record(op, out, {a, b}, {a, b}, [op, picks_larger](const Tensor& g, const Saved& s) {
    const Tensor share_a = map_binary(op, s[0], s[1], fn::PickShare{picks_larger}, /*numeric=*/false);
    return Grads{s.needs_grad(0) ? sum_to(g * share_a, s[0].shape()) : Tensor(),
                 s.needs_grad(1) ? sum_to(g * (1.0 - share_a), s[1].shape()) : Tensor()};
  });
}

}  // namespace

Tensor scalar_like(const Tensor& t, double value, const char* op) {
  KILN_CHECK(t.defined(), op, ": got an undefined tensor");
  if (t.dtype() == i64)
    KILN_CHECK(std::nearbyint(value) == value, op, ": scalar ", value, " is not an integer but the tensor is ",
               describe(t), "; convert it with .to(kiln::f32)");
  return scalar_tensor(value, {.dtype = t.dtype(), .device = t.device()});
}

// ---- add / sub ------------------------------------------------------------------------
// The gradient of a broadcast operand is summed back to its own shape (sum_to).

Tensor add(const Tensor& a, const Tensor& b) {
  KILN_PROFILE_SCOPE("add", a, b);
  Tensor out = map_binary("add", a, b, fn::Add{});
  autograd::record("add", out, {a, b}, {}, [sa = a.shape(), sb = b.shape()](const Tensor& g, const Saved& s) {
    return Grads{s.needs_grad(0) ? sum_to(g, sa) : Tensor(), s.needs_grad(1) ? sum_to(g, sb) : Tensor()};
  });
  return out;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  KILN_PROFILE_SCOPE("sub", a, b);
  Tensor out = map_binary("sub", a, b, fn::Sub{});
  autograd::record("sub", out, {a, b}, {}, [sa = a.shape(), sb = b.shape()](const Tensor& g, const Saved& s) {
    return Grads{s.needs_grad(0) ? sum_to(g, sa) : Tensor(), s.needs_grad(1) ? sum_to(neg(g), sb) : Tensor()};
  });
  return out;
}

// ---- mul / div ---------------------------------------------------------------------------

Tensor mul(const Tensor& a, const Tensor& b) {
  KILN_PROFILE_SCOPE("mul", a, b);
  Tensor out = map_binary("mul", a, b, fn::Mul{});
  autograd::record("mul", out, {a, b}, {a, b}, [](const Tensor& g, const Saved& s) {
    return Grads{s.needs_grad(0) ? sum_to(g * s[1], s[0].shape()) : Tensor(),
                 s.needs_grad(1) ? sum_to(g * s[0], s[1].shape()) : Tensor()};
  });
  return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
  KILN_PROFILE_SCOPE("div", a, b);
  Tensor out = map_binary("div", a, b, fn::Div{});
  // d(a/b)/da = 1/b, d(a/b)/db = -a/b^2
  autograd::record("div", out, {a, b}, {a, b}, [](const Tensor& g, const Saved& s) {
    const Tensor &a = s[0], &b = s[1];
    return Grads{s.needs_grad(0) ? sum_to(g / b, a.shape()) : Tensor(),
                 s.needs_grad(1) ? sum_to(neg(g * a) / (b * b), b.shape()) : Tensor()};
  });
  return out;
}

// ---- pow / maximum / minimum ---------------------------------------------------------------

Tensor pow(const Tensor& a, const Tensor& b) {
  KILN_PROFILE_SCOPE("pow", a, b);
  Tensor out = map_binary("pow", a, b, fn::Pow{}, /*numeric=*/false);
  // d/da = b a^(b-1), taken as 0 where b == 0 (a^b is constant 1 there; 0 * 0^-1 would be NaN).
  // d/db = a^b log a, taken as 0 where a == 0 and b >= 0 (the limit; 0 * log 0 would be NaN).
  autograd::record("pow", out, {a, b}, {a, b, out}, [](const Tensor& g, const Saved& s) {
    const Tensor &a = s[0], &b = s[1], &out = s[2];
    const Tensor zero = scalar_like(g, 0.0, "pow");
    Tensor ga, gb;
    if (s.needs_grad(0)) ga = sum_to(where(eq(b, 0.0), zero, g * b * pow(a, b - 1.0)), a.shape());
    if (s.needs_grad(1)) {
      const Tensor zero_base = map_binary<uint8_t>("pow", a, b, fn::ZeroBase{}, /*numeric=*/false);
      gb = sum_to(where(zero_base, zero, g * out * log(a)), b.shape());
    }
    return Grads{ga, gb};
  });
  return out;
}

// NaN wins, as in PyTorch (std::max would drop a NaN in its second argument).
Tensor maximum(const Tensor& a, const Tensor& b) {
  KILN_PROFILE_SCOPE("maximum", a, b);
  Tensor out = map_binary("maximum", a, b, fn::Maximum{});
  record_pick_backward("maximum", out, a, b, /*picks_larger=*/true);
  return out;
}

Tensor minimum(const Tensor& a, const Tensor& b) {
  KILN_PROFILE_SCOPE("minimum", a, b);
  Tensor out = map_binary("minimum", a, b, fn::Minimum{});
  record_pick_backward("minimum", out, a, b, /*picks_larger=*/false);
  return out;
}

// ---- unary ------------------------------------------------------------------------------

Tensor neg(const Tensor& x) {
  KILN_PROFILE_SCOPE("neg", x);
  Tensor out = map_unary("neg", x, fn::Neg{}, /*numeric=*/true);
  autograd::record("neg", out, {x}, {}, [](const Tensor& g, const Saved&) { return Grads{neg(g)}; });
  return out;
}

Tensor abs(const Tensor& x) {
  KILN_PROFILE_SCOPE("abs", x);
  Tensor out = map_unary("abs", x, fn::Abs{}, /*numeric=*/true);
  // d|x| = sign(x), with 0 at x = 0 as in PyTorch.
  autograd::record("abs", out, {x}, {x}, [](const Tensor& g, const Saved& s) { return Grads{g * sign_of(s[0])}; });
  return out;
}

Tensor exp(const Tensor& x) {
  KILN_PROFILE_SCOPE("exp", x);
  Tensor out = map_unary("exp", x, fn::Exp{});
  // d exp(x) = exp(x): reuse the output rather than recomputing it.
  autograd::record("exp", out, {x}, {out}, [](const Tensor& g, const Saved& s) { return Grads{g * s[0]}; });
  return out;
}

Tensor log(const Tensor& x) {
  KILN_PROFILE_SCOPE("log", x);
  Tensor out = map_unary("log", x, fn::Log{});
  autograd::record("log", out, {x}, {x}, [](const Tensor& g, const Saved& s) { return Grads{g / s[0]}; });
  return out;
}

// log(1 + x), accurate for tiny x where 1 + x would round to 1.
Tensor log1p(const Tensor& x) {
  KILN_PROFILE_SCOPE("log1p", x);
  Tensor out = map_unary("log1p", x, fn::Log1p{});
  autograd::record("log1p", out, {x}, {x}, [](const Tensor& g, const Saved& s) { return Grads{g / (s[0] + 1.0)}; });
  return out;
}

Tensor sqrt(const Tensor& x) {
  KILN_PROFILE_SCOPE("sqrt", x);
  Tensor out = map_unary("sqrt", x, fn::Sqrt{});
  // d sqrt(x) = 1 / (2 sqrt(x))
  autograd::record("sqrt", out, {x}, {out}, [](const Tensor& g, const Saved& s) { return Grads{g / (s[0] * 2.0)}; });
  return out;
}

Tensor rsqrt(const Tensor& x) {
  KILN_PROFILE_SCOPE("rsqrt", x);
  Tensor out = map_unary("rsqrt", x, fn::Rsqrt{});
  // d x^(-1/2) = -1/2 x^(-3/2) = -1/2 rsqrt(x)^3
  autograd::record("rsqrt", out, {x}, {out}, [](const Tensor& g, const Saved& s) {
    const Tensor& r = s[0];
    return Grads{g * (r * r * r) * -0.5};
  });
  return out;
}

Tensor sin(const Tensor& x) {
  KILN_PROFILE_SCOPE("sin", x);
  Tensor out = map_unary("sin", x, fn::Sin{});
  autograd::record("sin", out, {x}, {x}, [](const Tensor& g, const Saved& s) { return Grads{g * cos(s[0])}; });
  return out;
}

Tensor cos(const Tensor& x) {
  KILN_PROFILE_SCOPE("cos", x);
  Tensor out = map_unary("cos", x, fn::Cos{});
  autograd::record("cos", out, {x}, {x}, [](const Tensor& g, const Saved& s) { return Grads{neg(g * sin(s[0]))}; });
  return out;
}

Tensor pow(const Tensor& x, double exponent) {
  KILN_PROFILE_SCOPE("pow", x);
  Tensor out = map_unary("pow", x, fn::PowScalar{exponent});
  // d x^p = p x^(p-1); x^0 is the constant 1 (and 0 * 0^-1 would be NaN).
  autograd::record("pow", out, {x}, {x}, [exponent](const Tensor& g, const Saved& s) {
    if (exponent == 0) return Grads{zeros_like(s[0])};
    return Grads{g * (exponent * pow(s[0], exponent - 1))};
  });
  return out;
}

Tensor clamp(const Tensor& x, double min, double max) {
  KILN_PROFILE_SCOPE("clamp", x);
  KILN_CHECK(!(min > max), "clamp: min ", min, " is greater than max ", max);
  Tensor out = map_unary("clamp", x, fn::Clamp{min, max});  // NaN passes through
  // The gradient passes where x is inside [min, max] (bounds included, as in PyTorch).
  autograd::record("clamp", out, {x}, {x}, [min, max](const Tensor& g, const Saved& s) {
    return Grads{g * map_unary("clamp", s[0], fn::InRange{min, max})};
  });
  return out;
}

// ---- comparisons ---------------------------------------------------------------------------
// bool (b8) masks; they carry no gradient (the output never requires grad).

Tensor eq(const Tensor& a, const Tensor& b) {
  KILN_PROFILE_SCOPE("eq", a, b);
  return map_binary<uint8_t>("eq", a, b, fn::Eq{});
}
Tensor ne(const Tensor& a, const Tensor& b) {
  KILN_PROFILE_SCOPE("ne", a, b);
  return map_binary<uint8_t>("ne", a, b, fn::Ne{});
}
Tensor lt(const Tensor& a, const Tensor& b) {
  KILN_PROFILE_SCOPE("lt", a, b);
  return map_binary<uint8_t>("lt", a, b, fn::Lt{});
}
Tensor le(const Tensor& a, const Tensor& b) {
  KILN_PROFILE_SCOPE("le", a, b);
  return map_binary<uint8_t>("le", a, b, fn::Le{});
}
Tensor gt(const Tensor& a, const Tensor& b) {
  KILN_PROFILE_SCOPE("gt", a, b);
  return map_binary<uint8_t>("gt", a, b, fn::Gt{});
}
Tensor ge(const Tensor& a, const Tensor& b) {
  KILN_PROFILE_SCOPE("ge", a, b);
  return map_binary<uint8_t>("ge", a, b, fn::Ge{});
}
Tensor eq(const Tensor& a, double b) { return eq(a, scalar_like(a, b, "eq")); }
Tensor ne(const Tensor& a, double b) { return ne(a, scalar_like(a, b, "ne")); }
Tensor lt(const Tensor& a, double b) { return lt(a, scalar_like(a, b, "lt")); }
Tensor le(const Tensor& a, double b) { return le(a, scalar_like(a, b, "le")); }
Tensor gt(const Tensor& a, double b) { return gt(a, scalar_like(a, b, "gt")); }
Tensor ge(const Tensor& a, double b) { return ge(a, scalar_like(a, b, "ge")); }

// ---- selection ---------------------------------------------------------------------------

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  KILN_PROFILE_SCOPE("where", cond, a, b);
  Tensor out = select_by_mask("where", cond, a, b);
  // Each branch gets the gradient where it was picked, summed back to its own shape.
  autograd::record("where", out, {a, b}, {cond}, [sa = a.shape(), sb = b.shape()](const Tensor& g, const Saved& s) {
    const Tensor zero = scalar_like(g, 0.0, "where");
    return Grads{s.needs_grad(0) ? sum_to(where(s[0], g, zero), sa) : Tensor(),
                 s.needs_grad(1) ? sum_to(where(s[0], zero, g), sb) : Tensor()};
  });
  return out;
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  KILN_PROFILE_SCOPE("masked_fill", x, mask);
  ops::check_same_device("masked_fill", {x, mask});
  check_bool("masked_fill", "the mask", mask);
  ops::broadcast_strides(mask, x.shape(), "masked_fill");  // the mask fits x; x never grows
  Tensor out = select_by_mask("masked_fill", mask, scalar_like(x, value, "masked_fill"), x);
  // Filled positions no longer depend on x.
  autograd::record("masked_fill", out, {x}, {mask}, [](const Tensor& g, const Saved& s) {
    return Grads{where(s[0], scalar_like(g, 0.0, "masked_fill"), g)};
  });
  return out;
}

// ---- operators ----------------------------------------------------------------------------

Tensor operator-(const Tensor& x) { return neg(x); }
Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator+(const Tensor& a, double b) { return add(a, scalar_like(a, b, "add")); }
Tensor operator-(const Tensor& a, double b) { return sub(a, scalar_like(a, b, "sub")); }
Tensor operator*(const Tensor& a, double b) { return mul(a, scalar_like(a, b, "mul")); }
Tensor operator/(const Tensor& a, double b) { return div(a, scalar_like(a, b, "div")); }
Tensor operator+(double a, const Tensor& b) { return add(scalar_like(b, a, "add"), b); }
Tensor operator-(double a, const Tensor& b) { return sub(scalar_like(b, a, "sub"), b); }
Tensor operator*(double a, const Tensor& b) { return mul(scalar_like(b, a, "mul"), b); }
Tensor operator/(double a, const Tensor& b) { return div(scalar_like(b, a, "div"), b); }

}  // namespace kiln
