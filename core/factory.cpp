#include "kiln/core/factory.h"

#include <cmath>

#include "kiln/core/dispatch.h"
#include "kiln/core/random.h"

namespace kiln {

namespace {

DType dtype_or(const TensorOptions& o, DType fallback) { return o.dtype.value_or(fallback); }

// A factory checks its sizes first, so that the message names it: "zeros: invalid shape
// [2, -3]: ..." (numel_of, which would catch them later, knows no op name).
void check_sizes(const char* op, const Shape& shape) {
  for (int64_t s : shape)
    KILN_CHECK(s >= 0, op, ": invalid shape ", shape_str(shape), ": sizes must be non-negative");
}

// Allocates on CPU, runs `fill(T* out, n)`, then moves to the requested device.
template <class Fill>
Tensor make_on_cpu(const Shape& shape, const TensorOptions& opts, DType dtype, const char* op,
                   Fill&& fill) {
  Tensor t = empty(shape, {.dtype = dtype});
  const int64_t n = t.numel();
  dispatch_all(dtype, op, [&]<class T>() {
    if constexpr (std::is_same_v<T, bfloat16> || std::is_same_v<T, float16>) {
      // Compute in f32, then convert: 16-bit floats are storage types.
      std::vector<float> tmp(static_cast<size_t>(n));
      fill(tmp.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        if constexpr (std::is_same_v<T, bfloat16>) t.data<T>()[i] = float_to_bf16(tmp[i]);
        else t.data<T>()[i] = float_to_f16(tmp[i]);
      }
    } else {
      fill(t.data<T>(), n);
    }
  });
  if (!opts.device.is_cpu()) t = t.to(opts.device);
  if (opts.requires_grad) t.requires_grad_(true);
  return t;
}

}  // namespace

Tensor empty(const Shape& shape, TensorOptions opts) {
  check_sizes("empty", shape);
  const DType dtype = dtype_or(opts, f32);
  const int64_t n = numel_of(shape);  // validates sizes
  auto storage = std::make_shared<Storage>(static_cast<size_t>(n) * element_size(dtype), opts.device);
  Tensor t = make_tensor(std::move(storage), shape, contiguous_strides(shape), 0, dtype);
  if (opts.requires_grad) t.requires_grad_(true);
  return t;
}

Tensor full(const Shape& shape, double value, TensorOptions opts) {
  check_sizes("full", shape);
  Tensor t = empty(shape, {.dtype = dtype_or(opts, f32), .device = opts.device});
  t.fill_(value);
  if (opts.requires_grad) t.requires_grad_(true);
  return t;
}
Tensor zeros(const Shape& shape, TensorOptions opts) {
  check_sizes("zeros", shape);
  return full(shape, 0.0, opts);
}
Tensor ones(const Shape& shape, TensorOptions opts) {
  check_sizes("ones", shape);
  return full(shape, 1.0, opts);
}
Tensor scalar_tensor(double value, TensorOptions opts) { return full({}, value, opts); }

Tensor arange(double start, double end, double step, TensorOptions opts) {
  KILN_CHECK(step != 0, "arange: step must be non-zero");
  KILN_CHECK(std::isfinite(start) && std::isfinite(end) && std::isfinite(step),
             "arange: start, end and step must be finite");
  const double count = std::ceil((end - start) / step);
  const int64_t n = count > 0 ? static_cast<int64_t>(count) : 0;
  return make_on_cpu({n}, opts, dtype_or(opts, f32), "arange", [&](auto* out, int64_t len) {
    using T = std::remove_pointer_t<decltype(out)>;
    for (int64_t i = 0; i < len; ++i) out[i] = static_cast<T>(start + static_cast<double>(i) * step);
  });
}
Tensor arange(double end, TensorOptions opts) { return arange(0, end, 1, opts); }

Tensor linspace(double start, double end, int64_t steps, TensorOptions opts) {
  KILN_CHECK(steps >= 0, "linspace: steps must be non-negative, got ", steps);
  return make_on_cpu({steps}, opts, dtype_or(opts, f32), "linspace", [&](auto* out, int64_t n) {
    using T = std::remove_pointer_t<decltype(out)>;
    const double delta = n > 1 ? (end - start) / static_cast<double>(n - 1) : 0.0;
    // Fill symmetric from both ends so the last value is exactly `end`, as PyTorch does.
    for (int64_t i = 0; i < n; ++i)
      out[i] = static_cast<T>(i < n / 2 ? start + delta * static_cast<double>(i)
                                        : end - delta * static_cast<double>(n - 1 - i));
  });
}

Tensor eye(int64_t n, TensorOptions opts) {
  KILN_CHECK(n >= 0, "eye: n must be non-negative, got ", n);
  return make_on_cpu({n, n}, opts, dtype_or(opts, f32), "eye", [&](auto* out, int64_t len) {
    using T = std::remove_pointer_t<decltype(out)>;
    for (int64_t i = 0; i < len; ++i) out[i] = static_cast<T>(i / n == i % n ? 1 : 0);
  });
}

// ---- random ------------------------------------------------------------------------
// Each element k takes its bits from Philox block (offset + k): independent of thread
// count and of the order elements are filled in.

Tensor uniform(double low, double high, const Shape& shape, TensorOptions opts) {
  check_sizes("uniform", shape);
  KILN_CHECK(low <= high, "uniform: low (", low, ") must be <= high (", high, ")");
  const DType dtype = dtype_or(opts, f32);
  KILN_CHECK(is_floating(dtype), "uniform: dtype must be floating, got ", dtype_name(dtype));
  const GeneratorState g = default_generator().reserve(static_cast<uint64_t>(numel_of(shape)));
  return make_on_cpu(shape, opts, dtype, "uniform", [&](auto* out, int64_t n) {
    using T = std::remove_pointer_t<decltype(out)>;
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; ++i) {
      const auto b = Philox::block(g.seed, g.offset + static_cast<uint64_t>(i));
      out[i] = static_cast<T>(low + (high - low) * Philox::to_unit_double(b[0], b[1]));
    }
  });
}
Tensor rand(const Shape& shape, TensorOptions opts) {
  check_sizes("rand", shape);
  return uniform(0, 1, shape, opts);
}

