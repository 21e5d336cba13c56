// Matrix products: matmul (NumPy semantics), bmm and linear.
//
// Forward: each operand's last two dims go to cpu::gemm as they lie in memory. A
// row-major matrix (strides (k, 1)) or a transposed one (strides (1, m)) is read in
// place; only other layouts are copied first. Batch dims are broadcast by offsets
// (a broadcast operand is never materialised), and when the right operand is a plain
// matrix the left operand's batch dims fold into its rows: one big GEMM instead of
// many small ones (the nn::Linear case).
//
// On CUDA the same plan runs through cuBLAS (cuda/blas.h): its strided-batched GEMM needs
// a constant step between matrices, so the batch is split into runs of matrices where
// both operands step evenly (all of it for contiguous or plainly broadcast operands) and
// each run is one call. bf16 operands on a GPU use tensor cores with f32 accumulation;
// under AutocastGuard (core/autocast.h) f32 operands are converted to bf16 for the
// product and the result back to f32, so the conversions are recorded like any op.
//
// Backward: dA = dC · B^T and dB = A^T · dC, each summed over the batch dims its
// operand was broadcast along. They are matmuls of transposed views, so the backward
// is itself differentiable (double backward).
#include "kiln/ops/linalg.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"
#include "kiln/core/autocast.h"
#include "kiln/core/dispatch.h"
#include "kiln/core/factory.h"
#include "kiln/core/profiler.h"
#include "kiln/cuda/blas.h"
#include "kiln/ops/common.h"
#include "kiln/ops/cpu/gemm.h"
#include "kiln/ops/elementwise.h"
#include "kiln/ops/reduce.h"

