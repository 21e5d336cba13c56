// A stream of uniform random integers from Philox, keyed by a hash of (seed, stream id).
// The data readers use one stream per (seed, epoch) or (seed, step): the values depend on
// nothing else, so shuffles and samples are reproducible and resumable at any point, and
// the global generator (kiln::manual_seed) is neither used nor advanced.
#pragma once

#include <array>
#include <cstdint>

#include "kiln/core/random.h"

namespace kiln::nn::data::detail {

// SplitMix64's finaliser: a bijective mix, so nearby inputs give unrelated keys.
inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

class PhiloxStream {
 public:
  PhiloxStream(uint64_t seed, uint64_t stream_id) : key_(mix64(seed ^ mix64(stream_id))) {}

  // 64 random bits; each Philox block yields two.
  uint64_t next_u64() {
    if (left_in_block_ == 0) {
      block_ = Philox::block(key_, counter_++);
      left_in_block_ = 2;
    }
    --left_in_block_;
    const int i = 2 * left_in_block_;
    return (uint64_t{block_[i]} << 32) | block_[i + 1];
  }

  // Uniform in [0, bound), bound > 0, by Lemire's multiply-shift: the high 64 bits of a
  // 128-bit product. Its bias is below bound / 2^64, far under anything measurable here.
  uint64_t below(uint64_t bound) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next_u64()) * bound) >> 64);
  }

 private:
  uint64_t key_;
  uint64_t counter_ = 0;
  std::array<uint32_t, 4> block_{};
  int left_in_block_ = 0;
};

}  // namespace kiln::nn::data::detail
