// GPU instantiations of the two- and three-input functors (ops/functors.h's
// KILN_BINARY_FUNCTORS, KILN_PREDICATE_FUNCTORS, and Select for where), for cuda::map.
#include "kiln/cuda/map.cuh"
#include "kiln/ops/functors.h"

namespace kiln::cuda {

using Shape = std::vector<int64_t>;

#define KILN_MAP_BINARY(F, T)                                                                              \
  template void map<ops::fn::F, T, T, T>(const ops::fn::F&, Strided<T>, const Shape&, int, Strided<const T>, \
                                         Strided<const T>);
#define KILN_BINARY(F, TYPES) KILN_CUDA_FOR_##TYPES(KILN_MAP_BINARY, F)
KILN_BINARY_FUNCTORS(KILN_BINARY)

#define KILN_MAP_PREDICATE(F, T)                                                                                 \
  template void map<ops::fn::F, uint8_t, T, T>(const ops::fn::F&, Strided<uint8_t>, const Shape&, int,           \
                                               Strided<const T>, Strided<const T>);
#define KILN_PREDICATE(F, TYPES) KILN_CUDA_FOR_##TYPES(KILN_MAP_PREDICATE, F)
KILN_PREDICATE_FUNCTORS(KILN_PREDICATE)

#define KILN_MAP_SELECT(F, T)                                                                                    \
  template void map<ops::fn::F, T, uint8_t, T, T>(const ops::fn::F&, Strided<T>, const Shape&, int,              \
                                                  Strided<const uint8_t>, Strided<const T>, Strided<const T>);
KILN_CUDA_FOR_NUMERIC(KILN_MAP_SELECT, Select)

}  // namespace kiln::cuda
