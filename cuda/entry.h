// KILN_CUDA_ENTRY declares a function of the CUDA backend that ops/*.cpp calls: a kernel
// launcher on raw device pointers (kernels never see a Tensor, DESIGN §1).
//
//   KILN_CUDA_ENTRY(void softmax_forward(const float* x, float* y, int64_t rows, int64_t cols, int device))
//
// With the backend built (KILN_WITH_CUDA), this is a plain declaration and a .cu file
// defines it. Without it, the same line defines an inline body that throws
// kiln::Error("... kiln was built without CUDA"): one declaration per launcher and no
// second list of stubs to keep in step. In a CPU-only build no tensor can reach a GPU
// (allocation already throws), so the bodies exist only to link. Templates work too:
// `template <class T> KILN_CUDA_ENTRY(void f(const T* x, ...))`, with the .cu file
// instantiating the element types it supports.
#pragma once

namespace kiln::cuda::detail {
// Throws kiln::Error("<signature>: kiln was built without CUDA").
[[noreturn]] void throw_not_built(const char* signature);
}  // namespace kiln::cuda::detail

#ifdef KILN_WITH_CUDA
#define KILN_CUDA_ENTRY(...) __VA_ARGS__;
#else
#define KILN_CUDA_ENTRY(...) \
  inline __VA_ARGS__ { ::kiln::cuda::detail::throw_not_built(#__VA_ARGS__); }
#endif
