// scaled_dot_product_attention: argument checks, the fused CPU kernel
// (ops/cpu/attention.*) and its backward, side by side.
//
// What backward keeps. Saving the probabilities P (B, H, Lq, Lk) would spare backward
// one GEMM (q k^T) per block but costs O(B H L^2) memory per call. The kernel keeps each
// query row's logsumexp instead and recomputes P = exp(S - lse) block by block. Measured
// at B=16, H=4, L=256, D=64, f32, one thread (CPU time), forward + backward took 34 ms
// recomputing and 32 ms with a saved P (whose forward, writing 16 MB, went from 10.1 to
// 12.1 ms). A 5% faster training step is not worth 16 MB per layer at this size (and
// O(L^2) growth), so P is recomputed. The dropout mask is not stored either: both
// passes redraw it from the same Philox counters.
//
// On CUDA the same formulas run in the fused kernels of cuda/attention.*; their backward
// also reads the forward's output O, for the row sums rowsum(dO * O) that the CPU kernel
// gets from the probabilities it holds, so a CUDA call saves O too. Under bf16 autocast
// (core/autocast.h), f32 CUDA calls with head dims up to 128 run the tensor-core kernels of
// cuda/attention_bf16.cu instead: same operands, outputs and lse in f32, products in bf16.
// The call records that choice, so its backward runs the matching kernels whatever the
// autocast state is when backward() runs.
//
// Double backward. As in ops/normalization.cpp, the backward has two paths: the fused
// kernel when grad mode is off (plain backward), and the same formulas written with
// Tensor ops under create_graph, which autograd records, so second derivatives work.
#include "kiln/ops/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"
#include "kiln/core/autocast.h"
#include "kiln/core/dispatch.h"
#include "kiln/core/factory.h"
#include "kiln/core/profiler.h"
#include "kiln/core/random.h"
#include "kiln/cuda/attention.h"
#include "kiln/ops/common.h"
#include "kiln/ops/cpu/attention.h"
#include "kiln/ops/cpu/dropout.h"
#include "kiln/ops/elementwise.h"
#include "kiln/ops/linalg.h"
#include "kiln/ops/normalization.h"
#include "kiln/ops/reduce.h"

