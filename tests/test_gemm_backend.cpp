// The GEMM backends: OpenBLAS loaded at run time (ops/cpu/blas_loader) and Eigen.
// Both must compute the same products as a reference in double (a plain loop on small
// sizes, Eigen in double on large ones) for every operand layout, with padded leading
// dims, beta 0 and 1, in f32 and f64; large products are cut into panels across
// threads, and products inside a parallel region stay on their thread. The choice of
// backend is tested through plan_load(), which takes the environment as arguments:
// the process itself loads OpenBLAS once. On a machine without OpenBLAS (or with
// KILN_BLAS=off) the OpenBLAS cases have nothing to run and say so.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC bug 105593, see ops/cpu/gemm.cpp
#endif
#include <Eigen/Core>
#include <omp.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <kiln/ops/cpu/blas_loader.h>
#include <kiln/ops/cpu/gemm.h>

#include "helpers.h"

using namespace kiln;
using cpu::GemmLibrary;

namespace {

const char* name_of(GemmLibrary library) {
  switch (library) {
    case GemmLibrary::automatic: return "automatic";
    case GemmLibrary::eigen: return "eigen";
    case GemmLibrary::openblas: return "openblas";
  }
  return "?";
}

// Every library this process can run: OpenBLAS only when it loaded.
std::vector<GemmLibrary> libraries() {
  std::vector<GemmLibrary> out{GemmLibrary::eigen, GemmLibrary::automatic};
  if (cpu::blas::openblas()) out.push_back(GemmLibrary::openblas);
  return out;
}

// A row-major matrix stored with leading dim `ld` >= cols. The padding holds NaN, so a
// GEMM that reads past a row's end poisons its result.
template <class T>
struct Stored {
  int64_t rows, cols, ld;
  std::vector<T> data;
  T at(int64_t i, int64_t j) const { return data[i * ld + j]; }
};

template <class T>
Stored<T> random_stored(int64_t rows, int64_t cols, int64_t ld, std::mt19937& rng) {
  Stored<T> s{rows, cols, ld, std::vector<T>(static_cast<size_t>(std::max<int64_t>(rows * ld, 1)), NAN)};
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) s.data[i * ld + j] = static_cast<T>(uniform(rng));
  return s;
}

struct GemmCase {
  int64_t m, n, k;
  bool trans_a, trans_b;
  int64_t pad;  // added to every leading dim
  double alpha, beta;
};

// C (m x n) = alpha op(A) op(B) + beta C0 in double, with the bound each element's
// rounding error must stay within: a sum of k products is exact to about k units of
// roundoff of the sum of their magnitudes, in any order of summation.
struct Reference {
  Eigen::MatrixXd value, bound;
};

// op(X)(i, j) of a stored operand, in double.
template <class T>
double op_at(const Stored<T>& x, bool trans, int64_t i, int64_t j) {
  return static_cast<double>(trans ? x.at(j, i) : x.at(i, j));
}

template <class T>
Eigen::MatrixXd op_matrix(const Stored<T>& x, bool trans) {
  const int64_t rows = trans ? x.cols : x.rows, cols = trans ? x.rows : x.cols;
  Eigen::MatrixXd out(rows, cols);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) out(i, j) = op_at(x, trans, i, j);
  return out;
}

template <class T>
double error_bound(const GemmCase& g, double product_magnitude, double c0) {
  const double eps = std::numeric_limits<T>::epsilon();
  return static_cast<double>(g.k + 3) * eps * (std::fabs(g.alpha) * product_magnitude + std::fabs(g.beta * c0)) +
         1e-300;
}

// The definition, loop by loop: for small cases.
template <class T>
Reference reference_by_loop(const GemmCase& g, const Stored<T>& a, const Stored<T>& b, const Stored<T>& c0) {
  Reference r{Eigen::MatrixXd(g.m, g.n), Eigen::MatrixXd(g.m, g.n)};
  for (int64_t i = 0; i < g.m; ++i)
    for (int64_t j = 0; j < g.n; ++j) {
      double sum = 0.0, magnitude = 0.0;
      for (int64_t p = 0; p < g.k; ++p) {
        const double product = op_at(a, g.trans_a, i, p) * op_at(b, g.trans_b, p, j);
        sum += product;
        magnitude += std::fabs(product);
      }
      const double old = g.beta == 0.0 ? 0.0 : static_cast<double>(c0.at(i, j));
      r.value(i, j) = g.alpha * sum + g.beta * old;
      r.bound(i, j) = error_bound<T>(g, magnitude, old);
    }
  return r;
}