Tensor normal(double mean, double std, const Shape& shape, TensorOptions opts) {
  check_sizes("normal", shape);
  KILN_CHECK(std >= 0, "normal: std must be non-negative, got ", std);
  const DType dtype = dtype_or(opts, f32);
  KILN_CHECK(is_floating(dtype), "normal: dtype must be floating, got ", dtype_name(dtype));
  const GeneratorState g = default_generator().reserve(static_cast<uint64_t>(numel_of(shape)));
  return make_on_cpu(shape, opts, dtype, "normal", [&](auto* out, int64_t n) {
    using T = std::remove_pointer_t<decltype(out)>;
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; ++i) {
      // Box-Muller on two uniform doubles; u1 in (0, 1] so log() is finite.
      const auto b = Philox::block(g.seed, g.offset + static_cast<uint64_t>(i));
      const double u1 = 1.0 - Philox::to_unit_double(b[0], b[1]);
      const double u2 = Philox::to_unit_double(b[2], b[3]);
      const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
      out[i] = static_cast<T>(mean + std * z);
    }
  });
}
Tensor randn(const Shape& shape, TensorOptions opts) {
  check_sizes("randn", shape);
  return normal(0, 1, shape, opts);
}

Tensor randint(int64_t low, int64_t high, const Shape& shape, TensorOptions opts) {
  check_sizes("randint", shape);
  KILN_CHECK(low < high, "randint: low (", low, ") must be < high (", high, ")");
  const GeneratorState g = default_generator().reserve(static_cast<uint64_t>(numel_of(shape)));
  const uint64_t range = static_cast<uint64_t>(high - low);
  return make_on_cpu(shape, opts, dtype_or(opts, i64), "randint", [&](auto* out, int64_t n) {
    using T = std::remove_pointer_t<decltype(out)>;
    for (int64_t i = 0; i < n; ++i) {
      const auto b = Philox::block(g.seed, g.offset + static_cast<uint64_t>(i));
      const uint64_t bits = (static_cast<uint64_t>(b[0]) << 32) | b[1];
      out[i] = static_cast<T>(low + static_cast<int64_t>(bits % range));  // bias < 2^-32 for small ranges
    }
  });
}

// ---- from host data -------------------------------------------------------------------

template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, TensorOptions opts) {
  check_sizes("from_vector", shape);
  const int64_t n = numel_of(shape);
  KILN_CHECK(static_cast<int64_t>(values.size()) == n, "from_vector: ", values.size(),
             " values do not fill shape ", shape_str(shape), " (", n, " elements)");
  // bool and uint8_t (how kiln stores bools) give masks; other integers give i64.
  constexpr bool is_mask = std::is_same_v<T, bool> || std::is_same_v<T, uint8_t>;
  const DType natural = std::is_same_v<T, double> ? f64 : is_mask ? b8 : std::is_integral_v<T> ? i64 : f32;
  return make_on_cpu(shape, opts, dtype_or(opts, natural), "from_vector", [&](auto* out, int64_t len) {
    using U = std::remove_pointer_t<decltype(out)>;
    for (int64_t i = 0; i < len; ++i) out[i] = static_cast<U>(values[static_cast<size_t>(i)]);
  });
}
template Tensor from_vector<float>(const std::vector<float>&, const Shape&, TensorOptions);
template Tensor from_vector<double>(const std::vector<double>&, const Shape&, TensorOptions);
template Tensor from_vector<int64_t>(const std::vector<int64_t>&, const Shape&, TensorOptions);
template Tensor from_vector<int>(const std::vector<int>&, const Shape&, TensorOptions);
template Tensor from_vector<bool>(const std::vector<bool>&, const Shape&, TensorOptions);
template Tensor from_vector<uint8_t>(const std::vector<uint8_t>&, const Shape&, TensorOptions);

Tensor from_blob(void* data, const Shape& shape, DType dtype, Device device) {
  check_sizes("from_blob", shape);
  const int64_t n = numel_of(shape);
  auto storage = std::make_shared<Storage>(data, static_cast<size_t>(n) * element_size(dtype), device,
                                           std::function<void(void*)>{});
  return make_tensor(std::move(storage), shape, contiguous_strides(shape), 0, dtype);
}

Tensor empty_like(const Tensor& t) { return empty(t.shape(), {.dtype = t.dtype(), .device = t.device()}); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), {.dtype = t.dtype(), .device = t.device()}); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), {.dtype = t.dtype(), .device = t.device()}); }
Tensor full_like(const Tensor& t, double v) {
  return full(t.shape(), v, {.dtype = t.dtype(), .device = t.device()});
}
Tensor rand_like(const Tensor& t) { return rand(t.shape(), {.dtype = t.dtype(), .device = t.device()}); }
Tensor randn_like(const Tensor& t) { return randn(t.shape(), {.dtype = t.dtype(), .device = t.device()}); }

}  // namespace kiln
