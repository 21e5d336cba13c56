// core/: dtypes and 16-bit conversions, factories, RNG reproducibility, element
// access, printing, and the errors for bad shapes.
#include <cmath>
#include <limits>

#include "helpers.h"

using namespace kiln;
using namespace kiln::testing;

TEST_CASE("bf16 and f16 conversions round to nearest even and keep specials") {
  // bf16: 1 + 2^-8 is exactly halfway between 1 and 1 + 2^-7: ties to even -> 1.
  CHECK(bf16_to_float(float_to_bf16(1.0f + 1.0f / 256)) == 1.0f);
  CHECK(bf16_to_float(float_to_bf16(1.0f + 3.0f / 256)) == 1.0f + 4.0f / 256);
  CHECK(std::isnan(bf16_to_float(float_to_bf16(std::nanf("")))));
  CHECK(std::isinf(bf16_to_float(float_to_bf16(std::numeric_limits<float>::infinity()))));
  // f16: exact values survive, overflow saturates to inf, subnormals are kept.
  for (float v : {0.0f, -2.5f, 1024.0f, 65504.0f, 0.000061035156f /* 2^-14 */})
    CHECK(f16_to_float(float_to_f16(v)) == v);
  CHECK(f16_to_float(float_to_f16(5.9604645e-8f)) == 5.9604645e-8f);  // smallest subnormal, 2^-24
  CHECK(f16_to_float(float_to_f16(2e-8f)) == 0.0f);                   // below half of it: zero
  CHECK(std::isinf(f16_to_float(float_to_f16(70000.0f))));
  CHECK(f16_to_float(float_to_f16(1.0f + 1.0f / 2048)) == 1.0f);  // halfway: ties to even
  CHECK(f16_to_float(float_to_f16(1.0f + 3.0f / 2048)) == 1.0f + 4.0f / 2048);
  CHECK(std::isnan(f16_to_float(float_to_f16(std::nanf("")))));
}

TEST_CASE("tensors convert between dtypes, including 16-bit storage types") {
  Tensor x = from_vector<float>({1.5f, -2.25f, 3.0f});
  check_values(x.to(f64), {1.5, -2.25, 3.0});
  check_values(x.to(bf16).to(f32), {1.5, -2.25, 3.0});
  check_values(x.to(f16).to(f32), {1.5, -2.25, 3.0});
  check_values(x.to(i64), {1, -2, 3});
  check_values(x.to(b8), {1, 1, 1});
  CHECK(x.to(bf16).dtype() == bf16);
  CHECK_THROWS_KILN(exp(x.to(bf16)), "storage type");
}

TEST_CASE("factories fill as documented") {
  check_values(zeros({2, 2}), {0, 0, 0, 0});
  check_values(ones({3}, {.dtype = i64}), {1, 1, 1});
  check_values(full({2}, 7.5), {7.5, 7.5});
  check_values(arange(0, 5, 2), {0, 2, 4});
  check_values(arange(3, {.dtype = i64}), {0, 1, 2});
  check_values(linspace(0, 1, 5), {0, 0.25, 0.5, 0.75, 1});
  check_values(eye(2), {1, 0, 0, 1});
  CHECK(scalar_tensor(2.0).dim() == 0);
  CHECK(scalar_tensor(2.0).item<double>() == 2.0);
  CHECK(empty({0, 3}).numel() == 0);
  Tensor fv = from_vector<int64_t>({1, 2, 3, 4}, {2, 2});
  CHECK(fv.dtype() == i64);
  CHECK(fv.shape() == Shape{2, 2});
  CHECK(zeros_like(fv).dtype() == i64);
}

TEST_CASE("from_blob wraps caller memory without copying") {
  float buf[4] = {1, 2, 3, 4};
  Tensor t = from_blob(buf, {2, 2}, f32);
  buf[3] = 40;
  check_values(t, {1, 2, 3, 40});
}