// Eigen's product in double: for cases too large to loop over quickly.
template <class T>
Reference reference_by_eigen(const GemmCase& g, const Stored<T>& a, const Stored<T>& b, const Stored<T>& c0) {
  const Eigen::MatrixXd op_a = op_matrix(a, g.trans_a), op_b = op_matrix(b, g.trans_b);
  Eigen::MatrixXd old = Eigen::MatrixXd::Zero(g.m, g.n);
  if (g.beta != 0.0)
    for (int64_t i = 0; i < g.m; ++i)
      for (int64_t j = 0; j < g.n; ++j) old(i, j) = static_cast<double>(c0.at(i, j));
  const Eigen::MatrixXd magnitude = op_a.cwiseAbs() * op_b.cwiseAbs();
  Reference r{g.alpha * (op_a * op_b) + g.beta * old, Eigen::MatrixXd(g.m, g.n)};
  for (int64_t i = 0; i < g.m; ++i)
    for (int64_t j = 0; j < g.n; ++j) r.bound(i, j) = error_bound<T>(g, magnitude(i, j), old(i, j));
  return r;
}

// Operands and C for one case. With beta == 0, C starts as NaN, which the GEMM must
// ignore; C's padding holds a sentinel, which it must not touch.
template <class T>
struct Operands {
  Stored<T> a, b, c;
};

constexpr double kSentinel = 777.0;

template <class T>
Operands<T> make_operands(const GemmCase& g, std::mt19937& rng) {
  const int64_t a_rows = g.trans_a ? g.k : g.m, a_cols = g.trans_a ? g.m : g.k;
  const int64_t b_rows = g.trans_b ? g.n : g.k, b_cols = g.trans_b ? g.k : g.n;
  Operands<T> ops{random_stored<T>(a_rows, a_cols, std::max<int64_t>(a_cols, 1) + g.pad, rng),
                  random_stored<T>(b_rows, b_cols, std::max<int64_t>(b_cols, 1) + g.pad, rng),
                  random_stored<T>(g.m, g.n, g.n + g.pad, rng)};
  for (int64_t i = 0; i < g.m; ++i)
    for (int64_t j = 0; j < ops.c.ld; ++j) {
      T& x = ops.c.data[i * ops.c.ld + j];
      if (j >= g.n) x = static_cast<T>(kSentinel);
      else if (g.beta == 0.0) x = static_cast<T>(NAN);
    }
  return ops;
}

template <class T>
void run_gemm(GemmLibrary library, const GemmCase& g, const Stored<T>& a, const Stored<T>& b, Stored<T>& c) {
  cpu::gemm_with<T>(library, g.trans_a, g.trans_b, g.m, g.n, g.k, static_cast<T>(g.alpha), a.data.data(), a.ld,
                    b.data.data(), b.ld, static_cast<T>(g.beta), c.data.data(), c.ld);
}

// Every element of C within its bound of the reference, the padding untouched. One
// CHECK per case (not per element), with the first offender named.
template <class T>
void check_result(const Stored<T>& c, const Reference& ref) {
  std::string first_bad;
  int64_t bad = 0;
  for (int64_t i = 0; i < c.rows; ++i)
    for (int64_t j = 0; j < c.ld; ++j) {
      const double got = static_cast<double>(c.at(i, j));
      const bool ok = j < c.cols ? std::fabs(got - ref.value(i, j)) <= ref.bound(i, j) : got == kSentinel;
      if (ok) continue;
      if (bad++ == 0)
        first_bad = detail::str("C(", i, ", ", j, ") = ", got, ", expected ",
                                j < c.cols ? ref.value(i, j) : kSentinel);
    }
  CHECK_MESSAGE(bad == 0, bad, " wrong elements; first: ", first_bad);
}

// All four layouts, beta 0 and 1, each of `pads` added to the leading dims, each
// library against the reference.
template <class T, class MakeReference>
void check_cases(const std::vector<GemmCase>& shapes, const std::vector<int64_t>& pads, MakeReference reference) {
  std::mt19937 rng(1234);
  for (GemmCase g : shapes)
    for (bool trans_a : {false, true})
      for (bool trans_b : {false, true})
        for (double beta : {0.0, 1.0})
          for (int64_t pad : pads) {
            g.trans_a = trans_a, g.trans_b = trans_b, g.beta = beta, g.pad = pad;
            const Operands<T> ops = make_operands<T>(g, rng);
            const Reference ref = reference(g, ops.a, ops.b, ops.c);
            for (GemmLibrary library : libraries()) {
              INFO(name_of(library), ", f", 8 * sizeof(T), ": m=", g.m, " n=", g.n, " k=", g.k, " trans_a=", trans_a,
                   " trans_b=", trans_b, " beta=", beta, " pad=", pad);
              Stored<T> c = ops.c;
              run_gemm(library, g, ops.a, ops.b, c);
              check_result(c, ref);
            }
          }
}

}  // namespace

