// libFuzzer target: read_cifar10 (nn/data/cifar.cpp) on arbitrary bytes.
// A kiln::Error is the expected answer to a bad file; anything else is a finding.
#include "memory_file.h"
#include "reader_inputs.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static kiln::fuzz::MemoryFile file;
  try {
    kiln::fuzz::read_cifar_file(file.hold(data, size));
  } catch (const kiln::Error&) {
  }
  return 0;
}
