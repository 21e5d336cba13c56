// Smoke tests of examples/charlm: the program runs end to end on tiny configurations
// (a 1- or 2-layer GPT of width 16 for a few steps on a generated text file), and its
// modes, files and errors behave as its --help and README say. Each case takes seconds.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "example_runner.h"

namespace {

using kiln::testing::example_built;
using kiln::testing::example_path;
using kiln::testing::ExampleRun;
using kiln::testing::run_example;
using kiln::testing::TempDir;

// ~6 KB of text: its 5% validation split (~300 bytes) holds many 16-character windows.
std::string write_text_file(const TempDir& dir) {
  const std::string path = dir.file("tiny.txt");
  std::ofstream out(path);
  for (int i = 0; i < 60; ++i) out << "the quick brown fox jumps over the lazy dog, line " << i << ".\n";
  return path;
}

// A tiny, fast configuration: 1 thread, so the tests do not fight over the cores.
std::vector<std::string> tiny_args(const std::string& data, const std::string& checkpoint_dir) {
  return {"--data",  data, "--layers", "1", "--d-model", "16", "--heads", "2", "--seq-len", "16", "--batch", "4",
          "--steps", "3",  "--val-windows", "2", "--length", "12", "--checkpoint-dir", checkpoint_dir,
          "--progress", "none", "--threads", "1"};
}

std::vector<std::string> plus(std::vector<std::string> args, const std::vector<std::string>& more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

TEST_CASE("example charlm: --help lists every flag with its default") {
  const std::string charlm = example_path("charlm");
  if (!example_built(charlm)) return;
  const ExampleRun run = run_example(charlm, {"--help"});
  CHECK(run.exit_code == 0);
  for (const char* flag : {"--data PATH", "--layers N", "--d-model N", "--heads N", "--seq-len N", "--batch N",
                           "--steps N", "--lr X", "--schedule", "--dropout X", "--context-pool", "--pool-mode",
                           "--pool-s-max X", "--pool-placement", "--device", "--seed N", "--checkpoint-dir DIR",
                           "--resume", "--eval-interval N", "--threads N", "--generate", "--temperature X",
                           "--top-k N", "--visualize OUT.html", "--demo"})
    CHECK_MESSAGE(run.printed(flag), flag);
  CHECK(run.printed("(default 4)"));
}

TEST_CASE("example charlm: trains a vanilla model on a text file, reports bpc, FLOPs, a sample") {
  const std::string charlm = example_path("charlm");
  if (!example_built(charlm)) return;
  TempDir dir;
  const std::string data = write_text_file(dir), ckpt = dir.file("ckpt");
  const ExampleRun run = run_example(charlm, tiny_args(data, ckpt));
  INFO(run.output);
  CHECK(run.exit_code == 0);
  CHECK(run.printed("1 layer, d_model 16, 2 heads, context 16"));
  // 7664 parameters; per token 2 d V + 24 d^2 + 2 d (T + 1) = 8192 + 6144 + 544 = 14880
  // forward FLOPs, 3x that training (flops.cpp).
  CHECK(run.printed("7.7k parameters, 44.6k FLOPs/token training (14.9k forward)"));
  CHECK(run.printed("tiny.txt"));
  CHECK(run.printed("val bpc over 2 windows of 16 characters"));
  CHECK(run.printed("step 3, val bpc"));
  CHECK(run.printed("---- sample"));
  CHECK(run.printed("The "));  // the default prompt opens the sample
  CHECK(std::filesystem::exists(ckpt + "/latest.ckpt.safetensors"));
  CHECK(std::filesystem::exists(ckpt + "/charlm.config"));
  CHECK(std::filesystem::exists(ckpt + "/metrics.jsonl"));
}

TEST_CASE("example charlm: trains with --context-pool, and --visualize writes its HTML page") {
  const std::string charlm = example_path("charlm");
  if (!example_built(charlm)) return;
  TempDir dir;
  const std::string data = write_text_file(dir), ckpt = dir.file("ckpt"), page = dir.file("pool.html");
  const ExampleRun train = run_example(charlm, plus(tiny_args(data, ckpt), {"--layers", "2", "--context-pool"}));
  INFO(train.output);
  REQUIRE(train.exit_code == 0);
  CHECK(train.printed("2 layers, d_model 16, 2 heads, context 16, ContextPool adaptive (after_attention)"));
  CHECK(read_file(ckpt + "/charlm.config").find("context-pool = true") != std::string::npos);

  const ExampleRun visualize =
      run_example(charlm, {"--visualize", page, "--checkpoint-dir", ckpt, "--text", "the lazy <dog>\nand the fox",
                           "--threads", "1"});
  INFO(visualize.output);
  CHECK(visualize.exit_code == 0);
  REQUIRE(std::filesystem::exists(page));
  const std::string html = read_file(page);
  CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(html.find("Layer 0") != std::string::npos);
  CHECK(html.find("Layer 1") != std::string::npos);
  CHECK(html.find("support size s") != std::string::npos);
  CHECK(html.find("pooling weight m") != std::string::npos);
  CHECK(html.find("&lt;dog&gt;") == std::string::npos);  // escaped one character per span
  CHECK(html.find(">&lt;</span>") != std::string::npos);
  CHECK(html.find("<script") == std::string::npos);  // self-contained, nothing to run
  CHECK(html.find("</html>") != std::string::npos);
}

TEST_CASE("example charlm: --resume continues from the checkpoint; --generate samples from it") {
  const std::string charlm = example_path("charlm");
  if (!example_built(charlm)) return;
  TempDir dir;
  const std::string data = write_text_file(dir), ckpt = dir.file("ckpt");
  REQUIRE(run_example(charlm, tiny_args(data, ckpt)).exit_code == 0);

  // The model's settings come from the checkpoint: a resume names only what changes.
  const ExampleRun resumed = run_example(charlm, {"--data", data, "--steps", "5", "--resume", "--checkpoint-dir",
                                                  ckpt, "--val-windows", "2", "--length", "0", "--threads", "1",
                                                  "--progress", "lines"});
  INFO(resumed.output);
  CHECK(resumed.exit_code == 0);
  CHECK(resumed.printed("resumed from"));
  CHECK(resumed.printed("at step 3"));
  CHECK(resumed.printed("step 5, val bpc"));
  CHECK(resumed.printed("1 layer, d_model 16"));

  const ExampleRun generated = run_example(
      charlm, {"--generate", "--checkpoint-dir", ckpt, "--prompt", "the quick", "--length", "20", "--top-k", "3"});
  INFO(generated.output);
  CHECK(generated.exit_code == 0);
  CHECK(generated.printed("top-k 3"));
  CHECK(generated.printed("the quick"));
  CHECK_FALSE(generated.printed("Trainer"));  // sampling only: no training

  // A model flag that disagrees with the checkpoint is a usage error.
  const ExampleRun conflict = run_example(charlm, {"--generate", "--checkpoint-dir", ckpt, "--d-model", "32"});
  CHECK(conflict.exit_code == 2);
  CHECK(conflict.printed("--d-model 32 differs from the checkpoint's model"));
}

TEST_CASE("example charlm: the default corpus is the system's license texts") {
  const std::string charlm = example_path("charlm");
  if (!example_built(charlm)) return;
  if (!std::filesystem::is_directory("/usr/share/common-licenses")) {
    MESSAGE("skipped: /usr/share/common-licenses is missing (not a Debian/Ubuntu system)");
    return;
  }
  TempDir dir;
  std::vector<std::string> args = tiny_args("", dir.file("ckpt"));
  args.erase(args.begin(), args.begin() + 2);  // no --data
  const ExampleRun run = run_example(charlm, plus(args, {"--steps", "1"}));
  INFO(run.output);
  CHECK(run.exit_code == 0);
  CHECK(run.printed("data '/usr/share/common-licenses'"));
}

TEST_CASE("example charlm: usage mistakes exit with 2, failures with 1 and a clear message") {
  const std::string charlm = example_path("charlm");
  if (!example_built(charlm)) return;
  TempDir dir;

  const ExampleRun unknown = run_example(charlm, {"--no-such-flag"});
  CHECK(unknown.exit_code == 2);
  CHECK(unknown.printed("unknown flag '--no-such-flag'"));

  const ExampleRun bad_value = run_example(charlm, {"--layers", "two"});
  CHECK(bad_value.exit_code == 2);
  CHECK(bad_value.printed("--layers expects an integer, got 'two'"));

  const ExampleRun bad_heads = run_example(charlm, {"--d-model", "10", "--heads", "3"});
  CHECK(bad_heads.exit_code == 2);
  CHECK(bad_heads.printed("--d-model 10 is not a multiple of --heads 3"));

  const ExampleRun bad_mode = run_example(charlm, {"--pool-mode", "max"});
  CHECK(bad_mode.exit_code == 2);
  CHECK(bad_mode.printed("--pool-mode expects one of adaptive"));

  const std::string missing = dir.file("no_such_corpus.txt");
  const ExampleRun no_file = run_example(charlm, {"--data", missing, "--checkpoint-dir", dir.file("ckpt")});
  CHECK(no_file.exit_code == 1);
  CHECK(no_file.printed("data file '" + missing + "' does not exist"));
  CHECK(no_file.printed("--data"));

  const ExampleRun no_model = run_example(charlm, {"--generate", "--checkpoint-dir", dir.file("empty")});
  CHECK(no_model.exit_code == 1);
  CHECK(no_model.printed("train one first"));

  const ExampleRun cuda = run_example(charlm, {"--device", "cuda", "--checkpoint-dir", dir.file("ckpt")});
  CHECK(cuda.exit_code == 1);
  CHECK(cuda.printed("--device cuda"));
  CHECK(cuda.printed("--device cpu"));
}

TEST_CASE("example charlm: --visualize refuses a model without ContextPool") {
  const std::string charlm = example_path("charlm");
  if (!example_built(charlm)) return;
  TempDir dir;
  const std::string data = write_text_file(dir), ckpt = dir.file("ckpt");
  REQUIRE(run_example(charlm, tiny_args(data, ckpt)).exit_code == 0);
  const ExampleRun run =
      run_example(charlm, {"--visualize", dir.file("page.html"), "--checkpoint-dir", ckpt, "--data", data});
  CHECK(run.exit_code == 1);
  CHECK(run.printed("has no ContextPool"));
  CHECK_FALSE(std::filesystem::exists(dir.file("page.html")));
}

TEST_CASE("example charlm: --demo trains both models and prints the side-by-side table") {
  const std::string charlm = example_path("charlm");
  if (!example_built(charlm)) return;
  TempDir dir;
  const std::string data = write_text_file(dir);
  const ExampleRun run = run_example(
      charlm, {"--demo", "--data", data, "--layers", "2", "--demo-pool-layers", "1", "--d-model", "16", "--heads", "2",
               "--seq-len", "16", "--batch", "4", "--steps", "2", "--val-windows", "2", "--length", "8",
               "--progress", "none", "--threads", "1", "--checkpoint-dir", dir.file("demo")});
  INFO(run.output);
  CHECK(run.exit_code == 0);
  CHECK(run.printed("[1/2] vanilla"));
  CHECK(run.printed("[2/2] context_pool"));
  for (const char* row : {"layers", "parameters", "FLOPs/token (train)", "val bpc", "wall time (s)"})
    CHECK_MESSAGE(run.printed(row), row);
  CHECK(run.printed("vanilla sample"));
  CHECK(run.printed("context_pool sample"));
  CHECK(std::filesystem::exists(dir.file("demo") + "/context_pool/latest.ckpt.safetensors"));
  CHECK(std::filesystem::exists(dir.file("demo") + "/vanilla/charlm.config"));
}
