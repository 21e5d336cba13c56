// Shared test helpers: value comparison with a readable failure, gradcheck wrapper,
// and error-message assertions.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include <kiln/kiln.h>

namespace kiln::testing {

// Every element of t is within atol + rtol*|expected| of `expected` (row-major).
inline void check_values(const Tensor& t, const std::vector<double>& expected, double atol = 1e-5,
                         double rtol = 1e-5) {
  REQUIRE(t.defined());
  const std::vector<double> got = t.to_vector<double>();
  REQUIRE_MESSAGE(got.size() == expected.size(), "size ", got.size(), " vs expected ", expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    const bool same_nonfinite = std::isnan(got[i]) && std::isnan(expected[i]);
    const bool close = std::fabs(got[i] - expected[i]) <= atol + rtol * std::fabs(expected[i]);
    CHECK_MESSAGE((same_nonfinite || close || got[i] == expected[i]), "element ", i, ": got ", got[i],
                  ", expected ", expected[i]);
  }
}

// Two tensors hold the same values (shape must match).
inline void check_close(const Tensor& a, const Tensor& b, double atol = 1e-5, double rtol = 1e-5) {
  REQUIRE(a.shape() == b.shape());
  check_values(a, b.to_vector<double>(), atol, rtol);
}

// gradcheck must pass; prints the worst element on failure.
inline void check_gradients(const GradcheckFn& fn, const std::vector<Tensor>& inputs, GradcheckOptions opts = {}) {
  const GradcheckResult r = gradcheck(fn, inputs, opts);
  CHECK_MESSAGE(r.ok, r.message);
}

// An f64 leaf with deterministic random values, for gradchecks.
inline Tensor leaf64(const Shape& shape, double scale = 1.0) {
  return (randn(shape, {.dtype = f64}) * scale).requires_grad_();
}

}  // namespace kiln::testing

// Asserts that `expr` throws kiln::Error whose message contains `substring`.
#define CHECK_THROWS_KILN(expr, substring) \
  CHECK_THROWS_WITH_AS(expr, doctest::Contains(substring), ::kiln::Error)
