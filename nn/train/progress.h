// How the Trainer shows its progress: an in-place bar on a terminal, one plain line per
// log event otherwise (files, CI logs, pipes: no \r clutter), or nothing.
//
//   bar:    step  120/1000 [##........]  12% | loss 1.2345 | lr 3.00e-04 | 1.23k samples/s | ETA 1m23s
//   lines:  step  120/1000 | loss 1.2345 | lr 3.00e-04 | 1.23k samples/s | elapsed 10.2s | ETA 1m23s
//
// The bar shows the mean loss of the last 20 steps and the throughput of the whole run so
// far; a line shows the mean loss and the throughput since the previous line.
// Messages (resume, eval results, checkpoints) are printed as lines of their own in the
// bar and lines styles; the bar is redrawn below them.
#pragma once

#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>

namespace kiln::nn {

enum class ProgressStyle { bar, lines, none };

// "bar", "lines", "none", or "auto": the bar when `is_terminal`, lines otherwise.
// Anything else is a kiln::Error naming the accepted values.
ProgressStyle parse_progress_style(const std::string& name, bool is_terminal);

// Human-friendly numbers: 0.42s, 12.3s, 4m05s, 2h07m; 950, 12.3k, 4.56M.
std::string format_duration(double seconds);
std::string format_count(double value);

// What one progress report shows. rate is in `unit`s per second ("samples", "tokens").
struct ProgressReport {
  int64_t step = 0;
  int64_t max_steps = 0;
  double loss = 0;
  double lr = 0;
  double rate = 0;
  std::string unit;
  double elapsed_s = 0;
  double eta_s = 0;
};

class ProgressPrinter {
 public:
  ProgressPrinter(std::ostream& out, ProgressStyle style) : out_(out), style_(style) {}
  ~ProgressPrinter() { finish(); }
  ProgressPrinter(const ProgressPrinter&) = delete;
  ProgressPrinter& operator=(const ProgressPrinter&) = delete;

  ProgressStyle style() const { return style_; }

  // After every step: redraws the bar (at most every 0.1 s, unless `force`).
  void step(const ProgressReport& report, bool force = false);
  // At each log event: prints a line in the lines style.
  void log(const ProgressReport& report);
  // A line that stays on screen, e.g. "eval step 200 | val_loss 1.2345".
  void message(const std::string& line);
  // Ends the bar's line so whatever is printed next starts on a fresh one.
  void finish();

 private:
  void clear_bar();

  std::ostream& out_;
  ProgressStyle style_;
  bool bar_drawn_ = false;  // the cursor sits at the end of a bar line
  ProgressReport last_bar_;
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace kiln::nn
