// Emulated CUDA attention (cuda/attention.cu) vs the CPU kernels (ops/cpu/attention.cpp): forward
// (out, log-sum-exp) and backward (dq, dk, dv, dscores) over head dims, lengths, causal, masks,
// dropout, strided layouts, empty and NaN inputs, gradient subsets and a shuffled block order.
// The bf16 tensor-core kernels (cuda/attention_bf16.cu) run the same cases (head dims up to
// 128) on inputs already rounded to bf16, so the CPU reference sees the values the tensor
// cores multiply; what remains is the bf16 rounding of the probabilities and score
// gradients inside the kernels, hence looser tolerances.
#include "common.h"
#include "kiln/cuda/attention.h"
#include "kiln/ops/cpu/attention.h"

using namespace kiln;
constexpr double kInf = std::numeric_limits<double>::infinity();

enum class MaskKind { none, add_full, add_qk, add_keypad, bool_full, bool_keypad, bool_rows };
const char* mask_name(MaskKind m) {
  switch (m) {
    case MaskKind::none: return "nomask";
    case MaskKind::add_full: return "add(B,H,Lq,Lk)";
    case MaskKind::add_qk: return "add(Lq,Lk)";
    case MaskKind::add_keypad: return "add(B,1,1,Lk)-inf";
    case MaskKind::bool_full: return "bool(B,H,Lq,Lk)";
    case MaskKind::bool_keypad: return "bool(B,1,1,Lk)";
    case MaskKind::bool_rows: return "bool(1,1,Lq,1)";
  }
  return "?";
}
enum class Layout { contig, blhd, padded };

struct Case {
  int64_t B, H, Lq, Lk, D, Dv;
  bool causal = false;
  MaskKind mask = MaskKind::none;
  double p = 0;
  Layout layout = Layout::contig;
  bool nan_q_row = false, nan_k_row = false;
  bool want_dq = true, want_dk = true, want_dv = true, want_ds = true;
  int block_order = 0;
};

// A (B, H, L, D) operand in the case's layout. Storage + view strides.
template <class T> struct Operand {
  std::vector<T> storage;
  int64_t bs, hs, rs;
  T* data() { return storage.data(); }
};
template <class T> Operand<T> make_operand(const Case& c, int64_t L, int64_t D, bool random) {
  Operand<T> o;
  int64_t row = D;
  if (c.layout == Layout::padded) row = D + 3;
  if (c.layout == Layout::blhd) {  // (B, L, H, D)
    o.rs = c.H * D; o.hs = D; o.bs = L * c.H * D;
    o.storage = random ? normal<T>(c.B * L * c.H * D) : std::vector<T>(c.B * L * c.H * D, T(0));
  } else {
    o.rs = row; o.hs = L * row; o.bs = c.H * L * row;
    o.storage = random ? normal<T>(c.B * c.H * L * row) : std::vector<T>(c.B * c.H * L * row, T(0));
  }
  return o;
}
// Gathers a view into a contiguous (B, H, L, D) vector.
template <class T> std::vector<T> pack(const Case& c, Operand<T>& o, int64_t L, int64_t D) {
  std::vector<T> v;
  v.reserve(c.B * c.H * L * D);
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.H; ++h)
      for (int64_t l = 0; l < L; ++l)
        for (int64_t d = 0; d < D; ++d) v.push_back(o.storage[b * o.bs + h * o.hs + l * o.rs + d]);
  return v;
}

// Rounds every element to the nearest bf16 (kept as T).
template <class T> void round_to_bf16(std::vector<T>& v) {
  for (T& e : v) e = T(__bfloat162float(__float2bfloat16_rn(float(e))));
}

template <class T> std::string case_name(const Case& c, bool bf16 = false) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s B%lldH%lld Lq%lld Lk%lld D%lld Dv%lld%s %s p%.2g%s%s%s",
                bf16 ? "bf16-tc" : sizeof(T) == 4 ? "f32" : "f64",
                (long long)c.B, (long long)c.H, (long long)c.Lq, (long long)c.Lk, (long long)c.D, (long long)c.Dv,
                c.causal ? " causal" : "", mask_name(c.mask), c.p,
                c.layout == Layout::blhd ? " BLHD" : c.layout == Layout::padded ? " padded" : "",
                c.nan_q_row ? " NaNrow" : c.nan_k_row ? " NaNkey" : "", c.block_order ? " perm" : "");
  return buf;
}

