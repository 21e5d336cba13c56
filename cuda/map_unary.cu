// GPU instantiations of the one-input functors (ops/functors.h's KILN_UNARY_FUNCTORS)
// and of the fills (no input), for cuda::map.
#include "kiln/core/dtype.h"
#include "kiln/cuda/map.cuh"
#include "kiln/ops/functors.h"

namespace kiln::cuda {

using Shape = std::vector<int64_t>;

#define KILN_MAP_UNARY(F, T) \
  template void map<ops::fn::F, T, T>(const ops::fn::F&, Strided<T>, const Shape&, int, Strided<const T>);
#define KILN_UNARY(F, TYPES) KILN_CUDA_FOR_##TYPES(KILN_MAP_UNARY, F)
KILN_UNARY_FUNCTORS(KILN_UNARY)

#define KILN_MAP_FILL(T) template void map<ops::fn::Fill<T>, T>(const ops::fn::Fill<T>&, Strided<T>, const Shape&, int);
KILN_MAP_FILL(float)
KILN_MAP_FILL(double)
KILN_MAP_FILL(int64_t)
KILN_MAP_FILL(uint8_t)
KILN_MAP_FILL(bfloat16)
KILN_MAP_FILL(float16)

}  // namespace kiln::cuda
