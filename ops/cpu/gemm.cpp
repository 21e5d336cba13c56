// GEMM in OpenBLAS, loaded at run time, or in Eigen through Maps over our buffers
// (see gemm.h and blas_loader.h).
//
// Everything in kiln that multiplies matrices ends in gemm_with() below. Threading is
// kiln's with either library. OpenBLAS runs single-threaded (blas_loader sees to it):
// a large GEMM outside a parallel region is cut into one panel of C per OpenMP
// thread, each panel one OpenBLAS call, and a GEMM inside a parallel region (conv's
// images, attention's blocks, gemm_batched's batch) is one call on its thread.
// OpenBLAS's own thread pool is never used, for two reasons measured on 2 AVX-512
// cores (OpenBLAS 0.3.21, Cooperlake kernels):
//  - its threads and OpenMP's take turns badly: after each of kiln's parallel loops
//    the OpenMP threads spin a while waiting for more work (OMP_WAIT_POLICY's
//    default) on the very cores the pool then needs (bench/gemm.cpp's softmax part);
//  - panels are as fast from 160^3 up, and faster below, where the pool often keeps
//    to one thread: at 128^3 12 us against 18 us, at 96^3 4.9 us against 7.2 us.
// One single-threaded OpenBLAS call per OpenMP thread also beats Eigen there: batches
// of 32^3 to 256x256x64 GEMMs, one per thread, ran 1.2-2.8x faster.
#include "kiln/ops/cpu/gemm.h"

#include <omp.h>

#include <algorithm>
#include <limits>

#include "kiln/core/error.h"
#include "kiln/ops/cpu/blas_loader.h"

// GCC 12 reports false "may be used uninitialized" warnings inside its own AVX-512
// intrinsics when Eigen's GEMM kernels are inlined (GCC bug 105593); silence only those.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/Core>

namespace kiln::cpu {

namespace {

// One GEMM's arguments, as in gemm.h: C = alpha * op(A) * op(B) + beta * C.
template <class T>
struct Product {
  bool trans_a, trans_b;
  int64_t m, n, k;
  T alpha;
  const T* a;
  int64_t lda;
  const T* b;
  int64_t ldb;
  T beta;
  T* c;
  int64_t ldc;

  double work() const { return static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k); }

