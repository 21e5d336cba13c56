// Whole models on the GPU against the same models on the CPU (DESIGN §8, llm.c's
// test_gpt2 idea carried over to the second backend): the tiny GPT of test_gpt.cpp, a GPT
// with ContextPool, and small ViT- and ConvNet-shaped models must give the CPU's logits,
// loss and every parameter gradient; five AdamW steps the CPU's losses; a Trainer run on
// the GPU that stops and resumes from its checkpoint the losses of one that never stopped,
// bit for bit; and the caching allocator must settle after the first steps. Every case
// skips with a printed reason when no GPU is visible. The per-op parity lives in the
// other test_cuda_*.cpp files; these cases catch what only a model exercises: ops chained
// on one stream, views and broadcasts between them, the tied head's two gradients,
// parameters and optimizer state on the device, and the trainer's device handling.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <kiln/core/autocast.h>
#include <kiln/cuda/memory.h>
#include <kiln/nn/activation.h>
#include <kiln/nn/context_pool.h>
#include <kiln/nn/conv.h>
#include <kiln/nn/data/dataloader.h>
#include <kiln/nn/gpt.h>
#include <kiln/nn/linear.h>
#include <kiln/nn/normalization.h>
#include <kiln/nn/optim/adam.h>
#include <kiln/nn/patch_embed.h>
#include <kiln/nn/pooling.h>
#include <kiln/nn/serialize.h>
#include <kiln/nn/train/trainer.h>
#include <kiln/nn/transformer.h>

#include "cuda_parity.h"
#include "temp_dir.h"
#include "tiny_gpt_fixture.h"

using namespace kiln;
using namespace kiln::testing;
using namespace kiln::testing::tiny_gpt;

namespace {

const Device kGpu = Device::cuda();
const Device kCpu = Device::cpu();

// ---- comparing ----------------------------------------------------------------------------

// Checks |got - expected| <= tol * (|expected| + scale) element by element, with scale the
// largest |expected| of the tensor: relative per element, with the tensor's own magnitude
// as the floor near zero, where f32 rounding of the large terms that cancel dominates
// (test_gpt.cpp's measure). `got` may live on the GPU.
void check_close_to(const Tensor& got, const Tensor& expected, double tol, const std::string& what) {
  CAPTURE(what);
  REQUIRE(got.shape() == expected.shape());
  const std::vector<double> g = got.to_vector<double>();
  const std::vector<double> e = expected.to_vector<double>();
  double scale = 0;
  for (double v : e) scale = std::max(scale, std::fabs(v));
  double worst = 0;
  size_t worst_at = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    const double diff = std::fabs(g[i] - e[i]);
    const double rel = std::isnan(diff) ? std::numeric_limits<double>::infinity()
                                        : diff == 0 ? 0 : diff / (std::fabs(e[i]) + scale);
    if (rel > worst) worst = rel, worst_at = i;
  }
  CHECK_MESSAGE(worst <= tol, what, ": element ", worst_at, " is ", g.empty() ? 0 : g[worst_at], ", expected ",
                e.empty() ? 0 : e[worst_at], " (relative error ", worst, " > ", tol, ")");
}

// ---- models on both devices ------------------------------------------------------------------

// A model's CPU instance and its GPU twin holding the same weights.
template <class Model>
struct Twins {
  std::shared_ptr<Model> cpu, gpu;
};

// Builds the model twice from `make` and copies the CPU one's weights into the GPU one
// (load_state_dict moves each tensor to the destination's device).
template <class Model>
Twins<Model> make_twins(const std::function<std::shared_ptr<Model>()>& make) {
  Twins<Model> t{make(), make()};
  t.gpu->to(kGpu);
  t.gpu->load_state_dict(t.cpu->state_dict());
  for (const auto& [name, p] : t.gpu->named_parameters()) REQUIRE_MESSAGE(p.device() == kGpu, name);
  return t;
}

