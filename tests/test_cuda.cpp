// CUDA backend: device queries, the CUDA error -> kiln::Error conversion, and the smoke
// kernel against a CPU result. Cases that need a GPU skip with a printed reason when
// none is visible, so the suite passes on CPU-only machines and in CPU-only builds.
#include "helpers.h"

#include <kiln/cuda/device.h>

#ifdef KILN_WITH_CUDA
#include <cuda_runtime_api.h>

#include <kiln/cuda/check.h>
#include <kiln/cuda/kernels_smoke.h>
#endif

#include <cmath>
#include <vector>

TEST_CASE("[cuda] is_built reports how kiln was compiled") {
#ifdef KILN_WITH_CUDA
  CHECK(kiln::cuda::is_built());
#else
  CHECK_FALSE(kiln::cuda::is_built());
  CHECK_FALSE(kiln::cuda::is_available());
  CHECK(kiln::cuda::device_count() == 0);
  CHECK(kiln::cuda::unavailable_reason() == "kiln was built without CUDA");
#endif
}

TEST_CASE("[cuda] availability, device count and reason agree") {
  const int count = kiln::cuda::device_count();
  CHECK(count >= 0);
  CHECK(kiln::cuda::is_available() == (count > 0));
  CHECK(kiln::cuda::unavailable_reason().empty() == (count > 0));
  for (int i = 0; i < count; ++i) {
    const std::string name = kiln::cuda::device_name(i);
    MESSAGE("cuda:", i, " is ", name);
    CHECK_FALSE(name.empty());
  }
}

TEST_CASE("[cuda] device_name rejects a device that does not exist") {
#ifdef KILN_WITH_CUDA
  const int count = kiln::cuda::device_count();
  const std::string expected = "cuda::device_name: device index " + std::to_string(count) + " is out of range";
  CHECK_THROWS_KILN(kiln::cuda::device_name(count), expected.c_str());
  CHECK_THROWS_KILN(kiln::cuda::device_name(-1), "cuda::device_name: device index -1 is out of range");
#else
  CHECK_THROWS_KILN(kiln::cuda::device_name(0), "cuda::device_name: kiln was built without CUDA");
#endif
}

#ifdef KILN_WITH_CUDA

namespace {

// True, after printing why, when a GPU case has no GPU to run on.
bool skip_without_gpu() {
  if (kiln::cuda::is_available()) return false;
  MESSAGE("skipped: ", kiln::cuda::unavailable_reason());
  return true;
}

// A float buffer in GPU memory, freed on scope exit even when a CHECK throws.
class DeviceFloats {
 public:
  explicit DeviceFloats(size_t n) : n_(n) {
    void* ptr = nullptr;
    KILN_CUDA_CHECK(cudaMalloc(&ptr, n * sizeof(float)));
    ptr_ = static_cast<float*>(ptr);
  }
  ~DeviceFloats() { cudaFree(ptr_); }
  DeviceFloats(const DeviceFloats&) = delete;
  DeviceFloats& operator=(const DeviceFloats&) = delete;

  float* get() const { return ptr_; }
  void upload(const std::vector<float>& host) {
    REQUIRE(host.size() == n_);
    KILN_CUDA_CHECK(cudaMemcpy(ptr_, host.data(), n_ * sizeof(float), cudaMemcpyHostToDevice));
  }
  std::vector<float> download() const {  // synchronises with the default stream
    std::vector<float> host(n_);
    KILN_CUDA_CHECK(cudaMemcpy(host.data(), ptr_, n_ * sizeof(float), cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  size_t n_;
  float* ptr_ = nullptr;
};

}  // namespace

TEST_CASE("[cuda] a failing runtime call becomes a kiln::Error naming the call") {
  // Works with or without a GPU: device `count` never exists (and with no driver the
  // call fails anyway), so the message must name the call and CUDA's error.
  const int count = kiln::cuda::device_count();
  CHECK_THROWS_KILN(KILN_CUDA_CHECK(cudaSetDevice(count)), "CUDA error: cudaSetDevice(count) failed with cudaError");
  // The failure was cleared: it does not resurface in the next check.
  if (count > 0) CHECK_NOTHROW(KILN_CUDA_CHECK(cudaGetLastError()));
}

TEST_CASE("[cuda] axpy kernel matches the CPU") {
  if (skip_without_gpu()) return;
  // Not a multiple of the block size, so the tail of the last block is exercised.
  const size_t n = 100'003;
  const float alpha = -1.75f;
  std::vector<float> x(n), y(n);
  for (size_t i = 0; i < n; ++i) {
    x[i] = std::sin(0.001f * float(i));
    y[i] = std::cos(0.002f * float(i));
  }
  DeviceFloats dx(n), dy(n);
  dx.upload(x);
  dy.upload(y);
  kiln::cuda::axpy(static_cast<int64_t>(n), alpha, dx.get(), dy.get());
  const std::vector<float> got = dy.download();

  // The GPU may fuse the multiply-add; one float rounding of slack covers it.
  size_t mismatches = 0;
  for (size_t i = 0; i < n; ++i) {
    const float expected = y[i] + alpha * x[i];
    if (std::fabs(got[i] - expected) > 1e-6f * (1.0f + std::fabs(expected))) ++mismatches;
  }
  CHECK(mismatches == 0);
}

TEST_CASE("[cuda] axpy with n = 0 launches nothing") {
  if (skip_without_gpu()) return;
  DeviceFloats dy(4);
  dy.upload({1, 2, 3, 4});
  kiln::cuda::axpy(0, 2.0f, dy.get(), dy.get());
  CHECK(dy.download() == std::vector<float>{1, 2, 3, 4});
}

#else

TEST_CASE("[cuda] kernel cases need the CUDA backend") {
  MESSAGE("skipped: kiln was built without CUDA (KILN_CUDA=OFF or no toolkit found)");
  CHECK_FALSE(kiln::cuda::is_available());
}

#endif
