// GELU kernels, forward and backward, on contiguous buffers.
//
// Each is one pass over memory: the forward reads x and writes y; the backward reads x
// and the output gradient g and writes dx = g * gelu'(x), with no temporary. Both run
// OpenMP-parallel over blocks above kParallelThreshold, and vectorised inside a block:
// the f32 versions are plain arithmetic (fast_exp and a polynomial erfc) that GCC turns
// into AVX-512; the f64 ones call std::exp / std::erfc, as f64 is for gradcheck.
// Accuracy is stated in activation.cpp.
#pragma once

#include <cstdint>

namespace kiln::cpu {

enum class GeluApproximation {
  none,  // exact: x * Phi(x), Phi the standard normal CDF
  tanh,  // GPT-2's x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
};

// y[i] = gelu(x[i]) for i < n.
template <class T>
void gelu_forward(const T* x, T* y, int64_t n, GeluApproximation approximation);

// dx[i] = g[i] * gelu'(x[i]) for i < n.
template <class T>
void gelu_backward(const T* x, const T* g, T* dx, int64_t n, GeluApproximation approximation);

}  // namespace kiln::cpu