template <class T> void run(const Case& c, bool bf16 = false) {
  const std::string name = case_name<T>(c, bf16);
  auto q = make_operand<T>(c, c.Lq, c.D, true), k = make_operand<T>(c, c.Lk, c.D, true),
       v = make_operand<T>(c, c.Lk, c.Dv, true), dout = make_operand<T>(c, c.Lq, c.Dv, true);
  if (bf16)
    for (auto* o : {&q, &k, &v, &dout}) round_to_bf16(o->storage);
  if (c.nan_k_row && c.Lk > 2) k.storage[2 * k.rs + 1] = std::numeric_limits<T>::quiet_NaN();  // key 2 of head 0
  if (c.nan_q_row && c.Lq > 2) q.storage[1 * q.rs + 0] = std::numeric_limits<T>::quiet_NaN();  // row 1 of head 0

  // The mask, with its own shape, and its strides over (B, H, Lq, Lk).
  std::vector<T> add;
  std::vector<uint8_t> keep;
  int64_t ms[4] = {0, 0, 0, 0};
  std::bernoulli_distribution keep_draw(0.7);
  switch (c.mask) {
    case MaskKind::none: break;
    case MaskKind::add_full:
      add = normal<T>(c.B * c.H * c.Lq * c.Lk);
      ms[0] = c.H * c.Lq * c.Lk; ms[1] = c.Lq * c.Lk; ms[2] = c.Lk; ms[3] = 1;
      break;
    case MaskKind::add_qk:
      add = normal<T>(c.Lq * c.Lk);
      ms[2] = c.Lk; ms[3] = 1;
      break;
    case MaskKind::add_keypad:  // batch 0: last third of the keys -inf; batch 1: every key -inf
      add.assign(c.B * c.Lk, T(0));
      for (int64_t b = 0; b < c.B; ++b)
        for (int64_t j = 0; j < c.Lk; ++j) add[b * c.Lk + j] = (b == 1 || j >= c.Lk - c.Lk / 3) ? T(-kInf) : T(0.25 * j);
      ms[0] = c.Lk; ms[3] = 1;
      break;
    case MaskKind::bool_full:
      keep.resize(c.B * c.H * c.Lq * c.Lk);
      for (auto& e : keep) e = keep_draw(rng);
      for (int64_t r = 0; r < c.B * c.H * c.Lq; r += 3)  // every third row fully masked
        for (int64_t j = 0; j < c.Lk; ++j) keep[r * c.Lk + j] = 0;
      ms[0] = c.H * c.Lq * c.Lk; ms[1] = c.Lq * c.Lk; ms[2] = c.Lk; ms[3] = 1;
      break;
    case MaskKind::bool_keypad:
      keep.resize(c.B * c.Lk);
      for (int64_t b = 0; b < c.B; ++b)
        for (int64_t j = 0; j < c.Lk; ++j) keep[b * c.Lk + j] = b == 1 ? 0 : (j < c.Lk - c.Lk / 4);
      ms[0] = c.Lk; ms[3] = 1;
      break;
    case MaskKind::bool_rows:
      keep.resize(c.Lq);
      for (int64_t i = 0; i < c.Lq; ++i) keep[i] = i % 5 != 2;
      ms[2] = 1;
      break;
  }

  const T scale = T(1.0 / std::sqrt(double(std::max<int64_t>(c.D, 1))));
  const uint64_t seed = 0x1234567890abcdefull, offset = 77;

  // ---- CPU
  cpu::AttentionProblem<T> pb;
  pb.batch = c.B; pb.heads = c.H; pb.q_len = c.Lq; pb.kv_len = c.Lk; pb.head_dim = c.D; pb.value_dim = c.Dv;
  pb.scale = scale; pb.causal = c.causal;
  if (!add.empty()) { pb.mask.kind = cpu::ScoreMask<T>::Kind::additive; pb.mask.additive = add.data(); }
  if (!keep.empty()) { pb.mask.kind = cpu::ScoreMask<T>::Kind::keep; pb.mask.keep = keep.data(); }
  std::memcpy(pb.mask.strides, ms, sizeof ms);
  pb.dropout = {c.p, seed, offset};
  pb.q = {q.data(), q.bs, q.hs, q.rs};
  pb.k = {k.data(), k.bs, k.hs, k.rs};
  pb.v = {v.data(), v.bs, v.hs, v.rs};
  // Output as the op writes it: (B, Lq, H, Dv) storage.
  const int64_t out_n = c.B * c.Lq * c.H * c.Dv;
  std::vector<T> out_cpu(out_n, T(0)), lse_cpu(c.B * c.H * c.Lq, T(0));
  const int64_t obs = c.Lq * c.H * c.Dv, ohs = c.Dv, ors = c.H * c.Dv;
  cpu::attention_forward<T>(pb, {out_cpu.data(), obs, ohs, ors}, lse_cpu.data());

  // ---- CUDA (emulated)
  cuda::AttentionArgs<T> a;
  a.batch = c.B; a.heads = c.H; a.q_len = c.Lq; a.kv_len = c.Lk; a.head_dim = c.D; a.value_dim = c.Dv;
  a.scale = scale; a.causal = c.causal;
  if (!add.empty()) a.mask.additive = add.data();
  if (!keep.empty()) a.mask.keep = keep.data();
  std::memcpy(a.mask.strides, ms, sizeof ms);
  if (c.p > 0) {  // as make_cuda_args
    a.dropout.enabled = true;
    a.dropout.keep_threshold = static_cast<uint32_t>(std::ceil(c.p * 16777216.0));
    a.dropout.kept_scale = c.p < 1 ? static_cast<T>(1.0 / (1.0 - c.p)) : T(0);
    a.dropout.seed = seed;
    a.dropout.offset = offset;
  }
  a.q = {q.data(), q.bs, q.hs, q.rs};
  a.k = {k.data(), k.bs, k.hs, k.rs};
  a.v = {v.data(), v.bs, v.hs, v.rs};
  std::vector<T> out_gpu = poison<T>(out_n), lse_gpu = poison<T>(c.B * c.H * c.Lq);
  cpemu::block_order = c.block_order;
  if constexpr (std::is_same_v<T, float>) {
    if (bf16) cuda::attention_forward_bf16(a, {out_gpu.data(), obs, ohs, ors}, lse_gpu.data(), 0);
  }
  if (!bf16) cuda::attention_forward<T>(a, {out_gpu.data(), obs, ohs, ors}, lse_gpu.data(), 0);

  // bf16: the probabilities are rounded to 8 significant bits before P v (relative 2^-9).
  const bool f32 = sizeof(T) == 4;
  const double atol = bf16 ? 1e-2 : f32 ? 2e-5 : 1e-12, rtol = bf16 ? 1e-2 : f32 ? 2e-4 : 1e-10;
  report(name, "out", compare(out_gpu, out_cpu, atol, rtol));
  report(name, "lse", compare(lse_gpu, lse_cpu, atol, rtol));

  // ---- backward
  const int64_t nq = c.B * c.H * c.Lq * c.D, nk = c.B * c.H * c.Lk * c.D, nv = c.B * c.H * c.Lk * c.Dv,
                ns = c.B * c.H * c.Lq * c.Lk;
  std::vector<T> dq_c(nq, T(0)), dk_c(nk, T(0)), dv_c(nv, T(0)), ds_c(ns, T(0));
  std::vector<T> dq_g = poison<T>(nq), dk_g = poison<T>(nk), dv_g = poison<T>(nv), ds_g = poison<T>(ns);
  std::vector<T> scratch = poison<T>(c.B * c.H * c.Lq);
  cpu::attention_backward<T>(pb, {dout.data(), dout.bs, dout.hs, dout.rs}, lse_cpu.data(),
                             {c.want_dq ? dq_c.data() : nullptr, c.want_dk ? dk_c.data() : nullptr,
                              c.want_dv ? dv_c.data() : nullptr, c.want_ds ? ds_c.data() : nullptr});
  cuda::AttentionBackwardInputs<T> in{{out_gpu.data(), obs, ohs, ors}, {dout.data(), dout.bs, dout.hs, dout.rs},
                                      lse_gpu.data(), scratch.data()};
  const cuda::AttentionGradients<T> grads{c.want_dq ? dq_g.data() : nullptr, c.want_dk ? dk_g.data() : nullptr,
                                          c.want_dv ? dv_g.data() : nullptr, c.want_ds ? ds_g.data() : nullptr};
  if constexpr (std::is_same_v<T, float>) {
    if (bf16) cuda::attention_backward_bf16(a, in, grads, 0);
  }
  if (!bf16) cuda::attention_backward<T>(a, in, grads, 0);
  // bf16: also dS and Pd are rounded before their products, and rowsum(dO * O) inherits the
  // output's rounding (the worst case, dS with dropout's 1 / (1 - p), is ~0.026 here).
  const double gatol = bf16 ? 4e-2 : f32 ? 1e-4 : 1e-11, grtol = bf16 ? 2e-2 : f32 ? 1e-3 : 1e-9;
  if (c.want_dq) report(name, "dq", compare(dq_g, dq_c, gatol, grtol));
  if (c.want_dk) report(name, "dk", compare(dk_g, dk_c, gatol, grtol));
  if (c.want_dv) report(name, "dv", compare(dv_g, dv_c, gatol, grtol));
  if (c.want_ds) report(name, "dS", compare(ds_g, ds_c, gatol, grtol));
}

