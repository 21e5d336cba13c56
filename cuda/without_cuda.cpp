// The cuda:: entry points of a build without the CUDA backend (KILN_CUDA=OFF or no
// toolkit found). Compiled instead of the cuda/*.cu sources, so device.h needs no #ifdef.
#include "kiln/core/error.h"
#include "kiln/cuda/device.h"

namespace kiln::cuda {

namespace {
constexpr const char* kNotBuilt = "kiln was built without CUDA";
}

bool is_built() { return false; }

bool is_available() { return false; }

int device_count() { return 0; }

std::string device_name(int index) { throw Error(detail::str("cuda::device_name: ", kNotBuilt)); }

std::string unavailable_reason() { return kNotBuilt; }

}  // namespace kiln::cuda
