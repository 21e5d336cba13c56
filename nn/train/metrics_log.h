// MetricsLog: a JSON Lines file with one object per event, for plotting and for tools
// that follow a run (`tail -f metrics.jsonl | jq`). Every line is complete JSON and is
// flushed when written, so a crashed run keeps everything it logged.
//
//   {"event":"train","step":100,"loss":1.2345,"lr":0.0003,"samples_per_s":1234.5,"elapsed_s":10.2}
//   {"event":"eval","step":100,"elapsed_s":10.9,"val_loss":1.3012}
//
// Non-finite numbers have no JSON spelling; they are written as null.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace kiln::nn {

class MetricsLog {
 public:
  // An empty path makes a log that writes nothing. Otherwise the file (and its folder) is
  // created, or truncated, or, with `append`, extended (a resumed run continues its log).
  MetricsLog(const std::string& path, bool append);

  bool enabled() const { return !path_.empty(); }
  // Writes {"event": event, "step": step, name: value, ...} as one line, keys in order.
  void write(const std::string& event, int64_t step, const std::vector<std::pair<std::string, double>>& values);

 private:
  std::string path_;
  std::ofstream file_;
};

}  // namespace kiln::nn
