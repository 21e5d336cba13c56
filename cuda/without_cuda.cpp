// The cuda:: entry points of a build without the CUDA backend (KILN_CUDA=OFF or no
// toolkit found). Compiled instead of the cuda/*.cu sources, so the public cuda/
// headers need no #ifdef: queries answer "no GPU", memory figures are zero, and
// anything that would touch a GPU throws kiln::Error.
#include <atomic>

#include "kiln/core/error.h"
#include "kiln/core/storage.h"
#include "kiln/cuda/copy.h"
#include "kiln/cuda/device.h"
#include "kiln/cuda/entry.h"
#include "kiln/cuda/memory.h"

namespace kiln::cuda {

namespace {
constexpr const char* kNotBuilt = "kiln was built without CUDA";
std::atomic<bool> g_allow_tf32{false};
}  // namespace

// The body of every KILN_CUDA_ENTRY launcher in this build (cuda/entry.h).
void detail::throw_not_built(const char* signature) { throw Error(kiln::detail::str(signature, ": ", kNotBuilt)); }

bool is_built() { return false; }

bool is_available() { return false; }

int device_count() { return 0; }

std::string device_name(int) { throw Error(kiln::detail::str("cuda::device_name: ", kNotBuilt)); }

double device_memory_bandwidth(int) {
  throw Error(kiln::detail::str("cuda::device_memory_bandwidth: ", kNotBuilt));
}

std::string unavailable_reason() { return kNotBuilt; }

void synchronize(int) { throw Error(kiln::detail::str("cuda::synchronize: ", kNotBuilt)); }

void wait_for_all_devices() noexcept {}  // no device can have been used
int64_t host_wait_count() { return 0; }

// A setting with no GPU to apply it to: kept, so a program that sets it runs anywhere.
void set_allow_tf32(bool allow) { g_allow_tf32.store(allow); }
bool allow_tf32() { return g_allow_tf32.load(); }

MemoryStats memory_stats(int) { return {}; }

void reset_peak_memory_stats(int) {}

void empty_cache() {}

bool caching_enabled() { return true; }  // nothing to cache, and nothing turned off

void copy_host_to_device(void*, const void*, size_t, int) { throw Error(kiln::detail::str("cuda copy: ", kNotBuilt)); }

void copy_device_to_host(void*, const void*, size_t, int) { throw Error(kiln::detail::str("cuda copy: ", kNotBuilt)); }

void copy_device_to_device(void*, int, const void*, int, size_t) {
  throw Error(kiln::detail::str("cuda copy: ", kNotBuilt));
}

void strided_copy(void*, const void*, int64_t, const int64_t*, const int64_t*, int, int) {
  throw Error(kiln::detail::str("cuda copy: ", kNotBuilt));
}

}  // namespace kiln::cuda

namespace kiln {

void* cuda_allocate(size_t nbytes, int device) {
  throw Error(kiln::detail::str("cannot allocate ", nbytes, " bytes on cuda:", device, ": ", cuda::kNotBuilt));
}

// Nothing was ever allocated on a GPU in this build.
void cuda_free(void*, size_t, int) noexcept {}

}  // namespace kiln
