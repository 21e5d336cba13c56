// dtype conversion on the GPU (cuda::cast): the same rules as the CPU's
// cpu::cast_element (ops/cpu/cast.h), written with CUDA's conversion intrinsics.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kiln/core/dtype.h"
#include "kiln/cuda/map.cuh"

namespace kiln::cuda {

namespace {

template <class T>
__device__ float to_float_value(T v) {
  if constexpr (std::is_same_v<T, bfloat16>) return __uint_as_float(static_cast<uint32_t>(v.bits) << 16);
  else if constexpr (std::is_same_v<T, float16>) return __half2float(__ushort_as_half(v.bits));
  else return static_cast<float>(v);
}

// One element of S converted to D: 16-bit floats go through f32 and round to nearest
// even; bool (uint8_t) is "any non-zero".
template <class D>
struct CastTo {
  template <class S>
  __device__ D operator()(S v) const {
    if constexpr (std::is_same_v<D, S>) {
      return v;
    } else if constexpr (std::is_same_v<D, bfloat16>) {
      return bfloat16{__bfloat16_as_ushort(__float2bfloat16_rn(to_float_value(v)))};
    } else if constexpr (std::is_same_v<D, float16>) {
      return float16{__half_as_ushort(__float2half_rn(to_float_value(v)))};
    } else if constexpr (std::is_same_v<D, uint8_t>) {
      if constexpr (std::is_same_v<S, bfloat16> || std::is_same_v<S, float16>) return to_float_value(v) != 0.0f;
      else return static_cast<uint8_t>(v != S(0));
    } else if constexpr (std::is_same_v<S, bfloat16> || std::is_same_v<S, float16>) {
      return static_cast<D>(to_float_value(v));
    } else {
      return static_cast<D>(v);
    }
  }
};

}  // namespace

template <class Out, class In>
void cast(Strided<Out> out, const std::vector<int64_t>& shape, int device, Strided<const In> in) {
  map(CastTo<Out>{}, out, shape, device, in);
}

#define KILN_CAST(D, S) template void cast<D, S>(Strided<D>, const std::vector<int64_t>&, int, Strided<const S>);
#define KILN_CAST_FROM(S) \
  KILN_CAST(float, S) KILN_CAST(double, S) KILN_CAST(int64_t, S) KILN_CAST(uint8_t, S) KILN_CAST(bfloat16, S) \
  KILN_CAST(float16, S)
KILN_CAST_FROM(float)
KILN_CAST_FROM(double)
KILN_CAST_FROM(int64_t)
KILN_CAST_FROM(uint8_t)
KILN_CAST_FROM(bfloat16)
KILN_CAST_FROM(float16)

}  // namespace kiln::cuda
