// OpenBLAS, found at run time: kiln never links it, so a machine without it (or a
// build that must not depend on it) runs every GEMM in Eigen, and one that has it
// gets OpenBLAS's faster kernels.
//
// Why at run time: OpenBLAS picks its kernels once, in the constructor that runs when
// the library loads, from the CPU or from OPENBLAS_CORETYPE. Its AVX-512 kernels
// (SkylakeX, Cooperlake) beat Eigen's by 1.4-1.6x on 2 cores; its AVX2 ones (Haswell)
// lose to Eigen's AVX-512 build. A library that older OpenBLAS releases do not
// recognise falls back to the latter, and only an OPENBLAS_CORETYPE set before the
// load gets the former: a link-time dependency loads OpenBLAS before main() runs, too
// early to set anything; dlopen() on first use is not.
//
// The first GEMM loads it (once per process, thread-safe):
//   1. KILN_BLAS=off (or 0) keeps every GEMM in Eigen.
//   2. If OPENBLAS_CORETYPE is unset (or empty) and the CPU has AVX-512 F/BW/VL/DQ, it
//      is set to Cooperlake (CPU with AVX512_BF16) or SkylakeX; OPENBLAS_NUM_THREADS
//      is set to 1 if unset, as kiln runs OpenBLAS single-threaded (see gemm.cpp).
//      Both only for the load: the environment is restored afterwards.
//   3. dlopen("libopenblas.so.0"). A process that already holds OpenBLAS (linked, or
//      loaded by another library) gets that instance, with the kernels it chose.
//   4. cblas_sgemm, cblas_dgemm, openblas_set_num_threads and openblas_get_config must
//      resolve, and the kernels must be AVX-512 ones when Eigen was built for AVX-512
//      (a user's OPENBLAS_CORETYPE=Haswell, say, is respected, so Eigen wins).
//      KILN_BLAS=on skips that last check. Any failure leaves Eigen in charge, and
//      gemm_backend() says why.
//   5. openblas_set_num_threads(1): that applies to the whole process, including any
//      other code that shares this OpenBLAS instance.
#pragma once

#include <string>
#include <string_view>

namespace kiln::cpu {

// One line naming the library kiln's GEMMs run in, for benchmarks and logs, e.g.
// "OpenBLAS 0.3.21 (Cooperlake kernels, 1 thread per OpenMP thread)" or
// "eigen (KILN_BLAS=off)". Loads OpenBLAS first if no GEMM has yet.
const char* gemm_backend();

namespace blas {

// CBLAS's argument values (from cblas.h), so that no OpenBLAS header is needed.
enum Order { kRowMajor = 101 };
enum Transpose { kNoTrans = 111, kTrans = 112 };

using SgemmFn = void (*)(int order, int trans_a, int trans_b, int m, int n, int k, float alpha, const float* a,
                         int lda, const float* b, int ldb, float beta, float* c, int ldc);
using DgemmFn = void (*)(int order, int trans_a, int trans_b, int m, int n, int k, double alpha, const double* a,
                         int lda, const double* b, int ldb, double beta, double* c, int ldc);

// The loaded library's GEMMs.
struct Library {
  SgemmFn sgemm;
  DgemmFn dgemm;
};

// OpenBLAS, loaded on the first call; nullptr when GEMMs stay in Eigen.
const Library* openblas();

// ---- the decisions, apart from the process's state so that tests can drive them ----

struct CpuFeatures {
  bool avx512 = false;       // F, BW, VL and DQ: what OpenBLAS's SkylakeX kernels need
  bool avx512_bf16 = false;  // Cooper Lake's addition; OpenBLAS's Cooperlake target needs it
};

// This machine's CPU (all false on non-x86 machines).
CpuFeatures host_cpu_features();

struct Plan {
  bool load = false;     // false: stay in Eigen, because of `reason`
  bool force = false;    // KILN_BLAS=on: use OpenBLAS whatever kernels it runs
  std::string coretype;  // OPENBLAS_CORETYPE to set while loading; empty: leave it alone
  std::string reason;    // why Eigen, when !load
};

// Before loading. kiln_blas and openblas_coretype are the values of KILN_BLAS and
// OPENBLAS_CORETYPE (nullptr when unset).
Plan plan_load(const char* kiln_blas, const char* openblas_coretype, CpuFeatures cpu);

// After loading: whether OpenBLAS running `corename`'s kernels (openblas_get_corename(),
// e.g. "Cooperlake", "Haswell") should take the GEMMs from an Eigen built with or
// without AVX-512. Empty when it should; else the reason it should not.
std::string reason_to_keep_eigen(std::string_view corename, bool eigen_uses_avx512);

}  // namespace blas
}  // namespace kiln::cpu