TEST_CASE("random factories are reproducible from manual_seed and have the right moments") {
  manual_seed(123);
  Tensor a = randn({10000});
  manual_seed(123);
  Tensor b = randn({10000});
  CHECK(a.to_vector<float>() == b.to_vector<float>());
  CHECK(randn({4}).to_vector<float>() != randn({4}).to_vector<float>());  // the stream advances

  const double m = mean(a).item<double>(), s = kiln::std(a, {}).item<double>();
  CHECK(std::fabs(m) < 0.05);
  CHECK(std::fabs(s - 1.0) < 0.05);
  Tensor u = rand({10000}, {.dtype = f64});
  const std::vector<double> uv = u.to_vector<double>();
  CHECK(*std::min_element(uv.begin(), uv.end()) >= 0.0);
  CHECK(*std::max_element(uv.begin(), uv.end()) < 1.0);
  CHECK(std::fabs(mean(u).item<double>() - 0.5) < 0.02);
  Tensor r = randint(-3, 4, {10000});
  const std::vector<int64_t> rv = r.to_vector<int64_t>();
  CHECK(*std::min_element(rv.begin(), rv.end()) == -3);
  CHECK(*std::max_element(rv.begin(), rv.end()) == 3);
  Tensor n = normal(5.0, 0.5, {10000});
  CHECK(std::fabs(mean(n).item<double>() - 5.0) < 0.05);
}

TEST_CASE("bad shapes and arguments are clear errors") {
  CHECK_THROWS_KILN(zeros({2, -1}), "sizes must be non-negative");
  CHECK_THROWS_KILN(from_vector<float>({1, 2, 3}, {2, 2}), "do not fill shape [2, 2]");
  CHECK_THROWS_KILN(arange(0, 1, 0), "step must be non-zero");
  CHECK_THROWS_KILN(randint(3, 3, {2}), "must be < high");
  CHECK_THROWS_KILN(zeros({2}).item<float>(), "one element");
  CHECK_THROWS_KILN(zeros({2}).data<double>(), "dtype f32");
  CHECK_THROWS_KILN(zeros({1 << 30, 1 << 30, 1 << 30}), "overflows");
  CHECK_THROWS_KILN(Tensor().shape(), "undefined");
  CHECK_THROWS_KILN(zeros({2}).to(Device::cuda()), "CUDA");
}

TEST_CASE("to_vector follows strides of any view") {
  Tensor x = arange(6, {.dtype = f64}).view({2, 3});
  check_values(x.t(), {0, 3, 1, 4, 2, 5});
  check_values(x.select(1, 2), {2, 5});
}

TEST_CASE("printing looks like PyTorch's repr") {
  CHECK(from_vector<float>({1.0f, 2.5f}).str() == "tensor([1.0000, 2.5000])");
  CHECK(from_vector<float>({1.0f, 2.0f, 3.0f, 4.0f}, {2, 2}).str() == "tensor([[1., 2.],\n        [3., 4.]])");
  CHECK(from_vector<int64_t>({3, -1}).str() == "tensor([ 3, -1])");
  CHECK(scalar_tensor(2.0, {.dtype = f64}).str() == "tensor(2., dtype=f64)");
  Tensor w = from_vector<double>({1.0}).requires_grad_();
  CHECK(w.str() == "tensor([1.], dtype=f64, requires_grad=True)");
  CHECK((w * 2.0).str().find("grad_fn=<mul>") != std::string::npos);
  const std::string big = arange(2000).str();  // summarised with "..."
  CHECK(big.find("...") != std::string::npos);
  CHECK(big.size() < 200);
}

TEST_CASE("a shape whose strides overflow int64 is refused, even with no elements") {
  // [0, 2^62, 4]: 0 elements, but dim 0's stride would be 2^64.
  CHECK_THROWS_KILN(empty({0, int64_t{1} << 62, 4}), "strides overflow int64");
  CHECK(empty({0, int64_t{1} << 61, 2}).numel() == 0);  // stride 2^62 still fits
}