// Runs `forward` and the loss on both twins, then compares the outputs, the losses, and
// the gradient of every parameter. `input` and `target` are CPU tensors.
template <class Model>
void check_model_parity(const std::string& name, const Twins<Model>& twins,
                        const std::function<Tensor(const Model&, const Tensor&)>& forward,
                        const std::function<Tensor(const Tensor&, const Tensor&)>& loss_of, const Tensor& input,
                        const Tensor& target, double tol = 1e-4) {
  CAPTURE(name);
  const Tensor cpu_out = forward(*twins.cpu, input);
  const Tensor gpu_out = forward(*twins.gpu, input.to(kGpu));
  REQUIRE(gpu_out.device() == kGpu);
  check_close_to(gpu_out, cpu_out, tol, name + " output");

  const Tensor cpu_loss = loss_of(cpu_out, target), gpu_loss = loss_of(gpu_out, target.to(kGpu));
  check_close_to(gpu_loss, cpu_loss, tol, name + " loss");
  cpu_loss.backward();
  gpu_loss.backward();

  const auto cpu_params = twins.cpu->named_parameters(), gpu_params = twins.gpu->named_parameters();
  REQUIRE(cpu_params.size() == gpu_params.size());
  for (size_t i = 0; i < cpu_params.size(); ++i) {
    const auto& [param_name, cpu_p] = cpu_params[i];
    const Tensor& gpu_p = gpu_params[i].second;
    REQUIRE_MESSAGE(cpu_p.grad().defined() == gpu_p.grad().defined(), param_name);
    if (!cpu_p.grad().defined()) continue;
    REQUIRE_MESSAGE(gpu_p.grad().device() == kGpu, param_name);
    check_close_to(gpu_p.grad(), cpu_p.grad(), tol, name + " gradient of " + param_name);
  }
}

// ---- the tiny GPT of test_gpt.cpp --------------------------------------------------------------

std::shared_ptr<nn::GPT> fixture_gpt() { return golden_model(); }

Tensor gpt_forward(const nn::GPT& model, const Tensor& tokens) { return model.forward(tokens); }

// ---- small image models: the ViT and ConvNet examples' layers, in miniature -----------------

// Patch embedding, a learned position table, transformer blocks that pool their tokens
// on the patch grid with ContextPool2d, a final norm, mean pooling and a linear head.
struct MiniVit : nn::Module {
  std::shared_ptr<nn::PatchEmbed> patch_embed;
  Tensor pos_embed;
  std::shared_ptr<nn::TransformerBlock> block1, block2;
  std::shared_ptr<nn::LayerNorm> norm;
  std::shared_ptr<nn::Linear> head;

  MiniVit() {
    patch_embed = register_module(
        "patch_embed",
        std::make_shared<nn::PatchEmbed>(nn::PatchEmbedOptions{.img_size = 12, .patch_size = 4, .in_chans = 3,
                                                               .embed_dim = 24}));
    pos_embed = register_parameter("pos_embed", randn({1, 9, 24}) * 0.02);
    nn::TransformerBlockOptions options{.mlp_ratio = 2, .activation = "gelu"};
    options.context_pool = nn::ContextPoolModuleOptions{.s_max = 2.0};
    options.context_pool_grid = Size2{3, 3};
    block1 = register_module("block1", std::make_shared<nn::TransformerBlock>(24, 3, options));
    options.context_pool_placement = "after_block";
    block2 = register_module("block2", std::make_shared<nn::TransformerBlock>(24, 3, options));
    norm = register_module("norm", std::make_shared<nn::LayerNorm>(Shape{24}));
    head = register_module("head", std::make_shared<nn::Linear>(24, 5));
  }
  Tensor forward(const Tensor& images) const {
    const Tensor tokens = block2->forward(block1->forward(patch_embed->forward(images) + pos_embed));
    return head->forward(mean(norm->forward(tokens), {1}));
  }
};

// 3x3 convolutions with ReLU, downsampled once by MaxPool2d and once by a strided
// ContextPool2d on the feature maps, then global average pooling and a linear head.
struct MiniConvNet : nn::Module {
  std::shared_ptr<nn::Conv2d> conv1, conv2;
  std::shared_ptr<nn::MaxPool2d> max_pool;
  std::shared_ptr<nn::ContextPool2d> context_pool;
  std::shared_ptr<nn::Linear> head;

