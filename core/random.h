// Seedable random numbers. kiln uses the counter-based Philox4x32-10 generator
// (Salmon et al., SC'11), as cuRAND and PyTorch's CUDA backend do: the value at
// position k of a stream depends only on (seed, k), so a tensor can be filled in
// parallel, on any backend, and still be reproducible from manual_seed().
#pragma once

#include <array>
#include <cstdint>

#include "kiln/core/host_device.h"

namespace kiln {

// Compiled for both backends (KILN_HOST_DEVICE), so a CUDA kernel draws exactly the
// numbers the CPU kernel draws for the same (seed, counter): dropout masks match.
struct Philox {
  KILN_HOST_DEVICE static std::array<uint32_t, 4> block(uint64_t seed, uint64_t counter) {
    uint32_t key0 = static_cast<uint32_t>(seed), key1 = static_cast<uint32_t>(seed >> 32);
    uint32_t c0 = static_cast<uint32_t>(counter), c1 = static_cast<uint32_t>(counter >> 32);
    uint32_t c2 = 0, c3 = 0;
    for (int round = 0; round < 10; ++round) {
      const uint64_t p0 = uint64_t{0xD2511F53u} * c0, p1 = uint64_t{0xCD9E8D57u} * c2;
      const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ key0;
      const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ key1;
      c1 = static_cast<uint32_t>(p1);
      c3 = static_cast<uint32_t>(p0);
      c0 = n0;
      c2 = n2;
      key0 += 0x9E3779B9u;
      key1 += 0xBB67AE85u;
    }
    return {c0, c1, c2, c3};
  }
  // Uniform float in [0, 1) from 24 random bits (never returns 1).
  KILN_HOST_DEVICE static float to_unit_float(uint32_t x) { return static_cast<float>(x >> 8) * (1.0f / 16777216.0f); }
  // Uniform double in [0, 1) from 53 random bits.
  KILN_HOST_DEVICE static double to_unit_double(uint32_t hi, uint32_t lo) {
    const uint64_t bits = (static_cast<uint64_t>(hi) << 21) ^ (lo >> 11);
    return static_cast<double>(bits & ((uint64_t{1} << 53) - 1)) * (1.0 / 9007199254740992.0);
  }
};

// The state of one device's generator: a seed and how many Philox blocks were used.
struct GeneratorState {
  uint64_t seed = 0;
  uint64_t offset = 0;
};

// The CPU generator, shared by all threads (reservation is atomic).
class Generator {
 public:
  // Reserves `blocks` Philox counters; returns {seed, first counter}. The caller fills
  // from Philox::block(r.seed, r.offset + k) for k < blocks.
  GeneratorState reserve(uint64_t blocks);
  uint64_t seed() const;
  GeneratorState state() const;
  void set_state(GeneratorState s);
};

Generator& default_generator();
// Seeds every generator kiln has; the same seed gives the same run.
void manual_seed(uint64_t seed);

}  // namespace kiln
