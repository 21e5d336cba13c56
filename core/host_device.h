// KILN_HOST_DEVICE marks a small function (an elementwise functor's operator(), a
// numeric helper) that both backends compile: g++ for the CPU loops and nvcc for the
// CUDA kernels, so each op's math is written once. Under g++ it expands to nothing.
#pragma once

#if defined(__CUDACC__)
#define KILN_HOST_DEVICE __host__ __device__
#else
#define KILN_HOST_DEVICE
#endif