  MiniConvNet() {
    conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(3, 8, 3, Conv2dOptions{.padding = 1}));
    max_pool = register_module("max_pool", std::make_shared<nn::MaxPool2d>(2));
    conv2 = register_module("conv2", std::make_shared<nn::Conv2d>(8, 12, 3, Conv2dOptions{.padding = 1}));
    context_pool =
        register_module("context_pool", std::make_shared<nn::ContextPool2d>(12, nn::ContextPoolModuleOptions{
                                                                                     .s_max = 2.0, .stride = 2}));
    head = register_module("head", std::make_shared<nn::Linear>(12, 5));
  }
  Tensor forward(const Tensor& images) const {
    const Tensor a = max_pool->forward(relu(conv1->forward(images)));
    const Tensor b = context_pool->forward_nchw(relu(conv2->forward(a)));
    return head->forward(mean(b, {2, 3}));
  }
};

// ---- training runs on the GPU --------------------------------------------------------------------

constexpr int64_t kVocab = 29, kSeq = 11;

// 40 random token windows (inputs and the next tokens), the same on every call.
std::shared_ptr<nn::data::TensorDataset> token_windows() {
  manual_seed(99);
  const Tensor stream = randint(0, kVocab, {40, kSeq + 1});
  return std::make_shared<nn::data::TensorDataset>(stream.narrow(1, 0, kSeq).contiguous(),
                                                   stream.narrow(1, 1, kSeq).contiguous());
}

nn::GPTConfig small_gpt_config(double dropout) {
  return {.vocab_size = kVocab, .block_size = kSeq, .n_layer = 2, .n_head = 2, .d_model = 16, .dropout = dropout};
}

// Everything a training process builds, from scratch, on `device`. Only `seed` differs
// between the "processes" of a test: the checkpoint alone must bring back the weights,
// the optimizer's moments and the generator that draws the dropout masks.
struct GptProcess {
  std::shared_ptr<nn::GPT> model;
  std::unique_ptr<nn::optim::AdamW> optimizer;
  nn::data::DataLoader loader;
  Device device;

  GptProcess(uint64_t seed, Device device, double dropout = 0.1)
      : loader(token_windows(), {.batch_size = 4, .shuffle = true, .seed = 7}), device(device) {
    manual_seed(seed);
    model = std::make_shared<nn::GPT>(small_gpt_config(dropout));
    model->to(device);  // before the optimizer, which keeps the parameters it is given
    optimizer = std::make_unique<nn::optim::AdamW>(nn::optim::weight_decay_groups(*model),
                                                   nn::optim::AdamWOptions{.lr = 3e-3, .weight_decay = 0.1});
  }

  // Trains with `options` (on this process's device, quietly); returns each step's loss.
  std::vector<double> fit(nn::TrainerOptions options) {
    options.device = device;
    options.progress = "none";
    nn::Trainer trainer(*model, *optimizer, options);
    std::vector<double> losses;
    trainer.set_on_step([&](const nn::StepStats& s) { losses.push_back(s.loss); });
    trainer.fit(loader, [&](const nn::data::Batch& b) { return next_token_loss(model->forward(b.input), b.target); });
    return losses;
  }
};

}  // namespace

// ---- forward and backward ----------------------------------------------------------------------

TEST_CASE("[cuda] the tiny GPT of test_gpt.cpp: logits, loss and every gradient on the GPU match the CPU") {
  if (skip_without_gpu()) return;
  const auto twins = make_twins<nn::GPT>(fixture_gpt);
  const Tensor tokens = fixture_tensor("data.tokens"), targets = fixture_tensor("data.targets");
  check_model_parity<nn::GPT>("tiny GPT", twins, gpt_forward, next_token_loss, tokens, targets);
  // And PyTorch's f64 reference, as test_gpt.cpp holds the CPU to.
  const Tensor logits = twins.gpu->forward(tokens.to(kGpu));
  check_close_to(logits, fixture_tensor("expected.logits"), 1e-4, "GPU logits vs PyTorch");
}

