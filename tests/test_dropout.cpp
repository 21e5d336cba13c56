// Dropout: drop rate and scaling on a big tensor, reproducibility from manual_seed
// (independent of the thread count), eval / p = 0 / p = 1, gradients and errors.
#include <omp.h>

#include <cmath>

#include "helpers.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

double fraction_zero(const Tensor& t) {
  int64_t zeros = 0;
  for (double v : t.to_vector<double>()) zeros += v == 0.0;
  return static_cast<double>(zeros) / static_cast<double>(t.numel());
}

}  // namespace

TEST_CASE("dropout zeroes a fraction p and scales the rest by 1/(1-p)") {
  const Tensor x = ones({1000, 1000});
  for (double p : {0.1, 0.5, 0.8}) {
    CAPTURE(p);
    const Tensor y = dropout(x, p, /*training=*/true);
    // 1e6 draws: the zero fraction has a standard deviation below 5e-4.
    CHECK(std::fabs(fraction_zero(y) - p) < 0.003);
    const float scale = static_cast<float>(1.0 / (1.0 - p));
    int64_t wrongly_scaled = 0;
    for (float v : y.to_vector<float>()) wrongly_scaled += v != 0.0f && v != scale;
    CHECK(wrongly_scaled == 0);
    // Unbiased: the mean stays ~1.
    CHECK(mean(y).item<double>() == doctest::Approx(1.0).epsilon(0.01));
  }
}

TEST_CASE("dropout masks are reproducible from manual_seed and do not depend on the thread count") {
  const Tensor x = randn({300, 300});
  manual_seed(1234);
  const Tensor a = dropout(x, 0.3, true);
  const Tensor b = dropout(x, 0.3, true);  // the generator moved on: a different mask
  manual_seed(1234);
  const Tensor c = dropout(x, 0.3, true);
  CHECK(a.to_vector<float>() == c.to_vector<float>());
  CHECK(a.to_vector<float>() != b.to_vector<float>());

  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  manual_seed(1234);
  const Tensor single_thread = dropout(x, 0.3, true);
  omp_set_num_threads(threads);
  CHECK(a.to_vector<float>() == single_thread.to_vector<float>());
}

TEST_CASE("dropout is the identity in eval mode and for p = 0; p = 1 drops everything") {
  const Tensor x = randn({4, 5});
  CHECK(dropout(x, 0.5, /*training=*/false).is_same(x));
  CHECK(dropout(x, 0.0, true).is_same(x));

  const Tensor w = randn({4, 5}, {.dtype = f64}).requires_grad_();
  const Tensor y = dropout(w, 1.0, true);
  check_values(y, std::vector<double>(20, 0.0));
  sum(y).backward();
  check_values(w.grad(), std::vector<double>(20, 0.0));
}

TEST_CASE("dropout's gradient is the output gradient times the scaled mask") {
  const Tensor x = ones({64, 64}, {.dtype = f64}).requires_grad_();
  const Tensor y = dropout(x, 0.25, true);
  sum(y).backward();
  CHECK(x.grad().to_vector<double>() == y.to_vector<double>());  // x = 1: y is exactly the scaled mask
  // gradcheck with a fixed seed, so every evaluation draws the same mask.
  check_gradients(
      [](const std::vector<Tensor>& in) {
        manual_seed(99);
        return dropout(in[0], 0.4, true);
      },
      {leaf64({3, 7})});
  // Non-contiguous input: the mask lines up with the logical layout.
  const Tensor xt = randn({6, 4}, {.dtype = f64});
  manual_seed(5);
  const Tensor yt = dropout(xt.t(), 0.5, true);
  manual_seed(5);
  check_close(yt, dropout(xt.t().contiguous(), 0.5, true), 0, 0);
}

TEST_CASE("dropout rejects bad input with a clear error") {
  CHECK_THROWS_KILN(dropout(ones({3}), 1.5, true), "dropout: probability p must be in [0, 1], got 1.5");
  CHECK_THROWS_KILN(dropout(ones({3}), -0.1, true), "got -0.1");
  CHECK_THROWS_KILN(dropout(ones({3}, {.dtype = i64}), 0.5, true), "dropout: expected a floating tensor");
}
