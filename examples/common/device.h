// device.h: the --device and --bf16 flags of kiln's examples (header-only).
//
//   std::string device = "cpu";
//   bool bf16 = false;
//   flags.add("--device", device, kDeviceHelp, {"cpu", "cuda"});
//   flags.add("--bf16", bf16, kBf16Help);
//   ...
//   const kiln::Device where = kiln::examples::select_device(device);  // a clear kiln::Error without a GPU
//   kiln::AutocastGuard mixed(kiln::examples::use_bf16(bf16, where));  // around training and eval
//   model->to(where);                          // before the optimizer is built
//   trainer options: .device = where           // the Trainer moves each batch there
#pragma once

#include <string>

#include <kiln/core/autocast.h>
#include <kiln/core/device.h>
#include <kiln/core/error.h>
#include <kiln/cuda/device.h>
#include <kiln/nn/module.h>

namespace kiln::examples {

inline constexpr const char* kDeviceHelp = "where to train and evaluate: cpu, or cuda (the first visible GPU)";
inline constexpr const char* kBf16Help =
    "bf16 mixed precision on the GPU: matrix products and attention in bf16 with f32 accumulation, the rest in f32";

// "cpu" or "cuda" (the first GPU) as a Device. Asking for a GPU where none is visible is
// a kiln::Error that says why (no driver, no device, or a build without CUDA).
inline Device select_device(const std::string& name) {
  if (name == "cpu") return Device::cpu();
  KILN_CHECK(name == "cuda", "--device expects cpu or cuda, got '", name, "'");
  KILN_CHECK(cuda::is_available(), "--device cuda: no GPU is available (", cuda::unavailable_reason(),
             "); use --device cpu");
  return Device::cuda(0);
}

// Whether to train under kiln::AutocastGuard (core/autocast.h). Refused on the CPU, where
// bf16 is a storage type: a run that said bf16 and computed in f32 would mislead every
// number it prints.
inline bool use_bf16(bool bf16, Device device) {
  KILN_CHECK(!bf16 || device.is_cuda(), "--bf16 needs --device cuda: on the CPU kiln computes in f32 only");
  return bf16;
}

// Where a module's parameters live (the CPU for a module without any).
inline Device device_of(const nn::Module& module) {
  const auto params = module.parameters();
  return params.empty() ? Device::cpu() : params.front().device();
}

}  // namespace kiln::examples