TEST_CASE("[cuda] a GPT with a causal ContextPool in every block: odd sizes, both placements, GPU = CPU") {
  if (skip_without_gpu()) return;
  for (const std::string placement : {"after_attention", "after_block"}) {
    CAPTURE(placement);
    manual_seed(5);
    nn::GPTConfig config{.vocab_size = 37, .block_size = 13, .n_layer = 2, .n_head = 3, .d_model = 24};
    config.context_pool = nn::ContextPoolModuleOptions{.s_max = 3.0};
    config.context_pool_placement = placement;
    const auto twins = make_twins<nn::GPT>([&] { return std::make_shared<nn::GPT>(config); });
    const Tensor tokens = randint(0, 37, {3, 13}), targets = randint(0, 37, {3, 13});
    check_model_parity<nn::GPT>("ContextPool GPT", twins, gpt_forward, next_token_loss, tokens, targets);
    // A shorter sequence, as non-contiguous views: the first positions only, as on the CPU.
    check_model_parity<nn::GPT>("ContextPool GPT, T = 7",
                                make_twins<nn::GPT>([&] { return std::make_shared<nn::GPT>(config); }), gpt_forward,
                                next_token_loss, tokens.narrow(1, 0, 7), targets.narrow(1, 0, 7));
  }
}

TEST_CASE("[cuda] a small ViT with ContextPool2d on the patch grid and a small ConvNet: GPU = CPU") {
  if (skip_without_gpu()) return;
  manual_seed(11);
  const Tensor images = randn({3, 3, 12, 12}), labels = randint(0, 5, {3});
  const auto classify = [](const Tensor& logits, const Tensor& y) { return cross_entropy(logits, y); };
  check_model_parity<MiniVit>("ViT", make_twins<MiniVit>([] { return std::make_shared<MiniVit>(); }),
                              [](const MiniVit& m, const Tensor& x) { return m.forward(x); }, classify, images,
                              labels);
  // 11 x 11: odd sides through MaxPool2d (floor) and the strided pool (ceil).
  const Tensor odd_images = randn({2, 3, 11, 11}), odd_labels = randint(0, 5, {2});
  check_model_parity<MiniConvNet>(
      "ConvNet", make_twins<MiniConvNet>([] { return std::make_shared<MiniConvNet>(); }),
      [](const MiniConvNet& m, const Tensor& x) { return m.forward(x); }, classify, odd_images, odd_labels);
}

// ---- optimizer steps and the Trainer -------------------------------------------------------------