TEST_CASE("the GEMM backend in use is reported") {
  const std::string backend = cpu::gemm_backend();
  MESSAGE("GEMM backend: ", backend);
  const bool loaded = cpu::blas::openblas() != nullptr;
  CHECK(std::string_view(backend).starts_with(loaded ? "OpenBLAS" : "eigen ("));
  // When this process runs with KILN_BLAS=off, nothing may have loaded.
  const char* kiln_blas = std::getenv("KILN_BLAS");
  if (kiln_blas && std::string_view(kiln_blas) == "off") {
    CHECK_FALSE(loaded);
    CHECK(backend == "eigen (KILN_BLAS=off)");
  }
}

TEST_CASE("plan_load: KILN_BLAS=off keeps Eigen; the core type follows the CPU unless the user chose one") {
  const cpu::blas::CpuFeatures avx512_bf16{.avx512 = true, .avx512_bf16 = true};
  const cpu::blas::CpuFeatures avx512_only{.avx512 = true, .avx512_bf16 = false};
  const cpu::blas::CpuFeatures avx2{};
  using cpu::blas::plan_load;

  for (const char* off : {"off", "0"}) {
    const cpu::blas::Plan plan = plan_load(off, nullptr, avx512_bf16);
    CHECK_FALSE(plan.load);
    CHECK(plan.coretype.empty());
    CHECK(plan.reason == std::string("KILN_BLAS=") + off);
  }
  for (const char* automatic : {static_cast<const char*>(nullptr), "", "auto"}) {
    INFO((automatic ? automatic : "(unset)"));
    CHECK(plan_load(automatic, nullptr, avx512_bf16).load);
    CHECK_FALSE(plan_load(automatic, nullptr, avx512_bf16).force);
  }
  for (const char* on : {"on", "1"}) {
    INFO(on);
    CHECK(plan_load(on, nullptr, avx512_bf16).load);
    CHECK(plan_load(on, nullptr, avx512_bf16).force);
  }
  CHECK(plan_load(nullptr, nullptr, avx512_bf16).coretype == "Cooperlake");
  CHECK(plan_load(nullptr, "", avx512_bf16).coretype == "Cooperlake");  // set but empty counts as unset
  CHECK(plan_load(nullptr, nullptr, avx512_only).coretype == "SkylakeX");
  CHECK(plan_load(nullptr, nullptr, avx2).coretype.empty());           // OpenBLAS's own detection
  CHECK(plan_load(nullptr, "Haswell", avx512_bf16).coretype.empty());  // the user's choice stands
  CHECK(plan_load(nullptr, "Haswell", avx512_bf16).load);
}

TEST_CASE("reason_to_keep_eigen: OpenBLAS's AVX2 kernels do not replace an AVX-512 Eigen") {
  using cpu::blas::reason_to_keep_eigen;
  for (const char* avx512_core : {"Cooperlake", "SkylakeX", "SKYLAKEX", "SapphireRapids"}) {
    INFO(avx512_core);
    CHECK(reason_to_keep_eigen(avx512_core, true).empty());
    CHECK(reason_to_keep_eigen(avx512_core, false).empty());
  }
  CHECK(reason_to_keep_eigen("Haswell", true) ==
        "it would run its Haswell kernels, slower than Eigen's AVX-512 ones");
  CHECK_FALSE(reason_to_keep_eigen("unknown", true).empty());  // when in doubt, no change
  CHECK(reason_to_keep_eigen("Haswell", false).empty());       // against Eigen without AVX-512, it wins
}

TEST_CASE("asking for OpenBLAS when it is not loaded is an error") {
  if (cpu::blas::openblas()) {
    MESSAGE("OpenBLAS is loaded: nothing to check (run with KILN_BLAS=off to check this)");
    return;
  }
  float a = 1, b = 2, c = 0;
  CHECK_THROWS_KILN(cpu::gemm_with<float>(GemmLibrary::openblas, false, false, 1, 1, 1, 1.f, &a, 1, &b, 1, 0.f, &c, 1),
                    "gemm: OpenBLAS was asked for but is not loaded");
}

