// examples/vit: smoke tests of the program itself. Tiny configs train for a few steps on
// the generated shapes task, with and without ContextPool, from a checkpoint, and from
// small MNIST and CIFAR-10 files; usage mistakes exit with code 2.
#include <filesystem>
#include <string>
#include <vector>

#include "example_runner.h"
#include "image_example.h"

using namespace kiln::testing;

namespace {

// A model and data set small enough to train 3 steps in well under a second.
std::vector<std::string> tiny(std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"--train-size", "64", "--test-size", "32", "--image-size", "16",
                                "--patch",      "4",  "--d-model",   "16", "--depth",      "1",
                                "--heads",      "2",  "--steps",     "3",  "--batch",      "16",
                                "--eval-interval", "0", "--threads", "1"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

}  // namespace

TEST_CASE("example vit: --help lists every flag with its default") {
  const std::string vit = example_path("vit");
  if (!example_built(vit)) return;
  const ExampleRun run = run_example(vit, {"--help"});
  CHECK(run.exit_code == 0);
  for (const char* flag : {"--data", "--patch", "--d-model", "--depth", "--heads", "--mlp-ratio", "--dropout",
                           "--steps", "--epochs", "--lr", "--schedule", "--batch", "--seed", "--threads",
                           "--checkpoint-dir", "--resume", "--eval-interval", "--context-pool", "--pool-mode",
                           "--pool-s-max", "--pool-placement"})
    CHECK_MESSAGE(run.printed(flag), flag << " is missing from --help:\n" << run.output);
  CHECK(run.printed("(default 4)"));
}

TEST_CASE("example vit: trains a few steps on shapes and reports accuracy, params and FLOPs") {
  const std::string vit = example_path("vit");
  if (!example_built(vit)) return;
  const ExampleRun run = run_example(vit, tiny());
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  CHECK(run.printed("shapes, 64 training / 32 test images of 1 x 16 x 16, 4 classes"));
  CHECK(run.printed("context_pool=off"));
  CHECK(run.printed("train loss"));
  CHECK(number_after(run.output, "MFLOPs per image forward (training ~3x: ") > 0);
  const double accuracy = number_after(run.output, "test accuracy ");
  CHECK(accuracy >= 0);
  CHECK(accuracy <= 1);
  CHECK(run.printed("per class: large ring"));
}

TEST_CASE("example vit: --context-pool puts ContextPool2d in every block, at either placement") {
  const std::string vit = example_path("vit");
  if (!example_built(vit)) return;
  const ExampleRun plain = run_example(vit, tiny());
  const ExampleRun pooled = run_example(vit, tiny({"--context-pool", "--pool-s-max", "2"}));
  const ExampleRun after_block =
      run_example(vit, tiny({"--context-pool", "--pool-placement", "after_block", "--pool-mode", "weights_only"}));
  INFO(pooled.output);
  INFO(after_block.output);
  REQUIRE(plain.exit_code == 0);
  REQUIRE(pooled.exit_code == 0);
  REQUIRE(after_block.exit_code == 0);
  CHECK(pooled.printed("context_pool=after_attention"));
  CHECK(after_block.printed("context_pool=after_block"));
  CHECK(pooled.printed("test accuracy"));
  // Each block's ContextPool2d predictor (a 3x3 conv, 16 -> 2 channels, with bias) adds
  // parameters; weights_only predicts one channel. The pooling adds FLOPs.
  CHECK(parameters(pooled.output) == parameters(plain.output) + 9 * 16 * 2 + 2);
  CHECK(parameters(after_block.output) == parameters(plain.output) + 9 * 16 + 1);
  const std::string flops = "MFLOPs per image forward (training ~3x: ";
  CHECK(number_after(pooled.output, flops) > number_after(plain.output, flops));
}

TEST_CASE("example vit: a checkpoint and --resume continue the run") {
  const std::string vit = example_path("vit");
  if (!example_built(vit)) return;
  TempDir dir;
  const std::string ckpt = dir.file("ckpt");
  const ExampleRun first = run_example(vit, tiny({"--checkpoint-dir", ckpt}));
  INFO(first.output);
  REQUIRE(first.exit_code == 0);
  CHECK(std::filesystem::exists(ckpt + "/latest.ckpt.safetensors"));
  const ExampleRun resumed = run_example(vit, tiny({"--checkpoint-dir", ckpt, "--resume", "--steps", "5"}));
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  CHECK(resumed.printed("resumed from"));
  CHECK(resumed.printed("at step 3"));
  CHECK(resumed.printed("train loss"));
}

TEST_CASE("example vit: MNIST and CIFAR-10 from a folder") {
  const std::string vit = example_path("vit");
  if (!example_built(vit)) return;
  TempDir mnist, cifar;
  write_mnist_files(mnist.path(), 40, 20);
  write_cifar_files(cifar.path(), 8, 20);
  const ExampleRun on_mnist = run_example(vit, tiny({"--data", mnist.path(), "--patch", "7"}));
  INFO(on_mnist.output);
  REQUIRE(on_mnist.exit_code == 0);
  CHECK(on_mnist.printed("MNIST, 40 training / 20 test images of 1 x 28 x 28, 10 classes"));
  CHECK(on_mnist.printed("test accuracy"));
  const ExampleRun on_cifar = run_example(vit, tiny({"--data", cifar.path(), "--context-pool"}));
  INFO(on_cifar.output);
  REQUIRE(on_cifar.exit_code == 0);
  CHECK(on_cifar.printed("CIFAR-10, 40 training / 20 test images of 3 x 32 x 32, 10 classes"));
  CHECK(on_cifar.printed("test accuracy"));
}

TEST_CASE("example vit: usage mistakes exit with 2, missing data with 1") {
  const std::string vit = example_path("vit");
  if (!example_built(vit)) return;
  const ExampleRun unknown = run_example(vit, {"--no-such-flag"});
  CHECK(unknown.exit_code == 2);
  CHECK(unknown.printed("unknown flag '--no-such-flag'"));
  const ExampleRun bad_value = run_example(vit, {"--depth", "two"});
  CHECK(bad_value.exit_code == 2);
  CHECK(bad_value.printed("--depth expects an integer, got 'two'"));
  const ExampleRun bad_heads = run_example(vit, {"--d-model", "30", "--heads", "4"});
  CHECK(bad_heads.exit_code == 2);
  CHECK(bad_heads.printed("--d-model 30 is not a multiple of --heads 4"));
  const ExampleRun bad_patch = run_example(vit, tiny({"--patch", "5"}));
  CHECK(bad_patch.exit_code == 2);
  CHECK(bad_patch.printed("--patch 5 does not divide the shapes image side 16"));
  const ExampleRun bad_mode = run_example(vit, {"--pool-mode", "huge"});
  CHECK(bad_mode.exit_code == 2);
  CHECK(bad_mode.printed("--pool-mode expects one of adaptive, fixed_size, weights_only, size_only, uniform"));
  const ExampleRun resume_nowhere = run_example(vit, {"--resume"});
  CHECK(resume_nowhere.exit_code == 2);
  CHECK(resume_nowhere.printed("--resume needs --checkpoint-dir"));

  TempDir empty;
  const ExampleRun no_data = run_example(vit, tiny({"--data", empty.path()}));
  CHECK(no_data.exit_code == 1);
  CHECK(no_data.printed("holds neither MNIST"));
}
