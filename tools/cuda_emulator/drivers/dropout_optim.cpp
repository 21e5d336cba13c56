// Emulated CUDA dropout (cuda/dropout.cu, bit for bit: same counter-based random numbers) and
// SGD/Adam updates (cuda/optim.cu) vs the CPU kernels.
#include "common.h"
#include "kiln/cuda/dropout.h"
#include "kiln/cuda/optim.h"
#include "kiln/ops/cpu/dropout.h"
#include "kiln/ops/cpu/optim_kernels.h"

using namespace kiln;

template <class T> void dropout_case(int64_t n, double p, uint64_t offset) {
  char name[128];
  std::snprintf(name, sizeof name, "dropout %s n%lld p%.3g offset%llu", sizeof(T) == 4 ? "f32" : "f64", (long long)n, p,
                (unsigned long long)offset);
  auto x = normal<T>(n);
  std::vector<T> y_c(n), m_c(n), y_g = poison<T>(n), m_g = poison<T>(n);
  cpu::dropout_forward(x.data(), y_c.data(), m_c.data(), n, p, 99, offset);
  cuda::dropout_forward(x.data(), y_g.data(), m_g.data(), n, p, 99, offset, 0);
  const Diff d = exact(bitwise_equal(y_g, y_c) && bitwise_equal(m_g, m_c), n);
  report(name, "bits", d);
}

template <class T> void sgd_case(int64_t n, cpu::SgdHyperparameters h) {
  char name[160];
  std::snprintf(name, sizeof name, "sgd %s n%lld lr%g mom%g damp%g wd%g nest%d first%d", sizeof(T) == 4 ? "f32" : "f64",
                (long long)n, h.lr, h.momentum, h.dampening, h.weight_decay, h.nesterov, h.first_step);
  auto p = normal<T>(n), g = normal<T>(n), b = normal<T>(n);
  auto p2 = p, b2 = b;
  cpu::sgd_update(p.data(), g.data(), h.momentum != 0 ? b.data() : nullptr, n, h);
  cuda::sgd_update(p2.data(), g.data(), h.momentum != 0 ? b2.data() : nullptr, n, h, 0);
  const double tol = sizeof(T) == 4 ? 1e-6 : 1e-15;  // fma contraction may differ by an ulp
  report(name, "param", compare(p2, p, tol, tol));
  report(name, "buf", compare(b2, b, tol, tol));
}

template <class T> void adam_case(int64_t n, cpu::AdamHyperparameters h) {
  char name[160];
  std::snprintf(name, sizeof name, "adam %s n%lld lr%g wd%g decoupled%d step%lld", sizeof(T) == 4 ? "f32" : "f64",
                (long long)n, h.lr, h.weight_decay, h.decoupled_weight_decay, (long long)h.step);
  auto p = normal<T>(n), g = normal<T>(n), m = normal<T>(n), v = unif<T>(n, 0, 2);
  auto p2 = p, m2 = m, v2 = v;
  cpu::adam_update(p.data(), g.data(), m.data(), v.data(), n, h);
  cuda::adam_update(p2.data(), g.data(), m2.data(), v2.data(), n, h, 0);
  const double tol = sizeof(T) == 4 ? 1e-6 : 1e-15;
  report(name, "param", compare(p2, p, tol, tol));
  report(name, "exp_avg", compare(m2, m, tol, tol));
  report(name, "exp_avg_sq", compare(v2, v, tol, tol));
}

int main() {
  for (int64_t n : {1, 3, 4, 5, 1001, 4099})
    for (double p : {0.0, 0.1, 0.5, 1.0}) {
      dropout_case<float>(n, p, 7);
      dropout_case<double>(n, p, 0);
    }
  for (int64_t n : {1, 257, 1000}) {
    for (auto h : {cpu::SgdHyperparameters{0.1, 0, 0, 0, false, false}, cpu::SgdHyperparameters{0.1, 0.9, 0.1, 1e-2, false, true},
                   cpu::SgdHyperparameters{0.1, 0.9, 0.1, 1e-2, false, false}, cpu::SgdHyperparameters{0.05, 0.9, 0, 0, true, false}}) {
      sgd_case<float>(n, h);
      sgd_case<double>(n, h);
    }
    for (auto h : {cpu::AdamHyperparameters{1e-3, 0.9, 0.999, 1e-8, 0, false, 1},
                   cpu::AdamHyperparameters{1e-3, 0.9, 0.999, 1e-8, 1e-2, false, 5},
                   cpu::AdamHyperparameters{1e-3, 0.9, 0.999, 1e-8, 1e-2, true, 100}}) {
      adam_case<float>(n, h);
      adam_case<double>(n, h);
    }
  }
  return finish("dropout_optim");
}
