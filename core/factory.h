// Tensor factories, named as in PyTorch. Options use designated initializers:
//   Tensor w = randn({64, 784}, {.dtype = f64, .requires_grad = true});
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "kiln/core/tensor.h"

namespace kiln {

// dtype unset means the factory's natural default: f32, i64 for randint, and the
// element type for from_vector.
struct TensorOptions {
  std::optional<DType> dtype;
  Device device = Device::cpu();
  bool requires_grad = false;
};

Tensor empty(const Shape& shape, TensorOptions opts = {});
Tensor zeros(const Shape& shape, TensorOptions opts = {});
Tensor ones(const Shape& shape, TensorOptions opts = {});
Tensor full(const Shape& shape, double value, TensorOptions opts = {});
Tensor scalar_tensor(double value, TensorOptions opts = {});  // a 0-d tensor
// [start, end) in steps of `step`; dtype defaults to f32 (pass i64 for indices).
Tensor arange(double start, double end, double step = 1, TensorOptions opts = {});
Tensor arange(double end, TensorOptions opts = {});
Tensor linspace(double start, double end, int64_t steps, TensorOptions opts = {});
Tensor eye(int64_t n, TensorOptions opts = {});

// Random factories draw from the default generator (see manual_seed).
Tensor rand(const Shape& shape, TensorOptions opts = {});   // U[0, 1)
Tensor randn(const Shape& shape, TensorOptions opts = {});  // N(0, 1)
Tensor normal(double mean, double std, const Shape& shape, TensorOptions opts = {});
Tensor uniform(double low, double high, const Shape& shape, TensorOptions opts = {});
// Integers in [low, high); dtype defaults to i64.
Tensor randint(int64_t low, int64_t high, const Shape& shape, TensorOptions opts = {});

// Copies `values` into a new tensor of `shape` (values.size() must equal its numel),
// converting to opts.dtype when given.
template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, TensorOptions opts = {});
// A 1-D tensor from a vector.
template <class T>
Tensor from_vector(const std::vector<T>& values, TensorOptions opts = {}) {
  return from_vector(values, Shape{static_cast<int64_t>(values.size())}, opts);
}
// Wraps caller-owned contiguous memory without copying; the caller keeps it alive.
Tensor from_blob(void* data, const Shape& shape, DType dtype, Device device = Device::cpu());

Tensor empty_like(const Tensor& t);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);
Tensor rand_like(const Tensor& t);
Tensor randn_like(const Tensor& t);

}  // namespace kiln