TEST_CASE("[cuda] 5 AdamW steps of the tiny GPT give the CPU's losses and weights") {
  if (skip_without_gpu()) return;
  const auto twins = make_twins<nn::GPT>(fixture_gpt);
  const Tensor tokens = fixture_tensor("data.tokens"), targets = fixture_tensor("data.targets");
  const nn::optim::AdamWOptions options{.lr = fixture_number("lr"),
                                        .betas = {fixture_number("beta1"), fixture_number("beta2")},
                                        .eps = fixture_number("eps"),
                                        .weight_decay = fixture_number("weight_decay")};
  nn::optim::AdamW cpu_opt(nn::optim::weight_decay_groups(*twins.cpu), options);
  nn::optim::AdamW gpu_opt(nn::optim::weight_decay_groups(*twins.gpu), options);
  const Tensor gpu_tokens = tokens.to(kGpu), gpu_targets = targets.to(kGpu);
  std::vector<double> cpu_losses, gpu_losses;
  for (int step = 0; step < 5; ++step) {
    cpu_opt.zero_grad();
    gpu_opt.zero_grad();
    const Tensor cpu_loss = next_token_loss(twins.cpu->forward(tokens), targets);
    const Tensor gpu_loss = next_token_loss(twins.gpu->forward(gpu_tokens), gpu_targets);
    cpu_losses.push_back(cpu_loss.item<double>());
    gpu_losses.push_back(gpu_loss.item<double>());
    cpu_loss.backward();
    gpu_loss.backward();
    cpu_opt.step();
    gpu_opt.step();
  }
  check_close_to(from_vector(gpu_losses, {.dtype = f64}), from_vector(cpu_losses, {.dtype = f64}), 1e-4,
                 "losses of 5 AdamW steps");
  CHECK(gpu_losses.back() < gpu_losses.front());
  const auto cpu_params = twins.cpu->named_parameters(), gpu_params = twins.gpu->named_parameters();
  for (size_t i = 0; i < cpu_params.size(); ++i) {
    const std::string& name = cpu_params[i].first;
    const Tensor &gpu = gpu_params[i].second, &cpu = cpu_params[i].second;
    if (name.ends_with("attn.qkv.bias")) {
      // The key bias gets a zero gradient in exact arithmetic (softmax ignores a constant
      // added to every score of a row), so what reaches it is rounding noise, which each
      // device rounds differently and AdamW scales up to a full-size step. Only the query
      // and value biases can be compared.
      const int64_t d = cpu.size(0) / 3;
      check_close_to(gpu.narrow(0, 0, d), cpu.narrow(0, 0, d), 1e-4, "weights after 5 steps: " + name + " (q)");
      check_close_to(gpu.narrow(0, 2 * d, d), cpu.narrow(0, 2 * d, d), 1e-4, "weights after 5 steps: " + name + " (v)");
      continue;
    }
    check_close_to(gpu, cpu, 1e-4, "weights after 5 steps: " + name);
  }
}

TEST_CASE("[cuda] bf16 autocast trains the tiny GPT like f32: 20 AdamW steps, f32 weights, grads and state") {
  if (skip_without_gpu()) return;
  // Two GPU copies of one model: one trained in f32, one under AutocastGuard (GEMMs and
  // attention on bf16 tensor cores, the rest and the optimizer's master weights in f32).
  const auto f32_twins = make_twins<nn::GPT>(fixture_gpt);
  const auto bf16_twins = make_twins<nn::GPT>(fixture_gpt);
  const std::shared_ptr<nn::GPT> models[2] = {f32_twins.gpu, bf16_twins.gpu};
  const Tensor tokens = fixture_tensor("data.tokens").to(kGpu), targets = fixture_tensor("data.targets").to(kGpu);
  const nn::optim::AdamWOptions options{.lr = 1e-2, .weight_decay = 0.01};
  std::vector<double> losses[2];
  std::unique_ptr<nn::optim::AdamW> optimizers[2];
  for (int run = 0; run < 2; ++run) {
    optimizers[run] = std::make_unique<nn::optim::AdamW>(nn::optim::weight_decay_groups(*models[run]), options);
    for (int step = 0; step < 20; ++step) {
      optimizers[run]->zero_grad();
      Tensor loss;
      {
        AutocastGuard mixed(run == 1);
        loss = next_token_loss(models[run]->forward(tokens), targets);
      }
      losses[run].push_back(loss.item<double>());
      loss.backward();
      optimizers[run]->step();
    }
  }
  std::string trajectories;
  for (int run = 0; run < 2; ++run) {
    trajectories += run == 0 ? "f32:" : " bf16:";
    for (double l : losses[run]) trajectories += " " + std::to_string(l);
  }
  CAPTURE(trajectories);
  // The first forward differs only by bf16 rounding; both learn, and end close together.
  CHECK(std::abs(losses[1].front() - losses[0].front()) < 1e-2 * losses[0].front());
  CHECK(losses[0].back() < 0.7 * losses[0].front());
  CHECK(losses[1].back() < 0.7 * losses[1].front());
  CHECK(std::abs(losses[1].back() - losses[0].back()) < 0.1 * losses[0].back());
  for (const auto& [name, p] : models[1]->named_parameters()) {
    CAPTURE(name);
    CHECK(p.dtype() == f32);
    CHECK(p.grad().dtype() == f32);
  }
  // The moment buffers (the optimizer's per-parameter tensors; its scalars are f64 metadata).
  int moments = 0;
  for (const auto& [name, t] : optimizers[1]->state_dict()) {
    if (t.dim() == 0) continue;
    CAPTURE(name);
    CHECK(t.dtype() == f32);
    ++moments;
  }
  CHECK(moments == 2 * static_cast<int>(models[1]->parameters().size()));
}

