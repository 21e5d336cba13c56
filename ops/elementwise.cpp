// Elementwise ops. Each op: forward as a one-line map (ops/map.h), then its backward
// rule right below, written with Tensor ops (so double backward works).
#include "kiln/ops/elementwise.h"

#include <cmath>

#include "kiln/autograd/node.h"
#include "kiln/ops/map.h"
#include "kiln/ops/reduce.h"

namespace kiln {

using autograd::Grads;
using autograd::Saved;
using ops::map_binary;
using ops::map_unary;

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
  Tensor out = map_binary("add", a, b, [](auto x, auto y) { return x + y; });
  autograd::record("add", out, {a, b}, {}, [sa = a.shape(), sb = b.shape()](const Tensor& g, const Saved& s) {
    return Grads{s.needs_grad(0) ? sum_to(g, sa) : Tensor(), s.needs_grad(1) ? sum_to(g, sb) : Tensor()};
  });
  return out;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = map_binary("sub", a, b, [](auto x, auto y) { return x - y; });
  autograd::record("sub", out, {a, b}, {}, [sa = a.shape(), sb = b.shape()](const Tensor& g, const Saved& s) {
    return Grads{s.needs_grad(0) ? sum_to(g, sa) : Tensor(), s.needs_grad(1) ? sum_to(neg(g), sb) : Tensor()};
  });
  return out;
}

// ---- mul / div ---------------------------------------------------------------------------

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = map_binary("mul", a, b, [](auto x, auto y) { return x * y; });
  autograd::record("mul", out, {a, b}, {a, b}, [](const Tensor& g, const Saved& s) {
    return Grads{s.needs_grad(0) ? sum_to(g * s[1], s[0].shape()) : Tensor(),
                 s.needs_grad(1) ? sum_to(g * s[0], s[1].shape()) : Tensor()};
  });
  return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = map_binary("div", a, b, [](auto x, auto y) { return x / y; });
  // d(a/b)/da = 1/b, d(a/b)/db = -a/b^2
  autograd::record("div", out, {a, b}, {a, b}, [](const Tensor& g, const Saved& s) {
    const Tensor &a = s[0], &b = s[1];
    return Grads{s.needs_grad(0) ? sum_to(g / b, a.shape()) : Tensor(),
                 s.needs_grad(1) ? sum_to(neg(g * a) / (b * b), b.shape()) : Tensor()};
  });
  return out;
}

// ---- unary ------------------------------------------------------------------------------

Tensor neg(const Tensor& x) {
  Tensor out = map_unary("neg", x, [](auto v) { return -v; }, /*numeric=*/true);
  autograd::record("neg", out, {x}, {}, [](const Tensor& g, const Saved&) { return Grads{neg(g)}; });
  return out;
}

Tensor exp(const Tensor& x) {
  Tensor out = map_unary("exp", x, [](auto v) { return std::exp(v); });
  // d exp(x) = exp(x): reuse the output rather than recomputing it.
  autograd::record("exp", out, {x}, {out}, [](const Tensor& g, const Saved& s) { return Grads{g * s[0]}; });
  return out;
}

Tensor log(const Tensor& x) {
  Tensor out = map_unary("log", x, [](auto v) { return std::log(v); });
  autograd::record("log", out, {x}, {x}, [](const Tensor& g, const Saved& s) { return Grads{g / s[0]}; });
  return out;
}

Tensor sin(const Tensor& x) {
  Tensor out = map_unary("sin", x, [](auto v) { return std::sin(v); });
  autograd::record("sin", out, {x}, {x}, [](const Tensor& g, const Saved& s) { return Grads{g * cos(s[0])}; });
  return out;
}

Tensor cos(const Tensor& x) {
  Tensor out = map_unary("cos", x, [](auto v) { return std::cos(v); });
  autograd::record("cos", out, {x}, {x}, [](const Tensor& g, const Saved& s) { return Grads{neg(g * sin(s[0]))}; });
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
