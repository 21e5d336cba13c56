// GEMM throughput: kiln::matmul against the libraries called directly on the same
// buffers, so the ratios show what kiln's tensor layer and its choice of backend cost.
//
//   kiln:     matmul(a, b), in whichever backend cpu::gemm_backend() names (OpenBLAS
//             on one panel per OpenMP thread, or Eigen; KILN_BLAS=off forces Eigen)
//   eigen:    Eigen's product on Maps, the path kiln takes without OpenBLAS
//   openblas: cblas_sgemm with OpenBLAS's own thread pool (omp_get_max_threads()
//             threads), when libopenblas.so.0 loads; its kernels are the ones kiln got,
//             or OPENBLAS_CORETYPE's / the CPU's when kiln kept Eigen
//
// Variants, as the forward and the two halves of a backward use them:
//   nn: C = A · B      A stored (m, k), B stored (k, n)
//   tn: C = A^T · B    A stored (k, m), passed to kiln as a transposed view
//   nt: C = A · B^T    B stored (n, k), passed to kiln as a transposed view
//
// A second part times a GEMM followed by a softmax over its rows, in a loop, the way
// a layer's forward alternates library GEMMs with kiln's own OpenMP kernels: it
// shows how each GEMM's threads get along with OpenMP's (compare OMP_WAIT_POLICY
// unset and PASSIVE).
//
// The contenders run in interleaved blocks of calls, each block starting after a
// pause that lets idle threads (OpenMP's, OpenBLAS's) go to sleep. Each line reports
// the best call (the machine may be shared: the best is the least disturbed) and the
// median. Prints
//   RESULT bench=gemm m=.. n=.. k=.. variant=nn kiln_gflops=.. eigen_gflops=.. openblas_gflops=..
//          kiln_vs_eigen=.. kiln_vs_openblas=.. (best; *_median_gflops too)
//   RESULT bench=gemm_softmax m=.. n=.. k=.. kiln_ms=.. eigen_ms=.. openblas_ms=.. (best; *_median_ms)
// Threads: OMP_NUM_THREADS, e.g. `OMP_NUM_THREADS=2 ./bench_gemm`; `./bench_gemm
// softmax` runs only the second part.
// GCC 12 false positives inside its AVX-512 intrinsics (GCC bug 105593), as in gemm.cpp.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/Core>
#include <dlfcn.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <kiln/kiln.h>
#include <kiln/ops/cpu/blas_loader.h>

using namespace kiln;

namespace {

using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMap = Eigen::Map<const RowMajor>;
using MutableMap = Eigen::Map<RowMajor>;

// OpenBLAS called directly, with its own thread pool: the reference for what the
// library does with all threads to itself. kiln keeps OpenBLAS at one thread (its
// panels run on OpenMP threads), so the pool is sized up only around a block of these
// calls (ThreadPool below) and back to one thread after.
struct DirectOpenBlas {
  cpu::blas::SgemmFn sgemm = nullptr;
  void (*set_num_threads)(int) = nullptr;
  const char* corename = "none";

  static DirectOpenBlas load() {
    DirectOpenBlas lib;
    void* handle = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);  // kiln's instance, if it holds one
    if (!handle) return lib;
    lib.sgemm = reinterpret_cast<cpu::blas::SgemmFn>(dlsym(handle, "cblas_sgemm"));
    lib.set_num_threads = reinterpret_cast<void (*)(int)>(dlsym(handle, "openblas_set_num_threads"));
    if (auto name = reinterpret_cast<char* (*)()>(dlsym(handle, "openblas_get_corename"))) lib.corename = name();
    if (!lib.set_num_threads) lib.sgemm = nullptr;
    return lib;
  }
  bool available() const { return sgemm != nullptr; }
};

// OpenBLAS's pool at omp_get_max_threads() threads for a scope.
class ThreadPool {
 public:
  explicit ThreadPool(const DirectOpenBlas& lib) : lib_(lib) { lib_.set_num_threads(omp_get_max_threads()); }
  ~ThreadPool() { lib_.set_num_threads(1); }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

 private:
  const DirectOpenBlas& lib_;
};

struct Case {
  int64_t m, n, k;
  std::string variant;  // nn, tn or nt
};

