// Helpers for the RESULT lines the benchmark programs print (bench/*.sh parse them as
// space-separated key=value tokens).
#pragma once

#include <algorithm>
#include <string>

namespace kiln::bench {

// "NVIDIA H100 80GB HBM3" -> "NVIDIA_H100_80GB_HBM3": one token of a RESULT line.
inline std::string as_token(std::string text) {
  std::replace(text.begin(), text.end(), ' ', '_');
  return text;
}

}  // namespace kiln::bench