TEST_CASE("[cuda] Trainer on the GPU: 4 steps, checkpoint, resume in a fresh process, 4 more == 8 straight") {
  if (skip_without_gpu()) return;
  TempDir straight_dir, split_dir;
  // Dropout on: the masks come from the generator the checkpoint restores.
  const std::vector<double> straight =
      GptProcess(1, kGpu).fit({.max_steps = 8, .checkpoint_dir = straight_dir.path(), .checkpoint_interval = 4});
  REQUIRE(straight.size() == 8);

  std::vector<double> resumed =
      GptProcess(1, kGpu).fit({.max_steps = 4, .checkpoint_dir = split_dir.path(), .checkpoint_interval = 4});
  // Another seed: the checkpoint alone must bring the weights, moments and generator back.
  const std::vector<double> rest =
      GptProcess(2, kGpu).fit({.max_steps = 8, .checkpoint_dir = split_dir.path(), .resume = true});
  resumed.insert(resumed.end(), rest.begin(), rest.end());
  REQUIRE(resumed.size() == 8);
  for (size_t i = 0; i < straight.size(); ++i) {
    CAPTURE(i);
    CHECK(resumed[i] == straight[i]);  // exact: the same kernels on the same data in the same order
  }

  // The checkpoint a GPU run wrote is device-neutral: it loads into a CPU model, and into
  // the GPU again, with the weights the run ended with.
  const nn::TrainingCheckpoint checkpoint = nn::load_checkpoint(split_dir.file("latest.ckpt.safetensors"));
  GptProcess gpu(3, kGpu), cpu(3, kCpu);
  gpu.model->load_state_dict(checkpoint.model);
  cpu.model->load_state_dict(checkpoint.model);
  gpu.optimizer->load_state_dict(checkpoint.optimizer);
  for (size_t i = 0; i < gpu.optimizer->parameters().size(); ++i)
    for (const auto& [buffer, t] : gpu.optimizer->state(i).buffers) CHECK_MESSAGE(t.device() == kGpu, buffer);
  const auto gpu_params = gpu.model->named_parameters(), cpu_params = cpu.model->named_parameters();
  for (size_t i = 0; i < gpu_params.size(); ++i)
    check_close(gpu_params[i].second.detach().to(kCpu), cpu_params[i].second.detach(), 0, 0);
}

TEST_CASE("[cuda] Trainer on the GPU with gradient clipping and accumulation follows the CPU run") {
  if (skip_without_gpu()) return;
  // No dropout: the two devices draw the same masks, but a mask flip at a rounding
  // boundary is not what this case is about.
  const nn::TrainerOptions options{.max_steps = 6, .grad_accum_steps = 2, .clip_grad_norm = 0.5};
  const std::vector<double> gpu = GptProcess(4, kGpu, /*dropout=*/0).fit(options);
  const std::vector<double> cpu = GptProcess(4, kCpu, /*dropout=*/0).fit(options);
  check_close_to(from_vector(gpu, {.dtype = f64}), from_vector(cpu, {.dtype = f64}), 1e-4, "trainer losses");
}

