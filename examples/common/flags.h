// flags.h: the command-line parser of kiln's examples (header-only).
//
// Each flag is bound to a variable; the variable's value before parse() is the default,
// and --help prints every flag with it:
//
//   int64_t steps = 1000;
//   double lr = 3e-4;
//   std::string device = "cpu";
//   bool resume = false;
//   std::string data;
//   kiln::examples::Flags flags("charlm", "Trains a character-level GPT.");
//   flags.section("training");
//   flags.add("--steps", steps, "optimizer updates");
//   flags.add("--lr", lr, "peak learning rate");
//   flags.add("--device", device, "where to train", {"cpu", "cuda"});  // one of a list
//   flags.add("--resume", resume, "continue from the checkpoint");     // a switch
//   flags.add("--data", data, "a text file").placeholder("PATH");      // "--data PATH" in the help
//   flags.parse(argc, argv);
//   if (steps < 1) flags.fail("--steps must be >= 1, got " + std::to_string(steps));
//
// Accepted forms: "--name value" and "--name=value". A bool flag is a switch ("--resume")
// or takes "--resume=true|false". "--help" / "-h" print the help to stdout and exit 0.
// An unknown flag, a missing or malformed value, or a value outside the list exits with
// code 2 and a message that names the flag (the convention of command-line tools: 2 means
// "you called me wrong", 1 means "I failed").
#pragma once

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

namespace kiln::examples {

class Flags {
 public:
  Flags(std::string program, std::string summary) : program_(std::move(program)), summary_(std::move(summary)) {}

  // Starts a titled group; the flags added next are listed under it in the help.
  void section(const std::string& title) { flags_.push_back({.name = "", .help = title}); }

  Flags& add(const std::string& name, int64_t& value, const std::string& help) {
    add_flag(name, "N", std::to_string(value), help, [this, name, &value](const std::string& text) {
      value = parse_integer(name, text);
    });
    return *this;
  }
  Flags& add(const std::string& name, uint64_t& value, const std::string& help) {
    add_flag(name, "N", std::to_string(value), help, [this, name, &value](const std::string& text) {
      if (text.empty() || text[0] == '-') fail(name + " expects a non-negative integer, got '" + text + "'");
      value = static_cast<uint64_t>(parse_integer(name, text));
    });
    return *this;
  }
  Flags& add(const std::string& name, double& value, const std::string& help) {
    add_flag(name, "X", format_number(value), help, [this, name, &value](const std::string& text) {
      value = parse_number(name, text);
    });
    return *this;
  }
  // With `choices`, the value must be one of them (the help lists them).
  Flags& add(const std::string& name, std::string& value, const std::string& help,
             std::initializer_list<const char*> choices = {}) {
    std::vector<std::string> allowed(choices.begin(), choices.end());
    std::string placeholder = "S";
    if (!allowed.empty()) {
      placeholder.clear();
      for (const std::string& choice : allowed) placeholder += (placeholder.empty() ? "" : "|") + choice;
    }
    add_flag(name, placeholder, quote_if_spaced(value), help,
             [this, name, allowed, &value](const std::string& text) {
               if (!allowed.empty() && !contains(allowed, text))
                 fail(name + " expects one of " + join(allowed) + ", got '" + text + "'");
               value = text;
             });
    return *this;
  }
  // A switch: "--name" sets it, "--name=false" clears it.
  Flags& add(const std::string& name, bool& value, const std::string& help) {
    add_flag(name, "", value ? "on" : "off", help, [this, name, &value](const std::string& text) {
      if (text == "true" || text == "1") value = true;
      else if (text == "false" || text == "0") value = false;
      else fail(name + " is a switch: give it alone, or as " + name + "=true|false, got '" + text + "'");
    });
    flags_.back().is_switch = true;
    return *this;
  }

  // Names the value of the flag just added in the help ("--data PATH" rather than "--data S").
  Flags& placeholder(const std::string& text) {
    flags_.back().placeholder = text;
    return *this;
  }

