// Emulated index-range check kernel and failure report (cuda/device_check.cu): a bad value
// is reported once, with its position and the op's words, then cleared; valid and exempt
// values pass; the grid-stride loop reaches the last element with a one-block grid; with
// bad values in different blocks (any block order) the lowest position is reported, as on
// the CPU; a failure waiting to be raised is not overwritten by a later check's;
// check_positive refuses 0, negatives and NaN.
#include <stdexcept>

#include "common.h"
#include "kiln/core/error.h"
#include "kiln/cuda/device_check.h"

using namespace kiln;

// The message raise_device_check_failure throws, or "" when it does not throw.
std::string raised() {
  try {
    cuda::raise_device_check_failure(0);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

void check(const std::string& name, bool ok) { report(name, "property", exact(ok, 1)); }

int main() {
  std::vector<int64_t> index = ints<int64_t>(3000, 0, 9);
  const int64_t n = int64_t(index.size());

  cuda::check_index_range("embedding", "index", index.data(), n, 0, 10, false, 0, 0);
  check("all valid: nothing raised", raised().empty());

  index[1700] = 50;
  cuda::check_index_range("embedding", "index", index.data(), n, 0, 10, false, 0, 0);
  const std::string msg = raised();
  std::printf("  message: %s\n", msg.c_str());
  check("one bad value: op, value, position and range", contains(msg, "embedding: index 50 at position 1700 is out of range [0, 10)"));
  check("raised once, then cleared", raised().empty());
  index[1700] = 3;
  cuda::check_index_range("embedding", "index", index.data(), n, 0, 10, false, 0, 0);
  check("clean again after the report", raised().empty());

  index[5] = -100;
  cuda::check_index_range("cross_entropy", "target", index.data(), n, 0, 10, true, -100, 0);
  check("the exempt value (ignore_index) passes", raised().empty());
  cuda::check_index_range("nll_loss", "target", index.data(), n, 0, 10, true, -1, 0);
  const std::string exempt_msg = raised();
  check("without that exemption it fails and names the exempt value",
        contains(exempt_msg, "nll_loss: target -100 at position 5 is out of range [0, 10) and is not -1"));
  index[5] = 0;

  cpemu::grid_cap = 1;  // one block walks everything
  index[n - 1] = 10;
  cuda::check_index_range("gather", "index", index.data(), n, 0, 10, false, 0, 0);
  check("grid-stride reaches the last element", contains(raised(), "gather: index 10 at position 2999"));
  cpemu::grid_cap = 0;

  index[17] = -1;  // bad values in the first and the last block, and in one thread's two lines
  index[17 + 256] = 12;
  for (int order = 0; order < 3; ++order) {
    cpemu::block_order = order;
    cuda::check_index_range("scatter_add", "index", index.data(), n, 0, 10, false, 0, 0);
    const std::string m = raised();
    check("bad values, block order " + std::to_string(order) + ": the lowest position is reported",
          contains(m, "scatter_add: index -1 at position 17 "));
    check("  ... and nothing left after it", raised().empty());
  }
  cpemu::block_order = 0;
  cuda::check_index_range("first_op", "index", index.data(), n, 0, 10, false, 0, 0);
  index[17] = 1;
  cuda::check_index_range("second_op", "index", index.data(), n, 0, 10, false, 0, 0);
  const std::string waiting = raised();
  check("two failing checks before a synchronisation: the first op's failure is raised",
        contains(waiting, "first_op: index -1 at position 17 "));
  check("  ... and the second's is dropped with it, leaving the next check clean", raised().empty());
  cuda::check_index_range("third_op", "index", index.data(), n, 0, 10, false, 0, 0);
  check("  ... the next check reports its own lowest position",
        contains(raised(), "third_op: index 12 at position 273 "));
  index[17 + 256] = 0;

  // A check's context words follow the range in its message (and only its own).
  index[9] = 77;
  cuda::check_index_range("embedding", "index", index.data(), n, 0, 10, false, 0, 0,
                          " for dim 0 of weight f32[10, 4]@cuda:0");
  const std::string with_context = raised();
  std::printf("  message: %s\n", with_context.c_str());
  check("the check's context follows the range",
        contains(with_context, "index 77 at position 9 is out of range [0, 10) for dim 0 of weight f32[10, 4]@cuda:0 ("));
  for (int i = 0; i < 1100; ++i)  // more checks than the contexts kept, all with words
    cuda::check_index_range("embedding", "index", index.data(), 1, 0, 10, false, 0, 0, " for dim 0 of w");
  cuda::check_index_range("gather", "index", index.data(), n, 0, 10, false, 0, 0);
  const std::string without_context = raised();
  check("a check without words gets none, even after the kept contexts wrapped",
        contains(without_context, "gather: index 77 at position 9 is out of range [0, 10) (found"));
  index[9] = 0;
  cpemu::block_order = 0;

  // check_positive (ContextPool's s): positive values pass; 0, negatives and NaN fail.
  std::vector<float> sizes = unif<float>(2000, 0.1, 3.0);
  cuda::check_positive<float>("context_pool", "support size s", sizes.data(), 2000, 0);
  check("positive sizes pass", raised().empty());
  for (const float bad : {0.0f, -0.5f, std::numeric_limits<float>::quiet_NaN()}) {
    sizes[1234] = bad;
    cuda::check_positive<float>("context_pool", "support size s", sizes.data(), 2000, 0);
    const std::string m = raised();
    std::printf("  message: %s\n", m.c_str());
    check("size " + std::to_string(bad) + " is refused with its position",
          contains(m, "context_pool: support size s ") && contains(m, " at position 1234 must be > 0 (and not NaN)"));
  }
  std::vector<double> sizes64(100, 1.0);
  sizes64[99] = -2;
  cuda::check_positive<double>("context_pool2d", "support size s", sizes64.data(), 100, 0);
  check("f64 sizes too", contains(raised(), "context_pool2d: support size s -2 at position 99"));

  cuda::check_index_range("embedding", "index", index.data(), 0, 0, 10, false, 0, 0);
  check("empty index: no launch, nothing raised", raised().empty());
  return finish("device_check");
}