TEST_CASE("[cuda] the caching allocator reaches a steady state within 2 training steps") {
  if (skip_without_gpu()) return;
  if (!cuda::caching_enabled()) {
    MESSAGE("skipped: KILN_CUDA_NO_CACHING is set, so there is no cache to reach a steady state");
    return;
  }
  GptProcess run(6, kGpu);
  const Tensor tokens = run.loader.dataset().get_batch({0, 1, 2, 3}).input.to(kGpu);
  const Tensor targets = run.loader.dataset().get_batch({0, 1, 2, 3}).target.to(kGpu);
  std::vector<cuda::MemoryStats> after_step;
  for (int step = 0; step < 10; ++step) {
    run.optimizer->zero_grad();
    const Tensor loss = next_token_loss(run.model->forward(tokens), targets);
    loss.backward();
    run.optimizer->step();
    (void)loss.item<double>();  // as a training loop reads it
    after_step.push_back(cuda::memory_stats());
  }
  // Step 1 creates the optimizer's moments and fills the cache; from step 2 on, every
  // allocation is served from the cache and nothing is returned to CUDA.
  for (int step = 2; step < 10; ++step) {
    CAPTURE(step + 1);
    CHECK(after_step[step].device_allocs == after_step[1].device_allocs);
    CHECK(after_step[step].reserved == after_step[1].reserved);
    CHECK(after_step[step].allocated == after_step[1].allocated);
  }
  CHECK(after_step.back().cache_hits > after_step[1].cache_hits);
}

TEST_CASE("[cuda] a training step only queues work: the host waits where it reads a value, nowhere else") {
  if (skip_without_gpu()) return;
  // A host wait inside forward, backward or the optimizer would stall the GPU once per op:
  // the queue drains, and every later kernel waits for the host to queue it.
  SUBCASE("a hand-written step: forward, backward and AdamW wait for nothing; item() waits once") {
    // Dropout on (the masks' seeds are drawn on the host), and a ContextPool in every block.
    manual_seed(3);
    nn::GPTConfig config = small_gpt_config(/*dropout=*/0.1);
    config.context_pool = nn::ContextPoolModuleOptions{.s_max = 3.0};
    nn::GPT model(config);
    model.to(kGpu);
    nn::optim::AdamW optimizer(nn::optim::weight_decay_groups(model), {.lr = 1e-3, .weight_decay = 0.1});
    const nn::data::Batch batch = token_windows()->get_batch({0, 1, 2, 3});
    const Tensor tokens = batch.input.to(kGpu), targets = batch.target.to(kGpu);
    for (int step = 0; step < 3; ++step) {
      CAPTURE(step);
      const int64_t before = cuda::host_wait_count();
      optimizer.zero_grad();
      const Tensor loss = next_token_loss(model.forward(tokens), targets);
      loss.backward();
      optimizer.step();
      CHECK(cuda::host_wait_count() == before);
      (void)loss.item<double>();
      CHECK(cuda::host_wait_count() == before + 1);
    }
  }
  SUBCASE("the Trainer: one wait per step, for the losses of all its micro-batches and the clipping norm") {
    GptProcess run(6, kGpu);
    std::vector<int64_t> waits;
    nn::Trainer trainer(*run.model, *run.optimizer,
                        {.max_steps = 4, .grad_accum_steps = 2, .clip_grad_norm = 1.0, .log_interval = 0,
                         .progress = "none", .device = kGpu});
    trainer.set_on_step([&](const nn::StepStats&) { waits.push_back(cuda::host_wait_count()); });
    trainer.fit(run.loader,
                [&](const nn::data::Batch& b) { return next_token_loss(run.model->forward(b.input), b.target); });
    REQUIRE(waits.size() == 4);
    for (size_t i = 1; i < waits.size(); ++i) {
      CAPTURE(i);
      CHECK(waits[i] - waits[i - 1] == 1);
    }
  }
}

// ---- device mistakes ------------------------------------------------------------------------------