  // Rows [begin, end) of C: the same rows of op(A), all of op(B).
  Product rows(int64_t begin, int64_t end) const {
    Product p = *this;
    p.m = end - begin;
    p.a = trans_a ? a + begin : a + begin * lda;
    p.c = c + begin * ldc;
    return p;
  }
  // Columns [begin, end) of C: all of op(A), the same columns of op(B).
  Product cols(int64_t begin, int64_t end) const {
    Product p = *this;
    p.n = end - begin;
    p.b = trans_b ? b + begin * ldb : b + begin;
    p.c = c + begin;
    return p;
  }
};

// ---- Eigen ------------------------------------------------------------------------------

// Dynamic-size matrices over our buffers: no alignment promised, rows (or columns)
// `OuterStride` elements apart.
template <class T, int Order>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Order>;
template <class T, int Order>
using ConstMatrixMap = Eigen::Map<const Matrix<T, Order>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using RowMajorMatrixMap = Eigen::Map<Matrix<T, Eigen::RowMajor>, Eigen::Unaligned, Eigen::OuterStride<>>;

// op(X) as a (rows x cols) Eigen matrix over X's buffer. X is stored row-major with
// leading dim ld; its transpose is the same memory read column-major, which is why a
// transposed operand costs nothing.
template <int Order, class T>
ConstMatrixMap<T, Order> map_operand(const T* x, int64_t rows, int64_t cols, int64_t ld) {
  return ConstMatrixMap<T, Order>(x, rows, cols, Eigen::OuterStride<>(ld));
}

// c = alpha * a * b + beta * c. Written so Eigen folds alpha into its GEMM kernel and
// never evaluates a temporary for the product (noalias: c does not overlap a or b).
template <class T, class MapA, class MapB>
void product_into(RowMajorMatrixMap<T>& c, T alpha, const MapA& a, const MapB& b, T beta) {
  if (beta == T(0)) {
    c.noalias() = (alpha * a) * b;
  } else {
    if (beta != T(1)) c *= beta;
    c.noalias() += (alpha * a) * b;
  }
}

// Eigen parallelises a large product over the OpenMP threads by itself, and keeps it on
// the calling thread inside a parallel region.
template <class T>
void eigen_gemm(const Product<T>& p) {
  RowMajorMatrixMap<T> c(p.c, p.m, p.n, Eigen::OuterStride<>(p.ldc));
  // Each (trans_a, trans_b) pair is its own Eigen expression type: pick A's, then B's.
  auto with_a = [&](const auto& a) {
    if (p.trans_b) product_into(c, p.alpha, a, map_operand<Eigen::ColMajor>(p.b, p.k, p.n, p.ldb), p.beta);
    else product_into(c, p.alpha, a, map_operand<Eigen::RowMajor>(p.b, p.k, p.n, p.ldb), p.beta);
  };
  if (p.trans_a) with_a(map_operand<Eigen::ColMajor>(p.a, p.m, p.k, p.lda));
  else with_a(map_operand<Eigen::RowMajor>(p.a, p.m, p.k, p.lda));
}

// ---- OpenBLAS ---------------------------------------------------------------------------

// CBLAS takes int sizes and insists on leading dims of at least the stored row length
// (it reports anything else as an error and computes nothing); Eigen takes any.
template <class T>
bool blas_accepts(const Product<T>& p) {
  constexpr int64_t kMaxInt = std::numeric_limits<int>::max();
  const int64_t a_row = p.trans_a ? p.m : p.k, b_row = p.trans_b ? p.k : p.n;
  for (int64_t v : {p.m, p.n, p.k, p.lda, p.ldb, p.ldc})
    if (v > kMaxInt) return false;
  return p.lda >= std::max<int64_t>(a_row, 1) && p.ldb >= std::max<int64_t>(b_row, 1) &&
         p.ldc >= std::max<int64_t>(p.n, 1);
}

int blas_trans(bool t) { return t ? blas::kTrans : blas::kNoTrans; }

void blas_call(const blas::Library& lib, const Product<float>& p) {
  lib.sgemm(blas::kRowMajor, blas_trans(p.trans_a), blas_trans(p.trans_b), static_cast<int>(p.m),
            static_cast<int>(p.n), static_cast<int>(p.k), p.alpha, p.a, static_cast<int>(p.lda), p.b,
            static_cast<int>(p.ldb), p.beta, p.c, static_cast<int>(p.ldc));
}

void blas_call(const blas::Library& lib, const Product<double>& p) {
  lib.dgemm(blas::kRowMajor, blas_trans(p.trans_a), blas_trans(p.trans_b), static_cast<int>(p.m),
            static_cast<int>(p.n), static_cast<int>(p.k), p.alpha, p.a, static_cast<int>(p.lda), p.b,
            static_cast<int>(p.ldb), p.beta, p.c, static_cast<int>(p.ldc));
}

// Below this many multiply-adds a GEMM stays on one thread: waking a second thread
// costs about what it saves. On 2 threads, panels against one call: 48^3 1.1 us vs
// 1.0 us, 64^3 even (1.6-2.8 us), 96^3 4.9-6.3 us vs 7.2-9.7 us.
constexpr double kMinSplitWork = 64.0 * 64.0 * 64.0;
// Panels start on multiples of this many rows (columns), so that each thread's
// OpenBLAS call gets whole register tiles of C.
constexpr int64_t kPanelAlign = 16;

// Where panel `i` of `count` begins when `extent` rows (or columns) are shared out:
// the multiple of kPanelAlign nearest an even split (panel `count` begins at the end).
// Panels differ by at most kPanelAlign; on a tiny extent some may be empty.
int64_t panel_start(int i, int count, int64_t extent) {
  if (i >= count) return extent;
  const int64_t even = extent * i / count;
  return std::min(extent, (even + kPanelAlign / 2) / kPanelAlign * kPanelAlign);
}

// One OpenBLAS call, or one per OpenMP thread on panels of C. C is cut along its
// longer side, so that every panel stays wide enough for OpenBLAS's blocking (and
// each thread re-reads only the shorter operand in full).
template <class T>
void openblas_gemm(const blas::Library& lib, const Product<T>& p) {
  const bool split = !omp_in_parallel() && omp_get_max_threads() > 1 && p.work() >= kMinSplitWork;
  if (!split) {
    blas_call(lib, p);
    return;
  }
  const bool by_rows = p.m >= p.n;
#pragma omp parallel
  {
    const int i = omp_get_thread_num(), count = omp_get_num_threads();
    const int64_t extent = by_rows ? p.m : p.n;
    const int64_t begin = panel_start(i, count, extent), end = panel_start(i + 1, count, extent);
    if (begin < end) blas_call(lib, by_rows ? p.rows(begin, end) : p.cols(begin, end));
  }
}

// Below this many multiply-adds gemm() leaves a product to Eigen, whose inlined
// product has no call to make: at 4^3 Eigen took 40-50 ns against OpenBLAS's 40-100,
// at 8^3 they were even, at 12^3 OpenBLAS took 60-140 ns against Eigen's 180-250.
constexpr double kMinBlasWork = 8.0 * 8.0 * 8.0;

}  // namespace

