// Elementwise kernels on the GPU: out = f(in_1, ..., in_k) over N-d strided operands,
// for the named functors of ops/functors.h. What ops/map.h calls for CUDA tensors.
//
// Operands arrive like the CPU loops' (ops/cpu/loops.h): a pointer to the first element
// and strides in elements, already broadcast to the output's shape (stride 0 on a
// broadcast dim). The launcher merges back-to-back dims (ops/layout.h) and picks one of
// three kernels: vectorised 16-byte loads when every operand is one contiguous run,
// a 1-D strided loop when the merged layout has one dim, else a general N-d indexer.
#pragma once

#include <cstdint>
#include <vector>

#include "kiln/cuda/entry.h"

namespace kiln::cuda {

// One operand: its first element and its strides (in elements) over the output shape.
template <class T>
struct Strided {
  T* data;
  const int64_t* strides;
};

// out[i] = f(in[i]...) for every index i of `shape`; k = sizeof...(In) may be 0 (a fill).
// Instantiated in cuda/map.cu for the functors listed in ops/functors.h.
template <class F, class Out, class... In>
KILN_CUDA_ENTRY(void map(const F& f, Strided<Out> out, const std::vector<int64_t>& shape, int device,
                         Strided<const In>... in))

// out[i] = in[i] converted to Out (16-bit floats round to nearest even, bool is any
// non-zero), for every pair of kiln's storage types (float, double, int64_t, uint8_t for
// bool, bfloat16, float16 from core/dtype.h).
template <class Out, class In>
KILN_CUDA_ENTRY(void cast(Strided<Out> out, const std::vector<int64_t>& shape, int device, Strided<const In> in))

}  // namespace kiln::cuda
