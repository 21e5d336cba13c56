#include "kiln/nn/train/progress.h"

#include <cmath>
#include <cstdio>

#include "kiln/core/error.h"

namespace kiln::nn {

namespace {

constexpr int kBarWidth = 20;
constexpr double kRedrawSeconds = 0.1;  // redraw at most ten times a second
constexpr const char* kClearToEndOfLine = "\033[K";

std::string printf_string(const char* format, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, value);
  return buffer;
}

std::string format_step(const ProgressReport& r) {
  const int width = static_cast<int>(std::to_string(r.max_steps).size());
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "step %*lld/%lld", width, static_cast<long long>(r.step),
                static_cast<long long>(r.max_steps));
  return buffer;
}

// "[#####...............]  25%"
std::string format_bar(const ProgressReport& r) {
  const double fraction = r.max_steps > 0 ? static_cast<double>(r.step) / static_cast<double>(r.max_steps) : 1.0;
  const int filled = static_cast<int>(fraction * kBarWidth);
  std::string bar = "[";
  bar.append(filled, '#').append(kBarWidth - filled, '.').append("]");
  char percent[16];
  std::snprintf(percent, sizeof percent, " %3d%%", static_cast<int>(fraction * 100));
  return bar.append(percent);
}

// "loss 1.2345 | lr 3.00e-04 | 1.23k samples/s"
std::string format_numbers(const ProgressReport& r) {
  return "loss " + printf_string("%.4f", r.loss) + " | lr " + printf_string("%.2e", r.lr) + " | " +
         format_count(r.rate) + " " + r.unit + "/s";
}

}  // namespace

ProgressStyle parse_progress_style(const std::string& name, bool is_terminal) {
  if (name == "auto") return is_terminal ? ProgressStyle::bar : ProgressStyle::lines;
  if (name == "bar") return ProgressStyle::bar;
  if (name == "lines") return ProgressStyle::lines;
  if (name == "none") return ProgressStyle::none;
  throw Error(detail::str("Trainer: progress must be \"auto\", \"bar\", \"lines\" or \"none\", got \"", name, "\""));
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  if (seconds < 60) return printf_string("%.1fs", seconds);
  const auto whole = static_cast<long long>(seconds);
  char buffer[32];
  if (whole < 3600)
    std::snprintf(buffer, sizeof buffer, "%lldm%02llds", whole / 60, whole % 60);
  else
    std::snprintf(buffer, sizeof buffer, "%lldh%02lldm", whole / 3600, whole % 3600 / 60);
  return buffer;
}

std::string format_count(double value) {
  if (!std::isfinite(value)) return "?";
  if (value < 1e3) return printf_string("%.1f", value);
  if (value < 1e6) return printf_string("%.2fk", value / 1e3);
  if (value < 1e9) return printf_string("%.2fM", value / 1e6);
  return printf_string("%.2fG", value / 1e9);
}

void ProgressPrinter::step(const ProgressReport& report, bool force) {
  if (style_ != ProgressStyle::bar) return;
  last_bar_ = report;
  const auto now = std::chrono::steady_clock::now();
  if (!force && bar_drawn_ && std::chrono::duration<double>(now - last_draw_).count() < kRedrawSeconds) return;
  last_draw_ = now;
  // \r returns to the start of the line; clearing to its end removes a longer old bar.
  out_ << '\r' << format_step(report) << ' ' << format_bar(report) << " | " << format_numbers(report) << " | ETA "
       << format_duration(report.eta_s) << kClearToEndOfLine << std::flush;
  bar_drawn_ = true;
}

void ProgressPrinter::log(const ProgressReport& report) {
  if (style_ != ProgressStyle::lines) return;
  out_ << format_step(report) << " | " << format_numbers(report) << " | elapsed " << format_duration(report.elapsed_s)
       << " | ETA " << format_duration(report.eta_s) << '\n'
       << std::flush;
}

void ProgressPrinter::message(const std::string& line) {
  if (style_ == ProgressStyle::none) return;
  const bool redraw = bar_drawn_;
  clear_bar();
  out_ << line << '\n' << std::flush;
  if (redraw) step(last_bar_, /*force=*/true);
}

void ProgressPrinter::finish() {
  if (!bar_drawn_) return;
  out_ << '\n' << std::flush;
  bar_drawn_ = false;
}

void ProgressPrinter::clear_bar() {
  if (!bar_drawn_) return;
  out_ << '\r' << kClearToEndOfLine;
  bar_drawn_ = false;
}

}  // namespace kiln::nn