namespace kiln {

using autograd::Grads;
using autograd::Saved;

namespace {

constexpr const char* kOp = "scaled_dot_product_attention";
constexpr double kInf = std::numeric_limits<double>::infinity();

// What the backward of one call needs besides its saved tensors: plain data only.
struct AttentionCall {
  int64_t batch = 0, heads = 0, q_len = 0, kv_len = 0, head_dim = 0, value_dim = 0;
  bool one_head = false;  // 3-D inputs (B, L, D)
  double scale = 1;
  bool causal = false;
  cpu::AttentionDropout dropout;
  bool bf16_tensor_cores = false;  // autocast: cuda/attention_bf16.cu computes this call
};

// The scores' shape as the caller sees it: (B, H, Lq, Lk), or (B, Lq, Lk) for 3-D inputs.
Shape scores_shape(const AttentionCall& call) {
  if (call.one_head) return {call.batch, call.q_len, call.kv_len};
  return {call.batch, call.heads, call.q_len, call.kv_len};
}

// ---- argument checks -------------------------------------------------------------------

void check_mask(const Tensor& mask, const Tensor& q, const AttentionCall& call) {
  ops::check_same_device(kOp, {q, mask});
  KILN_CHECK(mask.dtype() == DType::b8 || mask.dtype() == q.dtype(), kOp, ": mask ", describe(mask),
             " must be bool (true = attend) or additive in q's dtype ", dtype_name(q.dtype()));
  const Shape scores = scores_shape(call);
  bool broadcasts = mask.dim() <= static_cast<int64_t>(scores.size());
  for (int64_t i = 0; broadcasts && i < mask.dim(); ++i) {
    const int64_t size = mask.shape()[i], target = scores[scores.size() - mask.dim() + i];
    broadcasts = size == target || size == 1;
  }
  KILN_CHECK(broadcasts, kOp, ": mask ", describe(mask), " does not broadcast to the scores ", shape_str(scores),
             call.one_head ? " (B, Lq, Lk)" : " (B, H, Lq, Lk)");
}

// Checks the inputs and reads the sizes of the call.
AttentionCall check_attention_args(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& o) {
  ops::check_same_device(kOp, {q, k, v});
  ops::check_floating(kOp, q);
  ops::check_same_dtype(kOp, q, k);
  ops::check_same_dtype(kOp, q, v);
  const int64_t n = q.dim();
  KILN_CHECK((n == 3 || n == 4) && k.dim() == n && v.dim() == n, kOp,
             ": q, k, v must all be 4-D (B, H, L, D) or all 3-D (B, L, D), got q ", describe(q), ", k ", describe(k),
             ", v ", describe(v));
  for (int64_t d = 0; d < n - 2; ++d) {
    KILN_CHECK(k.size(d) == q.size(d) && v.size(d) == q.size(d), kOp, ": q, k, v must have the same ",
               n == 4 ? "(B, H)" : "B", " dims, got q ", describe(q), ", k ", describe(k), ", v ", describe(v));
  }
  KILN_CHECK(k.size(-2) == v.size(-2), kOp, ": k and v must hold the same number of keys, got k ", describe(k),
             " and v ", describe(v));
  KILN_CHECK(k.size(-1) == q.size(-1), kOp, ": q and k must have the same head dim, got q ", describe(q), " and k ",
             describe(k));
  KILN_CHECK(o.dropout_p >= 0 && o.dropout_p <= 1, kOp, ": dropout_p must be in [0, 1], got ", o.dropout_p);

  AttentionCall call;
  call.one_head = n == 3;
  call.batch = q.size(0);
  call.heads = call.one_head ? 1 : q.size(1);
  call.q_len = q.size(-2);
  call.kv_len = k.size(-2);
  call.head_dim = q.size(-1);
  call.value_dim = v.size(-1);
  call.scale = o.scale ? *o.scale : 1.0 / std::sqrt(static_cast<double>(call.head_dim));
  call.causal = o.causal;
  if (o.mask.defined()) check_mask(o.mask, q, call);
  return call;
}

// ---- kernel arguments ------------------------------------------------------------------

// t itself when the kernel can read it in place (contiguous last dim, rows not
// overlapping), else a contiguous copy.
Tensor kernel_readable(const Tensor& t) {
  const int64_t rows = t.size(-2), cols = t.size(-1);
  const int64_t row_stride = t.strides()[t.dim() - 2], col_stride = t.strides().back();
  const bool readable = (col_stride == 1 || cols == 1) && (rows == 1 || row_stride >= cols);
  return readable ? t : t.contiguous();
}

// A (B, H, L, D) or (B, L, D) tensor with a contiguous last dim as a kernel's view:
// cpu::HeadsView or cuda::AttentionOperand, which hold the same fields.
template <template <class> class View, class T>
View<T> heads_view(const Tensor& t, bool one_head) {
  const Shape& s = t.strides();
  if (one_head) return {static_cast<T*>(t.raw_data()), s[0], 0, s[1]};
  return {static_cast<T*>(t.raw_data()), s[0], s[1], s[2]};
}

// The mask's strides over the (B, H, Lq, Lk) scores (0 on broadcast dims).
void mask_strides(const Tensor& mask, const AttentionCall& call, int64_t (&out)[4]) {
  const Shape strides = ops::broadcast_strides(mask, scores_shape(call), kOp);
  if (call.one_head) {  // (B, Lq, Lk) -> (B, 1, Lq, Lk)
    out[0] = strides[0];
    out[1] = 0;
    out[2] = strides[1];
    out[3] = strides[2];
  } else {
    for (int d = 0; d < 4; ++d) out[d] = strides[static_cast<size_t>(d)];
  }
}

template <class T>
cpu::ScoreMask<T> score_mask(const Tensor& mask, const AttentionCall& call) {
  cpu::ScoreMask<T> m;
  if (!mask.defined()) return m;
  mask_strides(mask, call, m.strides);
  if (mask.dtype() == DType::b8) {
    m.kind = cpu::ScoreMask<T>::Kind::keep;
    m.keep = mask.data<uint8_t>();
  } else {
    m.kind = cpu::ScoreMask<T>::Kind::additive;
    m.additive = mask.data<T>();
  }
  return m;
}

// q, k, v and mask must be kernel-readable.
template <class T>
cpu::AttentionProblem<T> make_problem(const AttentionCall& call, const Tensor& q, const Tensor& k, const Tensor& v,
                                      const Tensor& mask) {
  cpu::AttentionProblem<T> pb;
  pb.batch = call.batch;
  pb.heads = call.heads;
  pb.q_len = call.q_len;
  pb.kv_len = call.kv_len;
  pb.head_dim = call.head_dim;
  pb.value_dim = call.value_dim;
  pb.scale = static_cast<T>(call.scale);
  pb.causal = call.causal;
  pb.mask = score_mask<T>(mask, call);
  pb.dropout = call.dropout;
  pb.q = heads_view<cpu::HeadsView, const T>(q, call.one_head);
  pb.k = heads_view<cpu::HeadsView, const T>(k, call.one_head);
  pb.v = heads_view<cpu::HeadsView, const T>(v, call.one_head);
  return pb;
}

// The same for the CUDA kernels. The dropout test is cpu::dropout_forward's, with its
// threshold and scale computed here once.
template <class T>
cuda::AttentionArgs<T> make_cuda_args(const AttentionCall& call, const Tensor& q, const Tensor& k, const Tensor& v,
                                      const Tensor& mask) {
  cuda::AttentionArgs<T> args;
  args.batch = call.batch;
  args.heads = call.heads;
  args.q_len = call.q_len;
  args.kv_len = call.kv_len;
  args.head_dim = call.head_dim;
  args.value_dim = call.value_dim;
  args.scale = static_cast<T>(call.scale);
  args.causal = call.causal;
  if (mask.defined()) {
    mask_strides(mask, call, args.mask.strides);
    if (mask.dtype() == DType::b8) {
      args.mask.keep = mask.data<uint8_t>();
    } else {
      args.mask.additive = mask.data<T>();
    }
  }
  const cpu::AttentionDropout& d = call.dropout;
  if (d.p > 0) {
    args.dropout.enabled = true;
    args.dropout.keep_threshold = static_cast<uint32_t>(std::ceil(d.p * 16777216.0));
    args.dropout.kept_scale = d.p < 1 ? static_cast<T>(1.0 / (1.0 - d.p)) : T(0);
    args.dropout.seed = d.seed;
    args.dropout.offset = d.offset;
  }
  args.q = heads_view<cuda::AttentionOperand, const T>(q, call.one_head);
  args.k = heads_view<cuda::AttentionOperand, const T>(k, call.one_head);
  args.v = heads_view<cuda::AttentionOperand, const T>(v, call.one_head);
  return args;
}

// ---- backward -------------------------------------------------------------------------------
// saved = {q, k, v, mask, lse, out (CUDA only)}; grads in the input order: {dq, dk, dv, dmask}.

Grads attention_backward_fused(const Tensor& grad, const Saved& s, const AttentionCall& call) {
  const Tensor &mask = s[3], &lse = s[4];
  ops::check_same_dtype(kOp, s[0], grad);
  const Tensor q = kernel_readable(s[0]), k = kernel_readable(s[1]), v = kernel_readable(s[2]);
  const Tensor g = kernel_readable(grad);
  const TensorOptions like_q{.dtype = q.dtype(), .device = q.device()};
  Tensor dq = s.needs_grad(0) ? empty(q.shape(), like_q) : Tensor();
  Tensor dk = s.needs_grad(1) ? empty(k.shape(), like_q) : Tensor();
  Tensor dv = s.needs_grad(2) ? empty(v.shape(), like_q) : Tensor();
  Tensor dscores = s.needs_grad(3) ? empty(scores_shape(call), like_q) : Tensor();
  dispatch_floating(q.dtype(), kOp, [&]<class T>() {
    auto ptr = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
    if (q.device().is_cuda()) {
      const Tensor out = kernel_readable(s[5]);
      const Tensor row_dot = empty({call.batch * call.heads * call.q_len}, like_q);  // the kernels' scratch
      const cuda::AttentionBackwardInputs<T> inputs{heads_view<cuda::AttentionOperand, const T>(out, call.one_head),
                                                    heads_view<cuda::AttentionOperand, const T>(g, call.one_head),
                                                    lse.data<T>(), row_dot.data<T>()};
      const cuda::AttentionGradients<T> grads{ptr(dq), ptr(dk), ptr(dv), ptr(dscores)};
      if constexpr (std::is_same_v<T, float>) {
        if (call.bf16_tensor_cores) {
          cuda::attention_backward_bf16(make_cuda_args<T>(call, q, k, v, mask), inputs, grads, q.device().index);
          return;
        }
      }
      cuda::attention_backward<T>(make_cuda_args<T>(call, q, k, v, mask), inputs, grads, q.device().index);
    } else {
      cpu::attention_backward<T>(make_problem<T>(call, q, k, v, mask),
                                 heads_view<cpu::HeadsView, const T>(g, call.one_head), lse.data<T>(),
                                 {ptr(dq), ptr(dk), ptr(dv), ptr(dscores)});
    }
  });
  Tensor dmask = dscores.defined() ? sum_to(dscores, mask.shape()) : Tensor();
  return {dq, dk, dv, dmask};
}

// The attention probabilities with Tensor ops (differentiable in q, k and a float mask).
// A row with no visible key gets zeros: its logits are replaced by zeros before the
// softmax (whose output there is discarded), so the graph holds no NaN.
Tensor composite_probs(const Tensor& q, const Tensor& k, const Tensor& mask, const AttentionCall& call) {
  Tensor logits = matmul(q, k.transpose(-1, -2)) * call.scale;
  const Tensor minus_inf = scalar_like(logits, -kInf, kOp);
  if (mask.defined()) logits = mask.dtype() == DType::b8 ? where(mask, logits, minus_inf) : logits + mask;
  if (call.causal) {
    const TensorOptions index_options{.dtype = DType::i64, .device = q.device()};
    const Tensor key = arange(static_cast<double>(call.kv_len), index_options).unsqueeze(0);
    const Tensor query = arange(static_cast<double>(call.q_len), index_options).unsqueeze(1);
    logits = where(le(key, query), logits, minus_inf);
  }
  const Tensor visible = gt(max(logits.detach(), -1, /*keepdim=*/true), -kInf);
  const Tensor zero = scalar_like(logits, 0.0, kOp);
  return where(visible, softmax(where(visible, logits, zero), -1), zero);
}

// The dropout mask of the call as a (constant) tensor of 0 and 1 / (1 - p), on `device`.
// Drawn by the CPU kernel (the same Philox words the fused kernels of both backends use)
// and copied: this path only serves create_graph.
Tensor composite_dropout_scales(const AttentionCall& call, DType dtype, Device device) {
  const Shape shape = scores_shape(call);
  const Tensor ones_ = ones(shape, {.dtype = dtype});
  Tensor dropped = empty(shape, {.dtype = dtype}), scales = empty(shape, {.dtype = dtype});
  dispatch_floating(dtype, kOp, [&]<class T>() {
    cpu::dropout_forward(ones_.data<T>(), dropped.data<T>(), scales.data<T>(), ones_.numel(), call.dropout.p,
                         call.dropout.seed, call.dropout.offset);
  });
  return scales.to(device);
}

// The fused kernel's formulas as a graph of Tensor ops, for create_graph.
Grads attention_backward_composite(const Tensor& g, const Saved& s, const AttentionCall& call) {
  const Tensor &q = s[0], &k = s[1], &v = s[2], &mask = s[3];
  const Tensor p = composite_probs(q, k, mask, call);
  const bool dropout = call.dropout.p > 0;
  const Tensor scales = dropout ? composite_dropout_scales(call, q.dtype(), q.device()) : Tensor();
  Tensor dq, dk, dv, dmask;
  if (s.needs_grad(2)) dv = matmul((dropout ? p * scales : p).transpose(-1, -2), g);
  if (s.needs_grad(0) || s.needs_grad(1) || s.needs_grad(3)) {
    Tensor dp = matmul(g, v.transpose(-1, -2));
    if (dropout) dp = dp * scales;
    const Tensor ds = p * (dp - sum(dp * p, {-1}, /*keepdim=*/true));
    if (s.needs_grad(0)) dq = matmul(ds, k) * call.scale;
    if (s.needs_grad(1)) dk = matmul(ds.transpose(-1, -2), q) * call.scale;
    if (s.needs_grad(3)) dmask = sum_to(ds, mask.shape());
  }
  return {dq, dk, dv, dmask};
}

}  // namespace

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const AttentionOptions& options) {
  KILN_PROFILE_SCOPE(kOp, q, k, v);
  AttentionCall call = check_attention_args(q, k, v, options);
  const Tensor& mask = options.mask;
  if (options.training && options.dropout_p > 0) {
    // One Philox block gives the draws of 4 entries of the (B, H, Lq, Lk) matrix.
    const uint64_t entries = static_cast<uint64_t>(numel_of(scores_shape(call)));
    const GeneratorState rng = default_generator().reserve((entries + 3) / 4);
    call.dropout = {options.dropout_p, rng.seed, rng.offset};
  }

  call.bf16_tensor_cores = Autocast::applies_to(q) &&
                          std::max(call.head_dim, call.value_dim) <= cuda::kAttentionBf16MaxHeadDim;

  // The output is written as (B, Lq, H, Dv) and returned as its (B, H, Lq, Dv) view.
  const TensorOptions like_q{.dtype = q.dtype(), .device = q.device()};
  Tensor out, lse = empty({call.batch, call.heads, call.q_len}, like_q);
  {
    NoGradGuard no_grad;
    out = call.one_head ? empty({call.batch, call.q_len, call.value_dim}, like_q)
                        : empty({call.batch, call.q_len, call.heads, call.value_dim}, like_q).transpose(1, 2);
    const Tensor qr = kernel_readable(q), kr = kernel_readable(k), vr = kernel_readable(v);
    dispatch_floating(q.dtype(), kOp, [&]<class T>() {
      if (q.device().is_cuda()) {
        const cuda::AttentionArgs<T> args = make_cuda_args<T>(call, qr, kr, vr, mask);
        const cuda::AttentionOperand<T> out_view = heads_view<cuda::AttentionOperand, T>(out, call.one_head);
        if constexpr (std::is_same_v<T, float>) {
          if (call.bf16_tensor_cores) return cuda::attention_forward_bf16(args, out_view, lse.data<T>(), q.device().index);
        }
        cuda::attention_forward<T>(args, out_view, lse.data<T>(), q.device().index);
      } else {
        cpu::attention_forward<T>(make_problem<T>(call, qr, kr, vr, mask),
                                  heads_view<cpu::HeadsView, T>(out, call.one_head), lse.data<T>());
      }
    });
  }
  const Tensor saved_out = q.device().is_cuda() ? out : Tensor();  // see the file comment
  autograd::record(kOp, out, {q, k, v, mask}, {q, k, v, mask, lse, saved_out}, [call](const Tensor& g,
                                                                                    const Saved& s) {
    if (GradMode::is_enabled()) return attention_backward_composite(g, s, call);
    return attention_backward_fused(g, s, call);
  });
  return out;
}

}  // namespace kiln