// Operands in the layout the variant stores them in, the views kiln gets, and C for
// the direct calls.
struct Operands {
  explicit Operands(const Case& c)
      : ta(c.variant == "tn"), tb(c.variant == "nt"), a_store(ta ? randn({c.k, c.m}) : randn({c.m, c.k})),
        b_store(tb ? randn({c.n, c.k}) : randn({c.k, c.n})), a(ta ? a_store.t() : a_store),
        b(tb ? b_store.t() : b_store), c_direct(empty({c.m, c.n})), m(c.m), n(c.n), k(c.k) {}

  void eigen() {
    const ConstMap A(a_store.data<float>(), a_store.size(0), a_store.size(1));
    const ConstMap B(b_store.data<float>(), b_store.size(0), b_store.size(1));
    MutableMap C(c_direct.data<float>(), m, n);
    if (ta) C.noalias() = A.transpose() * B;
    else if (tb) C.noalias() = A * B.transpose();
    else C.noalias() = A * B;
  }
  void openblas(const DirectOpenBlas& lib) {
    using namespace cpu::blas;
    lib.sgemm(kRowMajor, ta ? kTrans : kNoTrans, tb ? kTrans : kNoTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), 1.f, a_store.data<float>(), static_cast<int>(a_store.size(1)), b_store.data<float>(),
              static_cast<int>(b_store.size(1)), 0.f, c_direct.data<float>(), static_cast<int>(n));
  }

  bool ta, tb;
  Tensor a_store, b_store, a, b, c_direct;
  int64_t m, n, k;
};

double seconds_of(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// One contender: a block of calls at a time, all call times kept.
struct Contender {
  std::function<void()> call;
  std::function<void(const std::function<void()>&)> around_block = [](const std::function<void()>& block) { block(); };
  std::vector<double> times;

  void run_block(int calls) {
    around_block([&] {
      for (int i = 0; i < calls; ++i) times.push_back(seconds_of(call));
    });
  }
  double best() const { return *std::min_element(times.begin(), times.end()); }
  double median() const {
    std::vector<double> v = times;
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
    return v[v.size() / 2];
  }
};

// Interleaved blocks, ~0.6 s of calls per contender in all, each block after a pause
// long enough for spinning threads to give up (libgomp spins ~0.3M iterations,
// OpenBLAS's pool ~2^28 cycles: both well under 200 ms).
void race(std::vector<Contender*> contenders) {
  double slowest = 0;
  for (Contender* c : contenders) {
    c->call();  // warm-up: page faults, blocking buffers, thread creation
    slowest = std::max(slowest, seconds_of(c->call));
  }
  const int rounds = 4;
  const int calls = std::clamp(static_cast<int>(0.15 / std::max(slowest, 1e-6)), 2, 200);
  for (int r = 0; r < rounds; ++r)
    for (Contender* c : contenders) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      c->run_block(calls);
    }
}

void throughput(const Case& c, const DirectOpenBlas& lib) {
  Operands ops(c);
  Tensor c_kiln;
  Contender kiln{[&] { c_kiln = matmul(ops.a, ops.b); }};
  Contender eigen{[&] { ops.eigen(); }};
  Contender openblas{[&] { ops.openblas(lib); }, [&](const std::function<void()>& block) {
                       ThreadPool pool(lib);
                       block();
                     }};
  std::vector<Contender*> all{&kiln, &eigen};
  if (lib.available()) all.push_back(&openblas);
  race(all);

  // Both must compute the same product, or the comparison means nothing.
  ops.eigen();
  const double diff = max(abs(c_kiln - ops.c_direct)).item<double>();
  KILN_CHECK(diff <= 1e-3 * static_cast<double>(c.k), "bench_gemm: kiln and Eigen disagree by ", diff);

  const double flops = 2.0 * static_cast<double>(c.m) * static_cast<double>(c.n) * static_cast<double>(c.k);
  const double k_best = flops / kiln.best() * 1e-9, e_best = flops / eigen.best() * 1e-9;
  std::printf("RESULT bench=gemm m=%lld n=%lld k=%lld variant=%s kiln_gflops=%.1f eigen_gflops=%.1f",
              static_cast<long long>(c.m), static_cast<long long>(c.n), static_cast<long long>(c.k),
              c.variant.c_str(), k_best, e_best);
  if (lib.available()) std::printf(" openblas_gflops=%.1f", flops / openblas.best() * 1e-9);
  std::printf(" kiln_vs_eigen=%.3f", k_best / e_best);
  if (lib.available()) std::printf(" kiln_vs_openblas=%.3f", openblas.best() / kiln.best());
  std::printf(" kiln_median_gflops=%.1f eigen_median_gflops=%.1f", flops / kiln.median() * 1e-9,
              flops / eigen.median() * 1e-9);
  if (lib.available()) std::printf(" openblas_median_gflops=%.1f", flops / openblas.median() * 1e-9);
  std::printf("\n");
  std::fflush(stdout);
}