int main(int argc, char** argv) {
  const std::string only = argc > 1 ? argv[1] : "";
  std::vector<Case> cases;
  // Basic shapes: head dims 1 to 256, D != Dv, odd lengths, Lq != Lk, more than one tile/block.
  cases.push_back({1, 1, 1, 1, 16, 16});
  cases.push_back({1, 2, 17, 33, 16, 16});
  cases.push_back({1, 1, 33, 19, 128, 128});
  cases.push_back({1, 1, 21, 40, 48, 100});  // D != Dv (Dv wider: chunks from Dv)
  cases.push_back({1, 1, 21, 40, 100, 24});  // D wider
  cases.push_back({1, 1, 9, 13, 1, 3});      // tiny dims
  cases.push_back({1, 1, 19, 41, 256, 256});  // max head dim
  { Case c{1, 1, 32, 64, 64, 64}; c.causal = true; c.p = 0.25; c.mask = MaskKind::add_full; cases.push_back(c); }  // exact tiles
  // causal, Lq > Lk and Lq < Lk
  { Case c{1, 1, 70, 40, 32, 32}; c.causal = true; cases.push_back(c); }
  { Case c{1, 1, 23, 67, 16, 16}; c.causal = true; cases.push_back(c); }
  // masks
  { Case c{2, 2, 19, 37, 16, 16}; c.mask = MaskKind::add_full; cases.push_back(c); }
  { Case c{2, 2, 19, 37, 24, 24}; c.mask = MaskKind::add_keypad; cases.push_back(c); }
  { Case c{2, 2, 21, 37, 16, 16}; c.mask = MaskKind::bool_full; cases.push_back(c); }
  { Case c{2, 1, 21, 37, 16, 16}; c.mask = MaskKind::bool_keypad; c.causal = true; cases.push_back(c); }
  { Case c{1, 2, 21, 37, 16, 16}; c.mask = MaskKind::bool_rows; cases.push_back(c); }
  // dropout
  { Case c{2, 2, 19, 37, 16, 16}; c.p = 0.3; cases.push_back(c); }
  { Case c{1, 2, 40, 40, 32, 32}; c.p = 0.5; c.causal = true; c.mask = MaskKind::bool_full; cases.push_back(c); }
  { Case c{1, 1, 9, 11, 16, 16}; c.p = 1.0; cases.push_back(c); }
  // layouts
  { Case c{2, 2, 19, 21, 16, 16}; c.layout = Layout::blhd; cases.push_back(c); }
  { Case c{1, 2, 19, 21, 40, 40}; c.layout = Layout::padded; c.causal = true; cases.push_back(c); }
  // edge: empty q, empty k, NaN row
  cases.push_back({1, 2, 0, 5, 16, 16});
  cases.push_back({1, 2, 5, 0, 16, 16});
  { Case c{1, 1, 7, 9, 16, 16}; c.nan_q_row = true; cases.push_back(c); }
  { Case c{1, 1, 7, 9, 16, 16}; c.nan_k_row = true; cases.push_back(c); }
  // subsets of the gradients (dscores only: dq kernel returns early; dk only; dv only)
  { Case c{1, 1, 19, 37, 16, 16}; c.want_dq = c.want_dk = c.want_dv = false; c.causal = true; cases.push_back(c); }
  { Case c{1, 1, 19, 37, 16, 16}; c.want_dq = c.want_dv = c.want_ds = false; cases.push_back(c); }
  { Case c{1, 1, 19, 37, 16, 16}; c.want_dq = c.want_dk = c.want_ds = false; c.p = 0.2; cases.push_back(c); }
  // block order permuted (no inter-block dependence)
  { Case c{2, 1, 21, 45, 32, 32}; c.block_order = 2; c.causal = true; cases.push_back(c); }

  // Every case in f32; every third also in f64 (the emulation is slow: one OS thread per GPU thread).
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    if (only.empty() || case_name<float>(c).find(only) != std::string::npos) run<float>(c);
    if (i % 3 == 0 && (only.empty() || case_name<double>(c).find(only) != std::string::npos)) run<double>(c);
  }
  // Every case with head dims the tensor-core kernels take, in bf16.
  for (const Case& c : cases) {
    if (std::max(c.D, c.Dv) > cuda::kAttentionBf16MaxHeadDim) continue;
    if (only.empty() || case_name<float>(c, true).find(only) != std::string::npos) run<float>(c, true);
  }
  return finish("attention");
}
