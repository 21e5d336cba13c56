// examples/convnet: smoke tests of the program itself. Tiny configs train for a few steps
// on the generated shapes task with max pooling and with ContextPool2d downsampling, and
// from small MNIST and CIFAR-10 files; usage mistakes exit with code 2.
#include <filesystem>
#include <string>
#include <vector>

#include "example_runner.h"
#include "image_example.h"

using namespace kiln::testing;

namespace {

std::vector<std::string> tiny(std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"--train-size", "64", "--test-size", "32",  "--image-size", "16",
                                "--channels",   "4,8", "--steps",    "3",   "--batch",      "16",
                                "--eval-interval", "0", "--threads", "1"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

}  // namespace

TEST_CASE("example convnet: --help lists every flag with its default") {
  const std::string convnet = example_path("convnet");
  if (!example_built(convnet)) return;
  const ExampleRun run = run_example(convnet, {"--help"});
  CHECK(run.exit_code == 0);
  for (const char* flag : {"--data", "--channels", "--steps", "--epochs", "--lr", "--batch", "--seed", "--threads",
                           "--checkpoint-dir", "--resume", "--eval-interval", "--context-pool", "--pool-mode",
                           "--pool-s-max"})
    CHECK_MESSAGE(run.printed(flag), flag << " is missing from --help:\n" << run.output);
  CHECK(run.printed("32,64,128"));  // the default widths
}

TEST_CASE("example convnet: max pooling and ContextPool2d downsampling both train and report") {
  const std::string convnet = example_path("convnet");
  if (!example_built(convnet)) return;
  const ExampleRun max_pool = run_example(convnet, tiny());
  const ExampleRun context_pool = run_example(convnet, tiny({"--context-pool"}));
  INFO(max_pool.output);
  INFO(context_pool.output);
  REQUIRE(max_pool.exit_code == 0);
  REQUIRE(context_pool.exit_code == 0);
  CHECK(max_pool.printed("downsample=MaxPool2d(2)"));
  CHECK(context_pool.printed("downsample=ContextPool2d(stride 2)"));
  for (const ExampleRun* run : {&max_pool, &context_pool}) {
    CHECK(run->printed("train loss"));
    const double accuracy = number_after(run->output, "test accuracy ");
    CHECK(accuracy >= 0);
    CHECK(accuracy <= 1);
  }
  // ContextPool2d's predictor adds parameters (a 3x3 conv to 2 outputs per stage), its pooling FLOPs.
  CHECK(parameters(context_pool.output) == parameters(max_pool.output) + (9 * 4 * 2 + 2) + (9 * 8 * 2 + 2));
  const std::string flops = "MFLOPs per image forward (training ~3x: ";
  CHECK(number_after(context_pool.output, flops) > number_after(max_pool.output, flops));
}

TEST_CASE("example convnet: a checkpoint and --resume continue the run") {
  const std::string convnet = example_path("convnet");
  if (!example_built(convnet)) return;
  TempDir dir;
  const std::string ckpt = dir.file("ckpt");
  const ExampleRun first = run_example(convnet, tiny({"--context-pool", "--checkpoint-dir", ckpt}));
  INFO(first.output);
  REQUIRE(first.exit_code == 0);
  const ExampleRun resumed =
      run_example(convnet, tiny({"--context-pool", "--checkpoint-dir", ckpt, "--resume", "--steps", "4"}));
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  CHECK(resumed.printed("resumed from"));
}

TEST_CASE("example convnet: MNIST and CIFAR-10 from a folder") {
  const std::string convnet = example_path("convnet");
  if (!example_built(convnet)) return;
  TempDir mnist, cifar;
  write_mnist_files(mnist.path(), 40, 20);
  write_cifar_files(cifar.path(), 8, 20);
  // 28 -> 14 -> 7 -> 3 with max pooling, -> 4 with ContextPool's ceil(n / 2).
  for (const char* pooling : {"--context-pool=false", "--context-pool"}) {
    const ExampleRun run = run_example(convnet, tiny({"--data", mnist.path(), "--channels", "4,4,4", pooling}));
    INFO(run.output);
    REQUIRE(run.exit_code == 0);
    CHECK(run.printed("MNIST, 40 training / 20 test images of 1 x 28 x 28, 10 classes"));
  }
  const ExampleRun on_cifar = run_example(convnet, tiny({"--data", cifar.path()}));
  INFO(on_cifar.output);
  REQUIRE(on_cifar.exit_code == 0);
  CHECK(on_cifar.printed("CIFAR-10, 40 training / 20 test images of 3 x 32 x 32, 10 classes"));
}

TEST_CASE("example convnet: usage mistakes exit with 2") {
  const std::string convnet = example_path("convnet");
  if (!example_built(convnet)) return;
  const ExampleRun unknown = run_example(convnet, {"--patch", "4"});  // a vit flag
  CHECK(unknown.exit_code == 2);
  CHECK(unknown.printed("unknown flag '--patch'"));
  for (const char* widths : {"", "16,,32", "16,x", "0,8", "8,-1"}) {
    const ExampleRun bad = run_example(convnet, {"--channels", widths});
    CAPTURE(widths);
    CHECK(bad.exit_code == 2);
    CHECK(bad.printed("--channels"));
  }
  const ExampleRun bad_steps = run_example(convnet, {"--steps", "0"});
  CHECK(bad_steps.exit_code == 2);
  CHECK(bad_steps.printed("--steps must be >= 1, got 0"));
}