// softmax(A · B) over rows, GEMM by each contender, softmax always kiln's.
void gemm_then_softmax(const Case& c, const DirectOpenBlas& lib) {
  Operands ops(c);
  Tensor y;
  Contender kiln{[&] { y = softmax(matmul(ops.a, ops.b), -1); }};
  Contender eigen{[&] {
    ops.eigen();
    y = softmax(ops.c_direct, -1);
  }};
  Contender openblas{[&] {
                       ops.openblas(lib);
                       y = softmax(ops.c_direct, -1);
                     },
                     [&](const std::function<void()>& block) {
                       ThreadPool pool(lib);
                       block();
                     }};
  std::vector<Contender*> all{&kiln, &eigen};
  if (lib.available()) all.push_back(&openblas);
  race(all);
  std::printf("RESULT bench=gemm_softmax m=%lld n=%lld k=%lld kiln_ms=%.2f eigen_ms=%.2f",
              static_cast<long long>(c.m), static_cast<long long>(c.n), static_cast<long long>(c.k),
              kiln.best() * 1e3, eigen.best() * 1e3);
  if (lib.available()) std::printf(" openblas_ms=%.2f", openblas.best() * 1e3);
  std::printf(" kiln_median_ms=%.2f eigen_median_ms=%.2f", kiln.median() * 1e3, eigen.median() * 1e3);
  if (lib.available()) std::printf(" openblas_median_ms=%.2f", openblas.median() * 1e3);
  std::printf("\n");
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const bool softmax_only = argc > 1 && std::strcmp(argv[1], "softmax") == 0;
  const char* wait_policy = std::getenv("OMP_WAIT_POLICY");
  // Load kiln's backend first, so that the direct calls share its OpenBLAS instance.
  const std::string backend = cpu::gemm_backend();
  const DirectOpenBlas lib = DirectOpenBlas::load();
  std::printf("# bench_gemm: f32, %d OpenMP threads (OMP_WAIT_POLICY=%s), Eigen %d.%d.%d\n", omp_get_max_threads(),
              wait_policy ? wait_policy : "unset", EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION);
  std::printf("# kiln's GEMM backend: %s\n", backend.c_str());
  std::printf("# openblas column: %s\n",
              lib.available() ? (std::string(lib.corename) + " kernels, its own thread pool").c_str() : "not available");
  manual_seed(0);

  if (!softmax_only) {
    std::vector<Case> cases;
    for (int64_t s : {256, 512, 1024, 2048}) cases.push_back({s, s, s, "nn"});
    // Transformer shapes (tokens x features): QKV/out projections, attention-sized and MLP.
    const int64_t transformer[][3] = {{4096, 1024, 256}, {4096, 256, 1024}, {4096, 768, 768}, {4096, 3072, 768},
                                      {4096, 768, 3072}};
    for (const auto& s : transformer)
      for (const char* v : {"nn", "tn", "nt"}) cases.push_back({s[0], s[1], s[2], v});
    for (int64_t s : {512, 2048})
      for (const char* v : {"tn", "nt"}) cases.push_back({s, s, s, v});
    for (const Case& c : cases) throughput(c, lib);
  }
  // Attention-score-sized and MLP-sized products, each followed by a softmax over rows.
  for (const Case& c : {Case{1024, 1024, 64, "nn"}, Case{4096, 1024, 256, "nn"}, Case{4096, 768, 768, "nn"},
                        Case{4096, 3072, 768, "nn"}})
    gemm_then_softmax(c, lib);
  return 0;
}