template <class T>
void gemm_with(GemmLibrary library, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha,
               const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (m == 0 || n == 0) return;
  const Product<T> p{trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc};
  const blas::Library* openblas = library == GemmLibrary::eigen ? nullptr : blas::openblas();
  KILN_CHECK(openblas || library != GemmLibrary::openblas, "gemm: OpenBLAS was asked for but is not loaded: ",
             gemm_backend());
  const bool wanted = library == GemmLibrary::openblas || (k > 0 && p.work() >= kMinBlasWork);
  if (openblas && wanted && blas_accepts(p)) openblas_gemm(*openblas, p);
  else eigen_gemm(p);
}

template <class T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  gemm_with(GemmLibrary::automatic, trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

namespace {

// A batch of GEMMs smaller than this (multiply-adds each) runs one GEMM per thread.
// Eigen splits one GEMM across threads that spin-wait on each other's packed panels,
// which only pays off for large products: on 2 threads (AVX-512), batches of 64^3 to
// 256x256x64 GEMMs ran 1.5-2x faster one per thread, and around 190^3 the two ways
// were even. Above it GEMMs run in turn, each on all threads, which also keeps the
// load balanced when the batch does not divide evenly among the threads.
constexpr double kSmallGemmWork = 160.0 * 160.0 * 160.0;
// Below this much total work the batch stays on one thread (Eigen's own threshold
// for giving a thread part of a GEMM).
constexpr double kMinParallelWork = 50000.0;

}  // namespace

template <class T>
void gemm_batched(int64_t batch, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha,
                  const T* A, int64_t lda, const int64_t* a_offsets, const T* B, int64_t ldb,
                  const int64_t* b_offsets, T beta, T* C, int64_t ldc, const int64_t* c_offsets) {
  auto one = [&](int64_t i) {
    gemm(trans_a, trans_b, m, n, k, alpha, A + a_offsets[i], lda, B + b_offsets[i], ldb, beta, C + c_offsets[i],
         ldc);
  };
  const double work = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  const bool across_batch = batch > 1 && work < kSmallGemmWork && work * static_cast<double>(batch) >= kMinParallelWork;
  if (across_batch) {
    // Inside this region each GEMM stays on the thread that runs it (omp_in_parallel()
    // for OpenBLAS, omp_get_num_threads() > 1 for Eigen): no nested teams.
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < batch; ++i) one(i);
  } else {
    for (int64_t i = 0; i < batch; ++i) one(i);
  }
}

#define KILN_INSTANTIATE_GEMM(T)                                                                                 \
  template void gemm_with<T>(GemmLibrary, bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t, const T*, \
                             int64_t, T, T*, int64_t);                                                           \
  template void gemm<T>(bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t, const T*, int64_t, T, T*,   \
                        int64_t);                                                                                \
  template void gemm_batched<T>(int64_t, bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t,            \
                                const int64_t*, const T*, int64_t, const int64_t*, T, T*, int64_t, const int64_t*);
KILN_INSTANTIATE_GEMM(float)
KILN_INSTANTIATE_GEMM(double)
#undef KILN_INSTANTIATE_GEMM

}  // namespace kiln::cpu
