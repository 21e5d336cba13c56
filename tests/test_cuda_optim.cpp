// CUDA parity for the fused optimizer updates (SGD in all its options, Adam, AdamW) and
// clip_grad_norm_: the same parameters and gradients on the CPU and on the GPU must give
// the same parameters after several steps, and the same clipped gradients. Every case
// skips with a printed reason when no GPU is visible.
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <kiln/nn/optim/adam.h>
#include <kiln/nn/optim/clip_grad.h>
#include <kiln/nn/optim/sgd.h>

#include "cuda_parity.h"

using namespace kiln;
using namespace kiln::testing;
namespace optim = kiln::nn::optim;

namespace {

const Device kGpu = Device::cuda();

using MakeOptimizer = std::function<std::unique_ptr<optim::Optimizer>(const std::vector<Tensor>&)>;

// Parameters of odd sizes (one element, a prime count, a 2-D block) in `dtype`.
std::vector<Tensor> random_params(DType dtype) {
  return {randn({1}, {.dtype = dtype}), randn({1031}, {.dtype = dtype}), randn({37, 5}, {.dtype = dtype})};
}

// Leaf copies of `params` on `device`, ready for an optimizer.
std::vector<Tensor> leaves_on(const std::vector<Tensor>& params, Device device) {
  std::vector<Tensor> out;
  for (const Tensor& p : params) out.push_back(p.to(device).detach().requires_grad_());
  return out;
}

// Runs `steps` steps of the same optimizer on CPU and GPU copies of the same parameters,
// feeding both the same random gradients, and compares the parameters after each step.
void check_steps_match(const std::string& name, const MakeOptimizer& make, DType dtype, double tol, int steps = 5) {
  CAPTURE(name);
  CAPTURE(dtype_name(dtype));
  const std::vector<Tensor> start = random_params(dtype);
  std::vector<Tensor> cpu = leaves_on(start, Device::cpu()), gpu = leaves_on(start, kGpu);
  const auto cpu_opt = make(cpu), gpu_opt = make(gpu);
  for (int step = 0; step < steps; ++step) {
    CAPTURE(step);
    for (size_t i = 0; i < cpu.size(); ++i) {
      const Tensor g = randn(cpu[i].shape(), {.dtype = dtype});
      cpu[i].set_grad(g);
      gpu[i].set_grad(g.to(kGpu));
    }
    cpu_opt->step();
    gpu_opt->step();
    for (size_t i = 0; i < cpu.size(); ++i) {
      CAPTURE(i);
      REQUIRE(gpu[i].device() == kGpu);
      check_close(gpu[i].detach().to(Device::cpu()), cpu[i].detach(), tol, tol);
    }
  }
}

// The tolerance of a few steps' rounding: CUDA may fuse multiply-adds the CPU rounds twice.
double tolerance(DType dtype) { return dtype == f32 ? 1e-6 : 1e-12; }

}  // namespace

TEST_CASE("[cuda] SGD steps match the CPU: plain, momentum, dampening, Nesterov, weight decay") {
  if (skip_without_gpu()) return;
  const std::vector<std::pair<std::string, optim::SGDOptions>> configs = {
      {"plain", {.lr = 0.1}},
      {"momentum", {.lr = 0.1, .momentum = 0.9}},
      {"dampening", {.lr = 0.1, .momentum = 0.9, .dampening = 0.3}},
      {"nesterov + weight decay", {.lr = 0.05, .momentum = 0.8, .weight_decay = 0.01, .nesterov = true}},
      {"weight decay only", {.lr = 0.1, .weight_decay = 0.1}},
  };
  for (DType dtype : {f32, f64})
    for (const auto& [name, options] : configs)
      check_steps_match(
          "SGD " + name,
          [&](const std::vector<Tensor>& p) { return std::make_unique<optim::SGD>(p, options); }, dtype,
          tolerance(dtype));
}

