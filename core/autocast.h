// bf16 mixed precision: inside an AutocastGuard, the ops that are worth it on a GPU —
// matrix products (matmul, bmm, linear) and attention — take their f32 CUDA inputs in
// bf16 and compute on tensor cores with f32 accumulation; everything else (norms,
// softmax, losses, elementwise, the optimizer's update of the f32 master weights) runs
// in f32 as before. The same division of labour as PyTorch's
// torch.autocast("cuda", dtype=torch.bfloat16).
//
//   {
//     AutocastGuard bf16;                 // this thread, until the scope ends
//     loss = cross_entropy(model->forward(x), y);
//   }
//   loss.backward();                      // backward follows what the forward recorded
//
// How an op honours it. matmul/bmm/linear record one node that rounds their f32 inputs to
// bf16, multiplies them on tensor cores and writes the f32 accumulator as the result (no
// bf16 rounding of the output); its backward rounds the incoming gradient to bf16 and
// forms f32 gradients the same way (ops/linalg.cpp). scaled_dot_product_attention (head
// dims up to 128) runs the bf16 tensor-core kernels of cuda/attention_bf16.cu, which round
// f32 tiles to bf16 as they load them, so no converted copies exist; it returns f32 too.
// kiln does not promote dtypes implicitly, so returning f32 keeps every other op and the
// user's code unchanged; the price is that activations between GEMMs are stored in f32,
// not bf16 as PyTorch would.
//
// On the CPU the guard changes nothing: bf16 is a storage type there.
#pragma once

#include "kiln/core/tensor.h"

namespace kiln {

struct Autocast {
  static bool is_enabled();  // in this thread
  static void set_enabled(bool enabled);
  // Whether an autocast op should compute `t` in bf16: the mode is on, and t is an f32
  // tensor on a GPU.
  static bool applies_to(const Tensor& t);
};

// RAII: turns bf16 autocast on (or off, with false) in this thread for its lifetime.
class AutocastGuard {
 public:
  explicit AutocastGuard(bool enabled = true) : prev_(Autocast::is_enabled()) { Autocast::set_enabled(enabled); }
  ~AutocastGuard() { Autocast::set_enabled(prev_); }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool prev_;
};

}  // namespace kiln