namespace kiln {

using autograd::Grads;
using autograd::Saved;

namespace {

// The number of rows when t is read as a (rows, t.size(-1)) matrix: the product of all
// but the last dim. Spelled out because reshape({-1, 0}) is ambiguous when t is empty.
int64_t leading_rows(const Tensor& t) {
  int64_t rows = 1;
  for (int64_t d = 0; d + 1 < t.dim(); ++d) rows *= t.size(d);
  return rows;
}

// ---- argument checks -----------------------------------------------------------------

void check_matmul_args(const char* op, const Tensor& a, const Tensor& b) {
  ops::check_same_device(op, {a, b});
  KILN_CHECK(a.dim() >= 1 && b.dim() >= 1, op, ": both arguments need at least 1 dim, got ", describe(a), " and ",
             describe(b));
  KILN_CHECK(is_floating(a.dtype()) && is_floating(b.dtype()), op, ": expected floating tensors, got ", describe(a),
             " and ", describe(b));
  ops::check_same_dtype(op, a, b);
  const int64_t ka = a.size(-1), kb = b.size(b.dim() == 1 ? 0 : -2);
  KILN_CHECK(ka == kb, op, ": shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()), " are not aligned (",
             ka, " != ", kb, ")");
}

// ---- operand layouts -----------------------------------------------------------------

// How cpu::gemm reads one operand's matrix (its last two dims) in place.
struct GemmOperand {
  bool transposed;  // stored column-major, i.e. the transpose of a row-major buffer
  int64_t ld;       // leading dim: elements between stored rows (columns if transposed)
};

// A (rows x cols) matrix with strides (rs, cs) is row-major when its elements along a
// row are adjacent (cs == 1) and rows do not overlap (rs >= cols), and column-major in
// the mirror case. The stride of a size-1 dim is meaningless, so it never disqualifies.
std::optional<GemmOperand> gemm_operand(int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
  const int64_t row_len = std::max<int64_t>(cols, 1), col_len = std::max<int64_t>(rows, 1);
  if ((cs == 1 || cols == 1) && (rows == 1 || rs >= row_len)) return GemmOperand{false, rows == 1 ? row_len : rs};
  if ((rs == 1 || rows == 1) && (cols == 1 || cs >= col_len)) return GemmOperand{true, cols == 1 ? col_len : cs};
  return std::nullopt;
}

std::optional<GemmOperand> gemm_operand(const Tensor& t) {
  return gemm_operand(t.size(-2), t.size(-1), t.strides()[t.dim() - 2], t.strides()[t.dim() - 1]);
}

// t itself when the GEMM can read its matrices in place, else a contiguous copy.
Tensor gemm_readable(const Tensor& t) { return gemm_operand(t) ? t : t.contiguous(); }

// The stride of t's dims [0, end) merged into one dim, when they are laid out as one
// (each dim's stride is the next one's stride times its size; size-1 dims are skipped).
std::optional<int64_t> merged_stride(const Tensor& t, int64_t end) {
  std::optional<int64_t> inner;  // stride of the innermost non-trivial dim so far
  int64_t span = 1;              // elements that dim and those inside it cover
  for (int64_t d = end - 1; d >= 0; --d) {
    const int64_t size = t.shape()[d], stride = t.strides()[d];
    if (size == 1) continue;
    if (inner && stride != *inner * span) return std::nullopt;
    if (!inner) inner = stride;
    span *= size;
  }
  return inner.value_or(1);
}

// ---- batching --------------------------------------------------------------------------

Shape batch_dims(const Tensor& t) { return Shape(t.shape().begin(), t.shape().end() - 2); }

// NumPy broadcast of the batch dims (all but the last two) of two >= 2-D operands.
Shape broadcast_batch(const char* op, const Tensor& a2, const Tensor& b2, const Tensor& a, const Tensor& b) {
  const Shape ba = batch_dims(a2), bb = batch_dims(b2);
  const size_t n = std::max(ba.size(), bb.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i + ba.size() < n ? 1 : ba[i + ba.size() - n];
    const int64_t db = i + bb.size() < n ? 1 : bb[i + bb.size() - n];
    KILN_CHECK(da == db || da == 1 || db == 1, op, ": batch dims of ", shape_str(a.shape()), " and ",
               shape_str(b.shape()), " cannot be broadcast (", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// Element offset of each matrix of t in a batch of shape `batch` (t's batch dims
// broadcast to it: a broadcast dim has stride 0, so its matrices are read repeatedly).
std::vector<int64_t> batch_offsets(const Tensor& t, const Shape& batch) {
  Shape full = batch;
  full.push_back(t.size(-2));
  full.push_back(t.size(-1));
  const Shape strides = ops::broadcast_strides(t, full, "matmul");
  std::vector<int64_t> offsets(static_cast<size_t>(numel_of(batch)));
  Shape index(batch.size(), 0);
  int64_t offset = 0;
  for (int64_t& out : offsets) {
    out = offset;
    // Odometer step: bump the last batch index, carrying into earlier ones.
    for (size_t d = batch.size(); d-- > 0;) {
      offset += strides[d];
      if (++index[d] < batch[d]) break;
      offset -= strides[d] * batch[d];
      index[d] = 0;
    }
  }
  return offsets;
}

// The batch as consecutive runs of `run` matrices (in row-major batch order) inside which
// a's matrices lie a_step elements apart and b's b_step apart (0 where broadcast): the
// trailing batch dims that merge into one dim for both operands.
struct BatchRuns {
  int64_t run = 1, a_step = 0, b_step = 0;
};

BatchRuns batch_runs(const Tensor& a2, const Tensor& b2, const Shape& batch) {
  auto batch_strides = [&](const Tensor& t) {
    Shape full = batch;
    full.push_back(t.size(-2));
    full.push_back(t.size(-1));
    return ops::broadcast_strides(t, full, "matmul");
  };
  const Shape sa = batch_strides(a2), sb = batch_strides(b2);
  BatchRuns runs;
  bool first = true;
  for (size_t d = batch.size(); d-- > 0;) {
    if (batch[d] == 1) continue;
    if (first) {
      runs = {batch[d], sa[d], sb[d]};
      first = false;
    } else if (sa[d] == runs.a_step * runs.run && sb[d] == runs.b_step * runs.run) {
      runs.run *= batch[d];
    } else {
      break;
    }
  }
  return runs;
}

// ---- forward -------------------------------------------------------------------------

// The GEMM's scalars (alpha, beta): f32 for bf16 operands (cuBLAS accumulates in f32).
template <class T>
using GemmScalar = std::conditional_t<std::is_same_v<T, bfloat16>, float, T>;

// cuda::gemm_strided_batched with alpha = 1, for f32, f64 and bf16 operands; the result
// (TOut) has the operands' dtype, or is f32 for bf16 operands (autocast's products).
template <class T, class TOut>
void cuda_gemm(int device, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const T* A, int64_t lda,
               int64_t stride_a, const T* B, int64_t ldb, int64_t stride_b, GemmScalar<T> beta, TOut* C, int64_t ldc,
               int64_t stride_c, int64_t batch) {
  if constexpr (std::is_same_v<T, bfloat16>) {
    cuda::gemm_strided_batched_bf16(device, trans_a, trans_b, m, n, k, 1.0f, A, lda, stride_a, B, ldb, stride_b, beta,
                                    C, ldc, stride_c, batch);
  } else {
    static_assert(std::is_same_v<T, TOut>, "only bf16 operands have a result of another dtype");
    cuda::gemm_strided_batched<T>(device, trans_a, trans_b, m, n, k, T(1), A, lda, stride_a, B, ldb, stride_b, beta,
                                  C, ldc, stride_c, batch);
  }
}

// The batched product on CUDA: one strided-batched cuBLAS call per run of the batch.
// a_off / b_off are every matrix's offset (batch_offsets); out is contiguous.
template <class T, class TOut>
void run_cuda_gemms(const Tensor& a2, const Tensor& b2, const Shape& batch, Tensor& out, GemmScalar<T> beta) {
  const GemmOperand A = *gemm_operand(a2), B = *gemm_operand(b2);
  const int64_t m = a2.size(-2), k = a2.size(-1), n = b2.size(-1);
  const std::vector<int64_t> a_off = batch_offsets(a2, batch), b_off = batch_offsets(b2, batch);
  const int64_t total = static_cast<int64_t>(a_off.size());
  if (total == 0) return;  // an empty batch dim
  const BatchRuns runs = batch_runs(a2, b2, batch);
  for (int64_t first = 0; first < total; first += runs.run) {
    const size_t f = static_cast<size_t>(first);
    cuda_gemm<T, TOut>(out.device().index, A.transposed, B.transposed, m, n, k, a2.data<T>() + a_off[f], A.ld,
                       runs.a_step, b2.data<T>() + b_off[f], B.ld, runs.b_step, beta, out.data<TOut>() + first * m * n,
                       n, m * n, runs.run);
  }
}

// out (batch..., m, n) = a2 · b2 (+ bias over rows) for >= 2-D operands the GEMM can
// read in place. out is contiguous; with a bias it already holds the bias rows and the
// GEMM accumulates onto them (beta = 1). TOut: out's element type (see cuda_gemm).
template <class T, class TOut = T>
void run_gemms(const Tensor& a2, const Tensor& b2, const Shape& batch, Tensor& out, bool accumulate) {
  const GemmOperand A = *gemm_operand(a2), B = *gemm_operand(b2);
  const int64_t m = a2.size(-2), k = a2.size(-1), n = b2.size(-1);
  const GemmScalar<T> beta = accumulate ? 1 : 0;
  const bool on_cuda = out.device().is_cuda();
  if (on_cuda && k == 0) {  // an empty sum: the bias rows, or zeros (cuBLAS is not asked)
    if (!accumulate) out.zero_();
    return;
  }
  TOut* C = out.data<TOut>();
  // A plain matrix on the right and row-major rows on the left that continue across
  // a's batch dims: one (batch * m) x k GEMM.
  const std::optional<int64_t> row_stride = merged_stride(a2, a2.dim() - 1);
  if (b2.dim() == 2 && !A.transposed && row_stride) {
    const int64_t rows = numel_of(batch) * m;
    if (auto folded = gemm_operand(rows, k, *row_stride, a2.strides().back())) {
      if (on_cuda) {
        cuda_gemm<T, TOut>(out.device().index, false, B.transposed, rows, n, k, a2.data<T>(), folded->ld, 0,
                           b2.data<T>(), B.ld, 0, beta, C, n, 0, 1);
      } else if constexpr (std::is_same_v<T, TOut> && !std::is_same_v<T, bfloat16>) {
        cpu::gemm<T>(false, B.transposed, rows, n, k, T(1), a2.data<T>(), folded->ld, b2.data<T>(), B.ld, beta, C,
                     n);
      }
      return;
    }
  }
  if (on_cuda) return run_cuda_gemms<T, TOut>(a2, b2, batch, out, beta);
  if constexpr (std::is_same_v<T, TOut> && !std::is_same_v<T, bfloat16>) {  // bf16: GPUs only (dispatch_gemm)
    const std::vector<int64_t> a_off = batch_offsets(a2, batch), b_off = batch_offsets(b2, batch);
    std::vector<int64_t> c_off(a_off.size());
    for (size_t i = 0; i < c_off.size(); ++i) c_off[i] = static_cast<int64_t>(i) * m * n;
    cpu::gemm_batched<T>(static_cast<int64_t>(c_off.size()), A.transposed, B.transposed, m, n, k, T(1),
                         a2.data<T>(), A.ld, a_off.data(), b2.data<T>(), B.ld, b_off.data(), beta, C, n,
                         c_off.data());
  }
}

// f32 and f64 on every device, and bf16 on GPUs (tensor cores, f32 accumulation; on the
// CPU bf16 is a storage type and the usual dtype error applies).
template <class F>
void dispatch_gemm(const Tensor& a, const char* op, F&& f) {
  if (a.dtype() == bf16 && a.device().is_cuda()) return f.template operator()<bfloat16>();
  dispatch_floating(a.dtype(), op, f);
}

// a · b with NumPy semantics, plus an optional bias (n) added to every row; no
// autograd (the public ops record their own node). Arguments are already checked. The
// result has the operands' dtype, or f32 for bf16 operands when `result_dtype` says so
// (autocast's products: f32 accumulation, nothing rounded to bf16 at the end).
Tensor matmul_forward(const char* op, const Tensor& a, const Tensor& b, const Tensor& bias = {},
                      std::optional<DType> result_dtype = std::nullopt) {
  NoGradGuard no_grad;  // the helper views below are internal
  const DType out_dtype = result_dtype.value_or(a.dtype());
  const bool bf16_to_f32 = out_dtype != a.dtype();
  KILN_CHECK(!bf16_to_f32 || (a.dtype() == bf16 && out_dtype == f32), op, ": no ", dtype_name(a.dtype()),
             " product with a ", dtype_name(out_dtype), " result");
  // On the CPU, where bf16 only stores values, the same products in f32: widening bf16
  // is exact, so this is the GPU's computation up to the order of the f32 sums.
  if (bf16_to_f32 && a.device().is_cpu()) return matmul_forward(op, a.to(f32), b.to(f32), bias);
  // A 1-D a is a row (1, k), a 1-D b a column (k, 1); the added dim leaves the result.
  const Tensor a2 = gemm_readable(a.dim() == 1 ? a.unsqueeze(0) : a);
  const Tensor b2 = gemm_readable(b.dim() == 1 ? b.unsqueeze(1) : b);
  const Shape batch = broadcast_batch(op, a2, b2, a, b);
  const int64_t m = a2.size(-2), n = b2.size(-1);
  Shape out_shape = batch;
  out_shape.push_back(m);
  out_shape.push_back(n);
  Tensor out = empty(out_shape, {.dtype = out_dtype, .device = a.device()});
  if (bias.defined()) out.copy_(bias);  // out starts as the bias repeated on every row
  if (bf16_to_f32) {
    run_gemms<bfloat16, float>(a2, b2, batch, out, bias.defined());
  } else {
    dispatch_gemm(a, op, [&]<class T>() { run_gemms<T>(a2, b2, batch, out, bias.defined()); });
  }
  Shape result = batch;
  if (a.dim() > 1) result.push_back(m);
  if (b.dim() > 1) result.push_back(n);
  return result == out_shape ? out : out.view(result);
}

// ---- backward ------------------------------------------------------------------------

// dA = dC · B^T and dB = A^T · dC on the operands promoted to >= 2-D, each summed over
// the batch dims its operand was broadcast along and reshaped back (dropping the
// promoted dim). `product(x, y)` forms each matrix product: matmul (recorded, so the
// backward is differentiable) or, for autocast's nodes, a bf16 product with an f32 result.
template <class Product>
Grads matmul_grads(const Tensor& grad, const Tensor& a, const Tensor& b, bool need_a, bool need_b,
                   const Product& product) {
  const Tensor a2 = a.dim() == 1 ? a.unsqueeze(0) : a;
  const Tensor b2 = b.dim() == 1 ? b.unsqueeze(1) : b;
  Tensor g2 = grad;  // grad with the promoted dims put back: (batch..., m, n)
  if (b.dim() == 1) g2 = g2.unsqueeze(-1);
  if (a.dim() == 1) g2 = g2.unsqueeze(-2);
  Tensor ga, gb;
  if (need_a) ga = sum_to(product(g2, b2.transpose(-1, -2)), a2.shape()).reshape(a.shape());
  if (need_b) {
    if (b2.dim() == 2 && a2.dim() > 2) {
      // b was shared by the whole batch: fold the batch into rows, one GEMM
      // (k x batch*m)·(batch*m x n), instead of a batch of products summed afterwards.
      const int64_t rows = leading_rows(a2);
      const Tensor a_rows = a2.reshape({rows, a2.size(-1)}), g_rows = g2.reshape({rows, g2.size(-1)});
      gb = product(a_rows.t(), g_rows).reshape(b.shape());
    } else {
      gb = sum_to(product(a2.transpose(-1, -2), g2), b2.shape()).reshape(b.shape());
    }
  }
  return {ga, gb};
}

// matmul's and bmm's rule; s holds {a, b}.
Grads matmul_backward(const Tensor& grad, const Saved& s) {
  return matmul_grads(grad, s[0], s[1], s.needs_grad(0), s.needs_grad(1),
                      [](const Tensor& x, const Tensor& y) { return matmul(x, y); });
}

// ---- bf16 products under autocast ------------------------------------------------------
// Under AutocastGuard, matmul, bmm and linear of f32 GPU tensors round their operands to
// bf16 once and multiply them on tensor cores, accumulating in f32 and writing the f32
// product directly (cuBLAS bf16 x bf16 -> f32; linear's bias is the GEMM's C, as in f32):
// no bf16 result to widen and no separate bias pass. Each is one node, which keeps the
// bf16 operands for the backward (half the memory of f32 ones). The backward rounds the
// incoming f32 gradient to bf16 and forms both operand gradients the same way, in f32.

// The f32 product of two bf16 operands (no autograd).
Tensor bf16_product(const Tensor& x, const Tensor& y) { return matmul_forward("matmul", x, y, {}, f32); }

// The incoming gradient of a bf16 node, rounded for the tensor cores. Double backward
// would need the graph of the f32 operands, which the node does not keep.
Tensor bf16_grad(const char* op, const Tensor& grad) {
  KILN_CHECK(!GradMode::is_enabled(), op, ": double backward (create_graph) through a bf16 product of ",
             "AutocastGuard is not supported; run that forward outside the guard");
  return grad.to(bf16);
}

// matmul / bmm of f32 operands a and b, in bf16 (see above). Arguments are checked.
Tensor autocast_matmul(const char* op, const Tensor& a, const Tensor& b) {
  Tensor a_bf16, b_bf16;
  {
    NoGradGuard no_grad;
    a_bf16 = a.to(bf16);
    b_bf16 = b.to(bf16);
  }
  Tensor out = matmul_forward(op, a_bf16, b_bf16, {}, f32);
  autograd::record(op, out, {a, b}, {a_bf16, b_bf16}, [op](const Tensor& g, const Saved& s) {
    return matmul_grads(bf16_grad(op, g), s[0], s[1], s.needs_grad(0), s.needs_grad(1), bf16_product);
  });
  return out;
}

// linear of f32 x, weight and bias, in bf16 (see above). Arguments are checked.
Tensor autocast_linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  Tensor x_bf16, w_bf16;
  {
    NoGradGuard no_grad;
    x_bf16 = x.to(bf16);
    w_bf16 = weight.to(bf16);
  }
  Tensor out = matmul_forward("linear", x_bf16, w_bf16.t(), bias, f32);
  autograd::record("linear", out, {x, weight, bias}, {x_bf16, w_bf16}, [](const Tensor& g, const Saved& s) {
    const Tensor &x16 = s[0], &w16 = s[1];
    const int64_t in = w16.size(1), out_features = w16.size(0), rows = leading_rows(x16);
    const Tensor g16 = bf16_grad("linear", g);
    Tensor gx, gw, gb;
    if (s.needs_grad(0)) gx = bf16_product(g16, w16);
    if (s.needs_grad(1)) gw = bf16_product(g16.reshape({rows, out_features}).t(), x16.reshape({rows, in}));
    if (s.needs_grad(2)) gb = sum_to(g, {out_features});
    return Grads{gx, gw, gb};
  });
  return out;
}

}  // namespace

// ---- matmul --------------------------------------------------------------------------

Tensor matmul(const Tensor& a, const Tensor& b) {
  KILN_PROFILE_SCOPE("matmul", a, b);
  check_matmul_args("matmul", a, b);
  if (Autocast::applies_to(a) && Autocast::applies_to(b)) return autocast_matmul("matmul", a, b);
  Tensor out = matmul_forward("matmul", a, b);
  autograd::record("matmul", out, {a, b}, {a, b}, matmul_backward);
  return out;
}

// ---- bmm -------------------------------------------------------------------------------

Tensor bmm(const Tensor& a, const Tensor& b) {
  KILN_PROFILE_SCOPE("bmm", a, b);
  ops::check_same_device("bmm", {a, b});
  KILN_CHECK(a.dim() == 3 && b.dim() == 3, "bmm: expected 3-D tensors, got ", describe(a), " and ", describe(b));
  KILN_CHECK(a.size(0) == b.size(0), "bmm: batch sizes differ (", describe(a), " and ", describe(b), ")");
  check_matmul_args("bmm", a, b);
  if (Autocast::applies_to(a) && Autocast::applies_to(b)) return autocast_matmul("bmm", a, b);
  Tensor out = matmul_forward("bmm", a, b);
  autograd::record("bmm", out, {a, b}, {a, b}, matmul_backward);
  return out;
}

// ---- linear ------------------------------------------------------------------------------
// y = x · W^T + b. The bias is added by the GEMM itself (beta = 1 onto bias rows), and
// W^T is a transposed view of W: no copy of the weight, no extra pass over y.
// Backward: dx = dy · W, dW = dy^T · x over all rows at once, db = dy summed over rows.

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  KILN_PROFILE_SCOPE("linear", x, weight, bias);
  ops::check_same_device("linear", {x, weight});
  KILN_CHECK(x.dim() >= 1, "linear: input must have at least 1 dim, got ", describe(x));
  KILN_CHECK(weight.dim() == 2, "linear: weight must be 2-D (out_features, in_features), got ", describe(weight));
  KILN_CHECK(is_floating(x.dtype()) && is_floating(weight.dtype()), "linear: expected floating tensors, got ",
             describe(x), " and ", describe(weight));
  ops::check_same_dtype("linear", x, weight);
  KILN_CHECK(x.size(-1) == weight.size(1), "linear: input ", shape_str(x.shape()), " and weight ",
             shape_str(weight.shape()), " are not aligned (", x.size(-1), " != ", weight.size(1), ")");
  if (bias.defined()) {
    ops::check_same_device("linear", {x, bias});
    ops::check_same_dtype("linear", x, bias);
    KILN_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0), "linear: bias must have shape [",
               weight.size(0), "] to match weight ", shape_str(weight.shape()), ", got ", describe(bias));
  }
  // The bias stays f32 (a bf16 bias would need bf16 reductions for its gradient, and gains nothing).
  if (Autocast::applies_to(x) && Autocast::applies_to(weight)) return autocast_linear(x, weight, bias);
  Tensor w_t;
  {
    NoGradGuard no_grad;
    w_t = weight.t();
  }
  Tensor out = matmul_forward("linear", x, w_t, bias);
  autograd::record("linear", out, {x, weight, bias}, {x, weight}, [](const Tensor& g, const Saved& s) {
    const Tensor &x = s[0], &w = s[1];
    const int64_t in = w.size(1), out_features = w.size(0);
    Tensor gx, gw, gb;
    if (s.needs_grad(0)) gx = matmul(g, w);
    const int64_t rows = leading_rows(x);
    if (s.needs_grad(1)) gw = matmul(g.reshape({rows, out_features}).t(), x.reshape({rows, in}));
    if (s.needs_grad(2)) gb = sum_to(g, {out_features});
    return Grads{gx, gw, gb};
  });
  return out;
}

}  // namespace kiln
