// GEMM through Eigen's product on Maps over our buffers (see gemm.h).
//
// Everything in kiln that multiplies matrices ends in gemm() below, so moving to
// another GEMM library is a change to that one function's body: with a CBLAS it is
// cblas_sgemm/cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, ...)
// with the same arguments. (A build defining EIGEN_USE_BLAS already routes Eigen's
// products to the BLAS it links, with no change here.)
#include "kiln/ops/cpu/gemm.h"

// GCC 12 reports false "may be used uninitialized" warnings inside its own AVX-512
// intrinsics when Eigen's GEMM kernels are inlined (GCC bug 105593); silence only those.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/Core>

namespace kiln::cpu {

namespace {

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

}  // namespace

template <class T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (m == 0 || n == 0) return;
  RowMajorMatrixMap<T> c(C, m, n, Eigen::OuterStride<>(ldc));
  // Each (trans_a, trans_b) pair is its own Eigen expression type: pick A's, then B's.
  auto with_a = [&](const auto& a) {
    if (trans_b) product_into(c, alpha, a, map_operand<Eigen::ColMajor>(B, k, n, ldb), beta);
    else product_into(c, alpha, a, map_operand<Eigen::RowMajor>(B, k, n, ldb), beta);
  };
  if (trans_a) with_a(map_operand<Eigen::ColMajor>(A, m, k, lda));
  else with_a(map_operand<Eigen::RowMajor>(A, m, k, lda));
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
    // Inside this region omp_get_num_threads() > 1, so Eigen keeps each GEMM on the
    // thread that runs it: no nested teams, no oversubscription.
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < batch; ++i) one(i);
  } else {
    for (int64_t i = 0; i < batch; ++i) one(i);
  }
}

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*,
                          int64_t, float, float*, int64_t);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                           int64_t, double, double*, int64_t);
template void gemm_batched<float>(int64_t, bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                                  const int64_t*, const float*, int64_t, const int64_t*, float, float*, int64_t,
                                  const int64_t*);
template void gemm_batched<double>(int64_t, bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                                   const int64_t*, const double*, int64_t, const int64_t*, double, double*,
                                   int64_t, const int64_t*);

}  // namespace kiln::cpu
