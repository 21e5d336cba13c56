#include "kiln/core/random.h"

#include <mutex>

namespace kiln {

namespace {
std::mutex g_mutex;
GeneratorState g_state{0x853c49e6748fea9bull, 0};  // a fixed default seed: runs are reproducible
}  // namespace

GeneratorState Generator::reserve(uint64_t blocks) {
  std::lock_guard<std::mutex> lock(g_mutex);
  const GeneratorState reserved = g_state;
  g_state.offset += blocks;
  return reserved;
}

uint64_t Generator::seed() const {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_state.seed;
}

GeneratorState Generator::state() const {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_state;
}

void Generator::set_state(GeneratorState s) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_state = s;
}

Generator& default_generator() {
  static Generator g;
  return g;
}

void manual_seed(uint64_t seed) { default_generator().set_state({seed, 0}); }

}  // namespace kiln
