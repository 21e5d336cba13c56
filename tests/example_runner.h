// Helpers of the examples' smoke tests: run an example program with arguments and
// capture what it printed, in a temporary folder that is removed afterwards.
//
//   const std::string vit = example_path("vit");
//   if (!example_built(vit)) return;   // prints why the test is skipped
//   TempDir dir;
//   ExampleRun run = run_example(vit, {"--steps", "2", "--checkpoint-dir", dir.file("ckpt")});
//   CHECK(run.exit_code == 0);
//   CHECK(run.printed("test accuracy"));
#pragma once

#include <doctest/doctest.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "temp_dir.h"

extern char** environ;

namespace kiln::testing {

struct ExampleRun {
  int exit_code = -1;  // the program's exit status; -1 if it did not exit normally
  std::string output;  // stdout and stderr, interleaved as written

  bool printed(const std::string& text) const { return output.find(text) != std::string::npos; }
};

// Where CMake put example `name`: KILN_EXAMPLES_DIR/name/name.
inline std::string example_path(const std::string& name) {
  return std::string(KILN_EXAMPLES_DIR) + "/" + name + "/" + name;
}

// Whether the example was built; when not, says so in the test log (the caller returns).
inline bool example_built(const std::string& path) {
  if (std::filesystem::exists(path)) return true;
  MESSAGE("skipped: the example program '" << path << "' is not built (configure with KILN_BUILD_EXAMPLES=ON)");
  return false;
}

// Runs `program args...` with stdout and stderr sent to one file, waits for it, and
// returns its exit status and what it printed. No shell is involved: arguments are
// passed as they are.
inline ExampleRun run_example(const std::string& program, const std::vector<std::string>& args) {
  TempDir capture_dir;
  const std::string capture = capture_dir.file("output.txt");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, capture.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);

  std::vector<std::string> argv_strings{program};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& arg : argv_strings) argv.push_back(arg.data());
  argv.push_back(nullptr);

  ExampleRun run;
  pid_t pid = 0;
  const int spawn_error = posix_spawn(&pid, program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE_MESSAGE(spawn_error == 0, "posix_spawn('" << program << "') failed with error " << spawn_error);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  if (WIFEXITED(status)) run.exit_code = WEXITSTATUS(status);

  std::ifstream in(capture);
  std::ostringstream text;
  text << in.rdbuf();
  run.output = text.str();
  return run;
}

}  // namespace kiln::testing
