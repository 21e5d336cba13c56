// GEMM throughput: kiln::matmul against Eigen's product called directly on the same
// buffers, so the ratio is what kiln's tensor layer costs on top of the library
// (argument checks, output allocation, layout analysis, dispatch).
//
// Variants, as the forward and the two halves of a backward use them:
//   nn: C = A · B      A stored (m, k), B stored (k, n)
//   tn: C = A^T · B    A stored (k, m), passed to kiln as a transposed view
//   nt: C = A · B^T    B stored (n, k), passed to kiln as a transposed view
//
// Prints one line per case:
//   RESULT bench=gemm m=.. n=.. k=.. variant=nn kiln_gflops=.. lib_gflops=.. ratio=..
// (ratio = kiln / lib). Threads: OMP_NUM_THREADS, e.g. `OMP_NUM_THREADS=2 ./bench_gemm`.
// GCC 12 false positives inside its AVX-512 intrinsics (GCC bug 105593), as in gemm.cpp.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/Core>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <kiln/kiln.h>

using namespace kiln;

namespace {

using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMap = Eigen::Map<const RowMajor>;
using MutableMap = Eigen::Map<RowMajor>;

struct Case {
  int64_t m, n, k;
  std::string variant;  // nn, tn or nt
};

double seconds_of(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void run(const Case& c) {
  const bool ta = c.variant == "tn", tb = c.variant == "nt";
  // Operands in the layout the variant stores them in.
  const Tensor a_store = ta ? randn({c.k, c.m}) : randn({c.m, c.k});
  const Tensor b_store = tb ? randn({c.n, c.k}) : randn({c.k, c.n});
  const Tensor a = ta ? a_store.t() : a_store, b = tb ? b_store.t() : b_store;

  // The library on the same buffers: transposes are Eigen expressions over the Maps.
  Tensor c_lib = empty({c.m, c.n});
  const ConstMap A(a_store.data<float>(), a_store.size(0), a_store.size(1));
  const ConstMap B(b_store.data<float>(), b_store.size(0), b_store.size(1));
  MutableMap C(c_lib.data<float>(), c.m, c.n);
  auto lib = [&] {
    if (ta) C.noalias() = A.transpose() * B;
    else if (tb) C.noalias() = A * B.transpose();
    else C.noalias() = A * B;
  };
  Tensor c_kiln;
  auto via_kiln = [&] { c_kiln = matmul(a, b); };

  // Warm up both (page faults, Eigen's blocking buffers), then alternate the two so
  // clock or thermal drift hits both alike. Enough repetitions for ~1 s per side.
  const double first = std::max(seconds_of(lib), seconds_of(via_kiln));
  seconds_of(lib);
  seconds_of(via_kiln);
  const int reps = std::clamp(static_cast<int>(1.0 / std::max(first, 1e-6)), 5, 51);
  std::vector<double> t_lib, t_kiln;
  for (int r = 0; r < reps; ++r) {
    t_lib.push_back(seconds_of(lib));
    t_kiln.push_back(seconds_of(via_kiln));
  }
  const double flops = 2.0 * static_cast<double>(c.m) * static_cast<double>(c.n) * static_cast<double>(c.k);
  const double lib_gflops = flops / median(t_lib) * 1e-9, kiln_gflops = flops / median(t_kiln) * 1e-9;
  // Both must compute the same product, or the comparison means nothing.
  const double diff = max(abs(c_kiln - c_lib)).item<double>();
  KILN_CHECK(diff <= 1e-3 * static_cast<double>(c.k), "bench_gemm: kiln and the library disagree by ", diff);
  std::printf("RESULT bench=gemm m=%lld n=%lld k=%lld variant=%s kiln_gflops=%.1f lib_gflops=%.1f ratio=%.3f\n",
              static_cast<long long>(c.m), static_cast<long long>(c.n), static_cast<long long>(c.k),
              c.variant.c_str(), kiln_gflops, lib_gflops, kiln_gflops / lib_gflops);
  std::fflush(stdout);
}

}  // namespace

int main() {
  std::printf("# bench_gemm: f32, %d OpenMP threads, Eigen %d.%d.%d, median of repetitions after warm-up\n",
              omp_get_max_threads(), EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION);
  manual_seed(0);
  std::vector<Case> cases;
  for (int64_t s : {256, 512, 1024, 2048}) cases.push_back({s, s, s, "nn"});
  // Transformer shapes (tokens x features): QKV/out projections, attention-sized and MLP.
  const int64_t transformer[][3] = {{4096, 1024, 256}, {4096, 256, 1024}, {4096, 768, 768}, {4096, 3072, 768},
                                    {4096, 768, 3072}};
  for (const auto& s : transformer)
    for (const char* v : {"nn", "tn", "nt"}) cases.push_back({s[0], s[1], s[2], v});
  for (int64_t s : {512, 2048})
    for (const char* v : {"tn", "nt"}) cases.push_back({s, s, s, v});
  for (const Case& c : cases) run(c);
  return 0;
}