TEST_CASE("small GEMMs of every layout agree with the definition") {
  // Odd sizes, vectors on either side, single elements, and sizes around the point where
  // gemm() starts cutting a product into panels.
  const std::vector<GemmCase> shapes = {{1, 1, 1},    {3, 5, 7},    {17, 13, 29}, {64, 1, 33},
                                        {1, 70, 45},  {31, 47, 1},  {97, 101, 95}, {150, 66, 120}};
  SUBCASE("f32") { check_cases<float>(shapes, {0, 3}, reference_by_loop<float>); }
  SUBCASE("f64") { check_cases<double>(shapes, {0, 3}, reference_by_loop<double>); }
}

TEST_CASE("large GEMMs, cut into panels by rows and by columns, agree with Eigen in double") {
  // m > n: panels of rows; n > m: panels of columns; sizes not multiples of a panel.
  // Padded leading dims only: the small cases cover exact ones.
  const std::vector<GemmCase> shapes = {{517, 259, 301}, {259, 517, 301}};
  SUBCASE("f32") { check_cases<float>(shapes, {5}, reference_by_eigen<float>); }
  SUBCASE("f64") { check_cases<double>(shapes, {5}, reference_by_eigen<double>); }
}

TEST_CASE("alpha and beta other than 0 and 1 scale the product and C") {
  const std::vector<GemmCase> shapes = {{23, 19, 37, false, false, 0, -0.5, 0}, {200, 180, 160, false, false, 0, 2.0, 0}};
  std::mt19937 rng(7);
  for (GemmCase g : shapes) {
    g.beta = 0.25;
    g.trans_b = true;
    const Operands<double> ops = make_operands<double>(g, rng);
    const Reference ref = reference_by_loop(g, ops.a, ops.b, ops.c);
    for (GemmLibrary library : libraries()) {
      INFO(name_of(library));
      Stored<double> c = ops.c;
      run_gemm(library, g, ops.a, ops.b, c);
      check_result(c, ref);
    }
  }
}

TEST_CASE("an empty inner dim leaves beta * C (zeros for beta 0, even over NaN)") {
  std::mt19937 rng(3);
  for (double beta : {0.0, 1.0}) {
    const GemmCase g{6, 5, 0, false, false, 2, 1.0, beta};
    const Operands<float> ops = make_operands<float>(g, rng);
    const Reference ref = reference_by_loop(g, ops.a, ops.b, ops.c);
    for (GemmLibrary library : libraries()) {
      INFO(name_of(library), ", beta=", beta);
      Stored<float> c = ops.c;
      run_gemm(library, g, ops.a, ops.b, c);
      check_result(c, ref);
    }
  }
}

TEST_CASE("a leading dim BLAS would reject still gives the product (through Eigen)") {
  // A single row of A may have any leading dim (it is never stepped over), but CBLAS
  // rejects lda < k and computes nothing; gemm must not pass that on.
  const float a[] = {1, 2, 3}, b[] = {1, 0, 2, 1, 0, 3};  // A (1 x 3), B (3 x 2)
  for (GemmLibrary library : libraries()) {
    INFO(name_of(library));
    float c[2] = {NAN, NAN};
    cpu::gemm_with<float>(library, false, false, 1, 2, 3, 1.f, a, /*lda=*/1, b, 2, 0.f, c, 2);
    CHECK(c[0] == 5.f);
    CHECK(c[1] == 11.f);
  }
}

TEST_CASE("GEMMs called inside a parallel region each stay on their thread and agree") {
  // The way conv and attention call gemm: one product per thread, concurrently.
  const GemmCase g{150, 130, 140, false, true, 1, 1.0, 0.0};
  std::mt19937 rng(11);
  const Operands<float> ops = make_operands<float>(g, rng);
  const Reference ref = reference_by_eigen(g, ops.a, ops.b, ops.c);
  for (GemmLibrary library : libraries()) {
    INFO(name_of(library));
    const int threads = std::max(omp_get_max_threads(), 2);
    std::vector<Stored<float>> results(static_cast<size_t>(3 * threads), ops.c);
#pragma omp parallel for schedule(dynamic) num_threads(threads)
    for (size_t i = 0; i < results.size(); ++i) run_gemm(library, g, ops.a, ops.b, results[i]);
    for (const Stored<float>& c : results) check_result(c, ref);
  }
}