TEST_CASE("[cuda] a model and its data on different devices are clear errors") {
  if (skip_without_gpu()) return;
  manual_seed(0);
  nn::GPT cpu_model(small_gpt_config(0));
  const Tensor gpu_tokens = randint(0, kVocab, {2, kSeq}).to(kGpu);
  // The model's first op (the token embedding) names both devices and the fix.
  CHECK_THROWS_KILN(cpu_model.forward(gpu_tokens), "embedding: tensors are on different devices");

  // The trainer names the parameter and the fix before anything runs.
  GptProcess on_gpu(0, kGpu);
  nn::TrainerOptions options{.max_steps = 1, .progress = "none"};  // device: the CPU
  nn::Trainer trainer(*on_gpu.model, *on_gpu.optimizer, options);
  CHECK_THROWS_KILN(trainer.fit(on_gpu.loader, [](const nn::data::Batch&) { return Tensor(); }),
                    "Trainer: parameter 'wte.weight' is on cuda:0 but TrainerOptions::device is cpu");

  // A gradient seed on another device than its output is refused before any kernel runs
  // (a fused backward would otherwise hand a host pointer to a GPU kernel).
  const Tensor w = randn({3}).to(kGpu).requires_grad_();
  CHECK_THROWS_KILN(softmax(w, 0).backward(ones({3})), "the gradient must match its dtype and device");
}

// ---- tensors a module or helper makes itself ----------------------------------------------

TEST_CASE("[cuda] modules and helpers that make their own tensors make them on the input's device") {
  if (skip_without_gpu()) return;
  // Two copies of a module from the same seed, the second moved to the GPU; both must give
  // the same output for the same input.
  const auto compare = [](const std::string& what, const auto& make, const Tensor& x, auto&& run) {
    manual_seed(5);
    auto on_cpu = make();
    manual_seed(5);
    auto on_gpu = make();
    on_gpu->to(kGpu);
    check_close_to(run(*on_gpu, x.to(kGpu)), run(*on_cpu, x), 1e-4, what);
  };
  // MultiHeadAttention's additive mask for key_padding_mask.
  const Tensor pad = gt(uniform(0, 1, {2, 5}), 0.7);
  compare("MultiHeadAttention with key_padding_mask", [] { return std::make_shared<nn::MultiHeadAttention>(8, 2); },
          randn({2, 5, 8}),
          [&](const nn::MultiHeadAttention& m, const Tensor& x) { return m.forward(x, pad.to(x.device())); });
  // ContextPool's constant m (size_only, uniform) and constant s (fixed_size, weights_only, uniform).
  using Mode = nn::ContextPoolMode;
  for (Mode mode : {Mode::fixed_size, Mode::weights_only, Mode::size_only, Mode::uniform}) {
    const nn::ContextPoolModuleOptions o{.mode = mode, .size = 1.5};
    compare("ContextPool1d " + nn::to_string(mode), [&] { return std::make_shared<nn::ContextPool1d>(6, o); },
            randn({2, 7, 6}), [](const nn::ContextPool1d& m, const Tensor& x) { return m.forward(x); });
    compare("ContextPool2d " + nn::to_string(mode), [&] { return std::make_shared<nn::ContextPool2d>(6, o); },
            randn({2, 4, 5, 6}), [](const nn::ContextPool2d& m, const Tensor& x) { return m.forward(x); });
  }
  // TensorDataset over GPU tensors: its batch index is moved to each tensor's device.
  const Tensor inputs = randn({6, 3}), targets = randint(0, 4, {6});
  const nn::data::TensorDataset on_gpu(inputs.to(kGpu), targets.to(kGpu));
  const nn::data::Batch batch = on_gpu.get_batch({4, 0, 4});
  check_close_to(batch.input, index_select(inputs, 0, from_vector<int64_t>({4, 0, 4})), 0, "TensorDataset input");
  CHECK(batch.target.to(kCpu).to_vector<int64_t>() == std::vector<int64_t>{targets.to_vector<int64_t>()[4],
                                                                              targets.to_vector<int64_t>()[0],
                                                                              targets.to_vector<int64_t>()[4]});
  // gradcheck of a GPU op: perturbed on the host, evaluated on the GPU.
  const Tensor w = randn({3, 4}, {.dtype = f64}).to(kGpu).requires_grad_();
  const GradcheckResult r = gradcheck([](const std::vector<Tensor>& in) { return tanh(in[0]) * in[0]; }, {w});
  CHECK_MESSAGE(r.ok, r.message);
}
