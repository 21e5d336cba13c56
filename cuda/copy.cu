// Copies on the GPU (see copy.h): cudaMemcpyAsync for contiguous bytes, one gather
// kernel for strided tensors.
#include "kiln/cuda/copy.h"

#include <algorithm>

#include "kiln/core/error.h"
#include "kiln/cuda/check.h"
#include "kiln/cuda/device.h"
#include "kiln/cuda/stream.h"

namespace kiln::cuda {

void copy_host_to_device(void* dst, const void* src, size_t nbytes, int device) {
  if (nbytes == 0) return;
  KILN_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyHostToDevice, stream(device)));
}

void copy_device_to_host(void* dst, const void* src, size_t nbytes, int device) {
  if (nbytes == 0) return;
  cudaStream_t s = stream(device);
  KILN_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToHost, s));
  synchronize(device);  // the copy is done, and a value a check kernel found bad is reported
}

void copy_device_to_device(void* dst, int dst_device, const void* src, int src_device, size_t nbytes) {
  if (nbytes == 0) return;
  cudaStream_t s = stream(src_device);
  if (dst_device == src_device) {
    KILN_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, s));
    return;
  }
  // Queued on the source's stream, after the kernels that wrote `src`, and after the work
  // already queued on the destination's stream: `dst` may be a cached block whose previous
  // owner's kernels are still queued there. The destination stream must not touch `dst`
  // before the copy ends, so the host waits for it here.
  set_device(dst_device);
  cudaEvent_t dst_ready = nullptr;
  KILN_CUDA_CHECK(cudaEventCreateWithFlags(&dst_ready, cudaEventDisableTiming));
  cudaError_t queued = cudaEventRecord(dst_ready, stream(dst_device));
  if (queued == cudaSuccess) queued = cudaStreamWaitEvent(s, dst_ready, 0);
  cudaEventDestroy(dst_ready);  // released once the wait is satisfied
  KILN_CUDA_CHECK(queued);
  set_device(src_device);  // the source's stream, on its own device
  KILN_CUDA_CHECK(cudaMemcpyPeerAsync(dst, dst_device, src, src_device, nbytes, s));
  KILN_CUDA_CHECK(wait_for(s));
}

namespace {

// Shape and strides by value: a kernel argument, so no device-side allocation.
struct Layout {
  int64_t shape[kMaxCopyDims];
  int64_t strides[kMaxCopyDims];
  int ndim;
};

constexpr int kThreadsPerBlock = 256;
constexpr int64_t kMaxBlocks = 65535;

// One thread per output element (grid-stride): peel the row-major index into
// coordinates, last dim first, and sum coordinate x stride for the source offset.
template <class Word>
__global__ void gather_kernel(Word* __restrict__ dst, const Word* __restrict__ src, Layout layout, int64_t n) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    int64_t rest = i, offset = 0;
    for (int d = layout.ndim - 1; d >= 0; --d) {
      const int64_t coordinate = rest % layout.shape[d];
      rest /= layout.shape[d];
      offset += coordinate * layout.strides[d];
    }
    dst[i] = src[offset];
  }
}

template <class Word>
void launch_gather(void* dst, const void* src, const Layout& layout, int64_t n, cudaStream_t s) {
  const int64_t blocks = std::min((n + kThreadsPerBlock - 1) / kThreadsPerBlock, kMaxBlocks);
  gather_kernel<Word><<<static_cast<unsigned>(blocks), kThreadsPerBlock, 0, s>>>(
      static_cast<Word*>(dst), static_cast<const Word*>(src), layout, n);
  KILN_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void strided_copy(void* dst, const void* src, int64_t element_size, const int64_t* shape, const int64_t* strides,
                  int ndim, int device) {
  KILN_CHECK(ndim >= 0 && ndim <= kMaxCopyDims, "cuda copy: tensors of ", ndim, " dims are not supported (at most ",
             kMaxCopyDims, ")");
  Layout layout{};
  layout.ndim = ndim;
  int64_t n = 1;
  for (int d = 0; d < ndim; ++d) {
    layout.shape[d] = shape[d];
    layout.strides[d] = strides[d];
    n *= shape[d];
  }
  if (n == 0) return;
  cudaStream_t s = stream(device);
  switch (element_size) {
    case 1: launch_gather<uint8_t>(dst, src, layout, n, s); break;
    case 2: launch_gather<uint16_t>(dst, src, layout, n, s); break;
    case 4: launch_gather<uint32_t>(dst, src, layout, n, s); break;
    case 8: launch_gather<uint64_t>(dst, src, layout, n, s); break;
    default: throw Error(kiln::detail::str("cuda copy: element size ", element_size, " is not supported"));
  }
}

}  // namespace kiln::cuda