TEST_CASE("[cuda] Adam and AdamW steps match the CPU") {
  if (skip_without_gpu()) return;
  for (DType dtype : {f32, f64}) {
    check_steps_match(
        "Adam", [](const std::vector<Tensor>& p) { return std::make_unique<optim::Adam>(p, optim::AdamOptions{}); },
        dtype, tolerance(dtype));
    check_steps_match(
        "Adam + L2",
        [](const std::vector<Tensor>& p) {
          return std::make_unique<optim::Adam>(p, optim::AdamOptions{.lr = 1e-2, .weight_decay = 0.1});
        },
        dtype, tolerance(dtype));
    check_steps_match(
        "AdamW",
        [](const std::vector<Tensor>& p) {
          return std::make_unique<optim::AdamW>(p, optim::AdamWOptions{.lr = 1e-2, .betas = {0.8, 0.95}});
        },
        dtype, tolerance(dtype));
  }
}

TEST_CASE("[cuda] clip_grad_norm_ matches the CPU for norms 2, 1, 3 and inf") {
  if (skip_without_gpu()) return;
  for (double norm_type : {2.0, 1.0, 3.0, std::numeric_limits<double>::infinity()}) {
    CAPTURE(norm_type);
    for (double max_norm : {0.5, 1e6}) {  // clipped, and left alone
      CAPTURE(max_norm);
      const std::vector<Tensor> start = {randn({13, 3}), randn({1}), randn({257}, {.dtype = f64})};
      std::vector<Tensor> cpu = leaves_on(start, Device::cpu()), gpu = leaves_on(start, kGpu);
      for (size_t i = 0; i < start.size(); ++i) {
        const Tensor g = randn(start[i].shape(), {.dtype = start[i].dtype()});
        cpu[i].set_grad(g);
        gpu[i].set_grad(g.to(kGpu));
      }
      const double cpu_total = optim::clip_grad_norm_(cpu, max_norm, norm_type);
      const double gpu_total = optim::clip_grad_norm_(gpu, max_norm, norm_type);
      CHECK(gpu_total == doctest::Approx(cpu_total).epsilon(1e-6));
      for (size_t i = 0; i < start.size(); ++i) {
        CAPTURE(i);
        REQUIRE(gpu[i].grad().device() == kGpu);
        check_close(gpu[i].grad().to(Device::cpu()), cpu[i].grad(), 1e-6, 1e-5);
      }
    }
  }
}

TEST_CASE("[cuda] get_total_norm stays on the GPU and waits for nothing; it matches the CPU") {
  if (skip_without_gpu()) return;
  const std::vector<Tensor> grads = {randn({13, 3}), randn({1}), randn({257}, {.dtype = f64})};
  std::vector<Tensor> on_gpu;
  for (const Tensor& g : grads) on_gpu.push_back(g.to(kGpu));
  for (double norm_type : {2.0, 1.0, std::numeric_limits<double>::infinity()}) {
    CAPTURE(norm_type);
    const int64_t waits = cuda::host_wait_count();
    const Tensor norm = optim::get_total_norm(on_gpu, norm_type);
    CHECK(cuda::host_wait_count() == waits);
    CHECK(norm.device() == kGpu);
    CHECK(norm.dtype() == f64);
    const double expected = optim::get_total_norm(grads, norm_type).item<double>();
    CHECK(norm.item<double>() == doctest::Approx(expected).epsilon(1e-6));
  }
}

TEST_CASE("[cuda] get_total_norm of tensors on two devices lives on the first one's device") {
  if (skip_without_gpu()) return;
  const Tensor a = from_vector(std::vector<float>{3, 0}), b = from_vector(std::vector<float>{-4});
  const Tensor on_cpu = optim::get_total_norm({a, Tensor(), b.to(kGpu)});
  CHECK(on_cpu.device() == Device::cpu());
  CHECK(on_cpu.item<double>() == doctest::Approx(5.0));
  const Tensor on_gpu = optim::get_total_norm({b.to(kGpu), a}, 1.0);
  CHECK(on_gpu.device() == kGpu);
  CHECK(on_gpu.item<double>() == doctest::Approx(7.0));
}
