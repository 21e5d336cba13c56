#include "kiln/nn/train/metrics_log.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <system_error>

#include "kiln/core/error.h"

namespace kiln::nn {

MetricsLog::MetricsLog(const std::string& path, bool append) : path_(path) {
  if (path_.empty()) return;
  const std::filesystem::path folder = std::filesystem::path(path_).parent_path();
  if (!folder.empty()) {
    std::error_code error;
    std::filesystem::create_directories(folder, error);
    KILN_CHECK(!error, "Trainer: cannot create the folder of the metrics file '", path_, "': ", error.message());
  }
  file_.open(path_, append ? std::ios::app : std::ios::trunc);
  KILN_CHECK(file_.is_open(), "Trainer: cannot open the metrics file '", path_, "': ", std::strerror(errno));
}

void MetricsLog::write(const std::string& event, int64_t step,
                       const std::vector<std::pair<std::string, double>>& values) {
  if (!enabled()) return;
  nlohmann::ordered_json line;  // ordered: keys appear as given, "event" and "step" first
  line["event"] = event;
  line["step"] = step;
  for (const auto& [name, value] : values) {
    if (std::isfinite(value))
      line[name] = value;
    else
      line[name] = nullptr;
  }
  file_ << line.dump() << '\n' << std::flush;
  KILN_CHECK(file_.good(), "Trainer: writing the metrics file '", path_, "' failed: ", std::strerror(errno));
}

}  // namespace kiln::nn