  // Parses argv[1..argc), setting the bound variables; exits on --help or a mistake.
  void parse(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "--help" || arg == "-h") {
        print_help(stdout);
        std::exit(0);
      }
      if (arg.rfind("--", 0) != 0) fail("unexpected argument '" + arg + "' (flags start with --)");
      const size_t equals = arg.find('=');
      const std::string name = arg.substr(0, equals);
      Flag* flag = find(name);
      if (flag == nullptr) fail("unknown flag '" + name + "'");
      std::string text;
      if (equals != std::string::npos) text = arg.substr(equals + 1);
      else if (flag->is_switch) text = "true";
      else if (i + 1 < argc) text = argv[++i];
      else fail(name + " needs a value (" + flag->placeholder + ")");
      flag->set(text);
      flag->given = true;
    }
  }

  // Whether the command line gave `name` (its variable may still hold the default).
  bool given(const std::string& name) const {
    for (const Flag& flag : flags_)
      if (flag.name == name) return flag.given;
    return false;
  }

  // A usage mistake found after parsing (a bad combination, a value out of range).
  [[noreturn]] void fail(const std::string& message) const {
    std::fprintf(stderr, "%s: %s\n(run %s --help for every flag)\n", program_.c_str(), message.c_str(),
                 program_.c_str());
    std::exit(2);
  }

  void print_help(std::FILE* out) const {
    std::fprintf(out, "usage: %s [flags]\n%s\n", program_.c_str(), summary_.c_str());
    // Help texts line up in one column; a flag too long for it puts its help on the next line.
    constexpr size_t kMaxWidth = 24;
    size_t width = 0;
    for (const Flag& flag : flags_)
      if (left_column(flag).size() <= kMaxWidth) width = std::max(width, left_column(flag).size());
    const int column = static_cast<int>(width);
    for (const Flag& flag : flags_) {
      if (flag.name.empty()) {
        std::fprintf(out, "\n%s:\n", flag.help.c_str());
        continue;
      }
      const std::string left = left_column(flag);
      if (left.size() > width) std::fprintf(out, "  %s\n  %-*s", left.c_str(), column, "");
      else std::fprintf(out, "  %-*s", column, left.c_str());
      std::fprintf(out, "  %s (default %s)\n", flag.help.c_str(), flag.default_text.c_str());
    }
    std::fprintf(out, "  %-*s  %s\n", column, "--help", "print this help and exit");
  }

 private:
  struct Flag {
    std::string name{};  // empty: a section title, held in `help`
    std::string help{};
    std::string placeholder{};   // "N", "X", "S", "a|b|c"; empty for a switch
    std::string default_text{};  // the bound variable's value when it was added
    std::function<void(const std::string&)> set{};
    bool is_switch = false;
    bool given = false;
  };

  void add_flag(const std::string& name, std::string placeholder, std::string default_text, const std::string& help,
                std::function<void(const std::string&)> set) {
    if (name.rfind("--", 0) != 0 || find(name) != nullptr) {
      std::fprintf(stderr, "%s: bug: flag '%s' is malformed or added twice\n", program_.c_str(), name.c_str());
      std::abort();  // a programming error in the example, not a user mistake
    }
    flags_.push_back({.name = name, .help = help, .placeholder = std::move(placeholder),
                      .default_text = std::move(default_text), .set = std::move(set)});
  }

  Flag* find(const std::string& name) {
    for (Flag& flag : flags_)
      if (!flag.name.empty() && flag.name == name) return &flag;
    return nullptr;
  }

  static std::string left_column(const Flag& flag) {
    return flag.placeholder.empty() ? flag.name : flag.name + " " + flag.placeholder;
  }

  // The whole text must be the number: "12abc", "" and out-of-range values are mistakes.
  int64_t parse_integer(const std::string& name, const std::string& text) const {
    char* end = nullptr;
    errno = 0;
    const long long value = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || errno == ERANGE) fail(name + " expects an integer, got '" + text + "'");
    return value;
  }
  double parse_number(const std::string& name, const std::string& text) const {
    char* end = nullptr;
    const double value = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || !std::isfinite(value)) fail(name + " expects a number, got '" + text + "'");
    return value;
  }

  static std::string format_number(double value) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%g", value);
    return buffer;
  }
  // "none" for an empty string, quotes around one with spaces ("The "), else the text itself.
  static std::string quote_if_spaced(const std::string& value) {
    if (value.empty()) return "none";
    return value.find(' ') == std::string::npos ? value : "\"" + value + "\"";
  }
  static bool contains(const std::vector<std::string>& list, const std::string& item) {
    for (const std::string& entry : list)
      if (entry == item) return true;
    return false;
  }
  static std::string join(const std::vector<std::string>& list) {
    std::string text;
    for (const std::string& entry : list) text += (text.empty() ? "" : ", ") + entry;
    return text;
  }

  std::string program_, summary_;
  std::vector<Flag> flags_;
};

}  // namespace kiln::examples
