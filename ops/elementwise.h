// Elementwise ops: unary math, binary arithmetic with NumPy broadcasting, scalar
// overloads and C++ operators, comparisons (returning bool masks), where, masked_fill.
// Binary ops need both operands to have the same dtype; a scalar takes the tensor's.
#pragma once

#include "kiln/core/tensor.h"

namespace kiln {

// ---- unary (floating) --------------------------------------------------------------
Tensor neg(const Tensor& x);  // also i64
Tensor abs(const Tensor& x);  // also i64
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor log1p(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
Tensor pow(const Tensor& x, double exponent);
// Clamps into [min, max]; pass -inf/inf to leave a side open. Gradient 0 outside.
Tensor clamp(const Tensor& x, double min, double max);

// ---- binary, broadcasting ----------------------------------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);  // a > 0 where b is non-integer
Tensor maximum(const Tensor& a, const Tensor& b);  // ties send the gradient half to each
Tensor minimum(const Tensor& a, const Tensor& b);

// A 0-d tensor holding `value` in t's dtype (throws if t is integer and value is not).
Tensor scalar_like(const Tensor& t, double value, const char* op);

Tensor operator-(const Tensor& x);
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);

// ---- comparisons: bool (b8) masks, not differentiable --------------------------------
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor eq(const Tensor& a, double b);
Tensor ne(const Tensor& a, double b);
Tensor lt(const Tensor& a, double b);
Tensor le(const Tensor& a, double b);
Tensor gt(const Tensor& a, double b);
Tensor ge(const Tensor& a, double b);

// ---- selection ------------------------------------------------------------------------
// cond ? a : b elementwise, all three broadcast together; cond must be bool.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// x with `value` wherever mask (bool, broadcast to x) is true.
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);

}  // namespace kiln
