// CPU vs CUDA parity checks (ggml's test-backend-ops idea): run one function on CPU
// tensors and on copies of them on the GPU, then compare the outputs and the gradients
// of every floating input. The CPU path is already tested against PyTorch and finite
// differences, so agreement here tests the CUDA kernels, forward and backward.
//
//   check_cuda_matches_cpu("softmax", [](const auto& in) { return softmax(in[0], -1); },
//                          {randn({3, 37})});
//
// Cases call skip_without_gpu() first: without a visible GPU they print why and pass.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <kiln/cuda/device.h>

#include "helpers.h"

namespace kiln::testing {

// True, after printing why, when a GPU case has no GPU to run on.
inline bool skip_without_gpu() {
  if (cuda::is_available()) return false;
  MESSAGE("skipped: ", cuda::unavailable_reason());
  return true;
}

struct ParityTolerance {
  double atol = 1e-5;
  double rtol = 1e-4;
};

using ParityFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Runs `fn` on `inputs` (CPU tensors) and on their GPU copies. Floating inputs become
// leaves that require grad; when the output is floating, both sides back-propagate the
// same random upstream gradient. Checks that the output stays on the GPU, then compares
// the output and each input's gradient within `tol`.
inline void check_cuda_matches_cpu(const std::string& name, const ParityFn& fn, const std::vector<Tensor>& inputs,
                                   ParityTolerance tol = {}) {
  CAPTURE(name);
  auto leaves_on = [&](Device device) {
    std::vector<Tensor> out;
    for (const Tensor& t : inputs) {
      Tensor copy = t.to(device).detach();
      if (copy.dtype() == f32 || copy.dtype() == f64) copy.requires_grad_();
      out.push_back(copy);
    }
    return out;
  };
  std::vector<Tensor> cpu_in = leaves_on(Device::cpu()), gpu_in = leaves_on(Device::cuda());
  const Tensor cpu_out = fn(cpu_in), gpu_out = fn(gpu_in);
  REQUIRE(gpu_out.device() == Device::cuda());
  REQUIRE(gpu_out.dtype() == cpu_out.dtype());
  check_close(gpu_out.to(Device::cpu()), cpu_out, tol.atol, tol.rtol);
  if (!cpu_out.requires_grad()) return;

  const Tensor upstream = randn(cpu_out.shape(), {.dtype = cpu_out.dtype()});
  cpu_out.backward(upstream);
  gpu_out.backward(upstream.to(Device::cuda()));
  for (size_t i = 0; i < inputs.size(); ++i) {
    CAPTURE(i);
    if (!cpu_in[i].requires_grad()) continue;
    REQUIRE(cpu_in[i].grad().defined() == gpu_in[i].grad().defined());
    if (!cpu_in[i].grad().defined()) continue;
    REQUIRE(gpu_in[i].grad().device() == Device::cuda());
    check_close(gpu_in[i].grad().to(Device::cpu()), cpu_in[i].grad(), tol.atol, tol.rtol);
  }
}

}  // namespace kiln::testing
