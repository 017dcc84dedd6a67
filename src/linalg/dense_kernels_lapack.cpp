// LAPACK backend of the dense kernels (OpenBLAS's BLAS and LAPACK), and the
// dispatch between backends. Compiled without LAPACK, every call falls back to
// the reference backend.
#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "linalg/dense_kernels.h"
#include "linalg/dense_kernels_internal.h"

#ifndef COMPRESSM_WITH_LAPACK
#define COMPRESSM_WITH_LAPACK 0
#endif

#if COMPRESSM_WITH_LAPACK
// Fortran interfaces; hidden CHARACTER lengths come last.
extern "C" {
using fcomplex = std::complex<double>;
void zherk_(const char* uplo, const char* trans, const int* n, const int* k, const double* alpha,
            const fcomplex* a, const int* lda, const double* beta, fcomplex* c, const int* ldc,
            size_t, size_t);
void zgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k,
            const fcomplex* alpha, const fcomplex* a, const int* lda, const fcomplex* b,
            const int* ldb, const fcomplex* beta, fcomplex* c, const int* ldc, size_t, size_t);
void ztrmm_(const char* side, const char* uplo, const char* transa, const char* diag,
            const int* m, const int* n, const fcomplex* alpha, const fcomplex* a, const int* lda,
            fcomplex* b, const int* ldb, size_t, size_t, size_t, size_t);
void zpotrf_(const char* uplo, const int* n, fcomplex* a, const int* lda, int* info, size_t);
void zpstrf_(const char* uplo, const int* n, fcomplex* a, const int* lda, int* piv, int* rank,
             const double* tol, double* work, int* info, size_t);
void zgebrd_(const int* m, const int* n, fcomplex* a, const int* lda, double* d, double* e,
             fcomplex* tauq, fcomplex* taup, fcomplex* work, const int* lwork, int* info);
void dbdsdc_(const char* uplo, const char* compq, const int* n, double* d, double* e, double* u,
             const int* ldu, double* vt, const int* ldvt, double* q, int* iq, double* work,
             int* iwork, int* info, size_t, size_t);
void zunmbr_(const char* vect, const char* side, const char* trans, const int* m, const int* n,
             const int* k, const fcomplex* a, const int* lda, const fcomplex* tau, fcomplex* c,
             const int* ldc, fcomplex* work, const int* lwork, int* info, size_t, size_t, size_t);
void zgeev_(const char* jobvl, const char* jobvr, const int* n, fcomplex* a, const int* lda,
            fcomplex* w, fcomplex* vl, const int* ldvl, fcomplex* vr, const int* ldvr,
            fcomplex* work, const int* lwork, double* rwork, int* info, size_t, size_t);
}
#endif

namespace compressm::linalg {

#if COMPRESSM_WITH_LAPACK
namespace lapack {
namespace {

int to_int(Eigen::Index n) { return static_cast<int>(n); }

void check_info(int info, const char* routine) {
  if (info != 0)
    throw std::runtime_error(std::string(routine) + " failed with info = " + std::to_string(info));
}

// OpenBLAS 0.3.21's complex gemv kernel ('N') for its Haswell and SkylakeX
// targets reads past the end of the matrix it is given (measured with the
// matrix flush against a protected page: zgemv 'N' faulted for 41 of 150
// random shapes; a zgebrd of an N x N matrix for every N tried, 17 to 384,
// until it had 16 to 512 spare elements, up to about one column; the
// Prescott kernels do not over-read; docs/performance.md). Where the
// page after an array is unmapped — the top of a worker thread's heap, a
// block just below a thread stack's guard page — that is a segfault: zgebrd
// in a worker thread crashed 5 runs in 5. So every array this file hands to
// a LAPACK routine lives in a buffer with spare room after it: kSpareColumns
// columns of the routine's leading dimension and kSpareElements more.
constexpr Eigen::Index kSpareColumns = 4;
constexpr Eigen::Index kSpareElements = 64;

template <class Scalar>
class LapackBuffer {
 public:
  // `count` elements used; `ld` the largest leading dimension they are read with.
  LapackBuffer(Eigen::Index count, Eigen::Index ld)
      : storage_(static_cast<size_t>(count + kSpareColumns * std::max<Eigen::Index>(ld, 1) + kSpareElements),
                 Scalar(0)) {}
  Scalar* data() { return storage_.data(); }

 private:
  std::vector<Scalar> storage_;
};

// A {rows, cols} column-major matrix (leading dimension rows) in a LapackBuffer.
template <class Matrix>
class LapackMatrix {
  using Scalar = typename Matrix::Scalar;

 public:
  LapackMatrix(Eigen::Index rows, Eigen::Index cols)
      : buffer_(rows * cols, rows), map_(buffer_.data(), rows, cols) {}
  explicit LapackMatrix(const Matrix& m) : LapackMatrix(m.rows(), m.cols()) { map_ = m; }
  LapackMatrix(const LapackMatrix&) = delete;  // map_ points into buffer_
  LapackMatrix& operator=(const LapackMatrix&) = delete;
  Scalar* data() { return buffer_.data(); }
  Eigen::Map<Matrix>& matrix() { return map_; }

 private:
  LapackBuffer<Scalar> buffer_;
  Eigen::Map<Matrix> map_;
};
using LapackMatrixC = LapackMatrix<MatrixXc>;
using LapackMatrixD = LapackMatrix<MatrixXd>;

// zherk fills one triangle; mirror it so callers get a full Hermitian matrix.
MatrixXc herk(const MatrixXc& a, char trans) {
  const int n = to_int(trans == 'N' ? a.rows() : a.cols());
  const int k = to_int(trans == 'N' ? a.cols() : a.rows());
  MatrixXc x = MatrixXc::Zero(n, n);
  if (n == 0 || k == 0) return x;
  const double one = 1.0, zero = 0.0;
  const int lda = std::max(1, to_int(a.rows()));
  zherk_("L", &trans, &n, &k, &one, a.data(), &lda, &zero, x.data(), &n, 1, 1);
  x.triangularView<Eigen::StrictlyUpper>() = x.adjoint();
  return x;
}

void require_square_factor(const MatrixXc& l, int m) {
  if (l.rows() != m || l.cols() != m)
    throw std::invalid_argument("lower_triangular_multiply: factor is not square of matching size");
}

}  // namespace

MatrixXc gram_rows(const MatrixXc& a) { return herk(a, 'N'); }
MatrixXc gram_columns(const MatrixXc& a) { return herk(a, 'C'); }

MatrixXc multiply(const MatrixXc& a, bool adjoint_a, const MatrixXc& b) {
  const int m = to_int(adjoint_a ? a.cols() : a.rows());
  const int k = to_int(adjoint_a ? a.rows() : a.cols());
  const int n = to_int(b.cols());
  MatrixXc c = MatrixXc::Zero(m, n);
  if (m == 0 || n == 0 || k == 0) return c;
  const fcomplex one(1.0), zero(0.0);
  const int lda = std::max(1, to_int(a.rows())), ldb = std::max(1, to_int(b.rows()));
  zgemm_(adjoint_a ? "C" : "N", "N", &m, &n, &k, &one, a.data(), &lda, b.data(), &ldb, &zero,
         c.data(), &m, 1, 1);
  return c;
}

MatrixXc lower_triangular_multiply(const MatrixXc& l, bool adjoint_l, const MatrixXc& b) {
  MatrixXc c = b;
  const int m = to_int(b.rows()), n = to_int(b.cols());
  if (m == 0 || n == 0) return c;
  const fcomplex one(1.0);
  require_square_factor(l, m);
  ztrmm_("L", "L", adjoint_l ? "C" : "N", "N", &m, &n, &one, l.data(), &m, c.data(), &m, 1, 1, 1,
         1);
  return c;
}

GramianFactor psd_factor(const MatrixXc& p) {
  const int n = to_int(p.rows());
  int info = 0;
  LapackMatrixC l(p);
  if (n > 0) zpotrf_("L", &n, l.data(), &n, &info, 1);
  if (info == 0) {
    MatrixXc factor = l.matrix();
    factor.triangularView<Eigen::StrictlyUpper>().setZero();
    return {std::move(factor), true};
  }
  // Semidefinite: pivoted Cholesky of the equilibrated matrix stops at the
  // numerical rank (tol < 0 asks for LAPACK's default N * eps * max(diag)).
  return equilibrated_pivoted_factor(p, [&](const MatrixXc& scaled) {
    l.matrix() = scaled;
    std::vector<int> piv(n);
    LapackBuffer<double> work(2 * static_cast<Eigen::Index>(n), n);
    int rank = 0;
    const double tol = -1.0;
    zpstrf_("L", &n, l.data(), &n, piv.data(), &rank, &tol, work.data(), &info, 1);
    if (info < 0) check_info(info, "zpstrf");
    GramianFactor factor;
    factor.lower_triangular = false;
    factor.L = MatrixXc::Zero(n, rank);
    for (int c = 0; c < rank; ++c)
      for (int r = c; r < n; ++r) factor.L(piv[r] - 1, c) = l.matrix()(r, c);
    return factor;
  });
}

// Bidiagonalisation (zgebrd, the O(n^3) part), then the real bidiagonal's
// SVD by divide and conquer (dbdsdc), then only the `vectors` leading singular
// vectors are taken back through the Householder reflectors (zunmbr):
// M = Q B P^H, B = Ub S Vb^T  =>  U = Q [Ub; 0],  V = P Vb.
// One dbdsdc pass gives the values and all of the bidiagonal's vectors (8 ms
// for N = 384, measured faster than dbdsvdx for k = N/4, and cheaper than a
// values-only pass followed by a vectors pass); without a rule, values only.
PartialSvd partial_svd(const MatrixXc& m_in, const VectorCountRule& vectors) {
  if (m_in.rows() < m_in.cols()) {  // work on M^H so that rows >= cols
    PartialSvd t = partial_svd(m_in.adjoint(), vectors);
    std::swap(t.U, t.V);
    return t;
  }
  const int m = to_int(m_in.rows()), n = to_int(m_in.cols());
  PartialSvd out;
  auto vector_count = [&]() -> Eigen::Index {
    const Eigen::Index k = vectors ? vectors(out.singular_values) : 0;
    if (k < 0 || k > n) throw std::invalid_argument("partial_svd: vector count out of range");
    return k;
  };
  auto no_vectors = [&] {
    out.U = MatrixXc::Zero(m, 0);
    out.V = MatrixXc::Zero(n, 0);
    return out;
  };
  if (n == 0) {
    out.singular_values = VectorXd::Zero(0);
    vector_count();
    return no_vectors();
  }
  LapackMatrixC a(m_in);
  LapackBuffer<double> d(n, 1), e(n, 1);
  LapackBuffer<fcomplex> tauq(n, 1), taup(n, 1);
  int info = 0, lwork = -1;
  fcomplex query;
  zgebrd_(&m, &n, a.data(), &m, d.data(), e.data(), tauq.data(), taup.data(), &query, &lwork, &info);
  lwork = std::max(1, static_cast<int>(query.real()));
  LapackBuffer<fcomplex> work(lwork, m);
  zgebrd_(&m, &n, a.data(), &m, d.data(), e.data(), tauq.data(), taup.data(), work.data(), &lwork, &info);
  check_info(info, "zgebrd");

  std::vector<int> iwork(8 * static_cast<size_t>(n));
  double unused = 0.0;
  int iunused = 0, one = 1;
  if (!vectors) {
    LapackBuffer<double> rwork(4 * static_cast<Eigen::Index>(n), n);
    dbdsdc_("U", "N", &n, d.data(), e.data(), &unused, &one, &unused, &one, &unused, &iunused,
            rwork.data(), iwork.data(), &info, 1, 1);
    check_info(info, "dbdsdc");
    out.singular_values = Eigen::Map<VectorXd>(d.data(), n);  // descending
    return no_vectors();
  }
  LapackMatrixD ub(n, n), vbt(n, n);
  LapackBuffer<double> rwork(3 * static_cast<Eigen::Index>(n) * n + 4 * static_cast<Eigen::Index>(n), n);
  dbdsdc_("U", "I", &n, d.data(), e.data(), ub.data(), &n, vbt.data(), &n, &unused, &iunused,
          rwork.data(), iwork.data(), &info, 1, 1);
  check_info(info, "dbdsdc");
  out.singular_values = Eigen::Map<VectorXd>(d.data(), n);  // descending
  const int k = to_int(vector_count());
  if (k == 0) return no_vectors();
  LapackMatrixC u(m, k), v(n, k);
  u.matrix().topRows(n) = ub.matrix().leftCols(k).cast<Complex>();
  v.matrix() = vbt.matrix().topRows(k).transpose().cast<Complex>();
  lwork = -1;
  zunmbr_("Q", "L", "N", &m, &k, &n, a.data(), &m, tauq.data(), u.data(), &m, &query, &lwork, &info,
          1, 1, 1);
  const int lwork_q = static_cast<int>(query.real());
  zunmbr_("P", "L", "N", &n, &k, &m, a.data(), &m, taup.data(), v.data(), &n, &query, &lwork, &info,
          1, 1, 1);
  lwork = std::max({1, lwork_q, static_cast<int>(query.real())});
  LapackBuffer<fcomplex> reflector_work(lwork, m);
  zunmbr_("Q", "L", "N", &m, &k, &n, a.data(), &m, tauq.data(), u.data(), &m, reflector_work.data(),
          &lwork, &info, 1, 1, 1);
  check_info(info, "zunmbr(Q)");
  zunmbr_("P", "L", "N", &n, &k, &m, a.data(), &m, taup.data(), v.data(), &n, reflector_work.data(),
          &lwork, &info, 1, 1, 1);
  check_info(info, "zunmbr(P)");
  out.U = u.matrix();
  out.V = v.matrix();
  return out;
}

EigenDecomposition eigen_decomposition(const MatrixXc& a_in) {
  const int n = to_int(a_in.rows());
  EigenDecomposition out{VectorXc(n), MatrixXc(n, n)};
  if (n == 0) return out;
  LapackMatrixC a(a_in), vectors(n, n);
  LapackBuffer<fcomplex> values(n, 1);
  int info = 0, lwork = -1, one = 1;
  fcomplex query, vl_unused;
  LapackBuffer<double> rwork(2 * static_cast<Eigen::Index>(n), n);
  zgeev_("N", "V", &n, a.data(), &n, values.data(), &vl_unused, &one, vectors.data(), &n, &query, &lwork,
         rwork.data(), &info, 1, 1);
  lwork = std::max(1, static_cast<int>(query.real()));
  LapackBuffer<fcomplex> work(lwork, n);
  zgeev_("N", "V", &n, a.data(), &n, values.data(), &vl_unused, &one, vectors.data(), &n, work.data(), &lwork,
         rwork.data(), &info, 1, 1);
  check_info(info, "zgeev");
  out.values = Eigen::Map<VectorXc>(values.data(), n);
  out.vectors = vectors.matrix();
  out.vectors.colwise().normalize();
  return out;
}

}  // namespace lapack
#endif

// Dispatch. Without LAPACK in the build, Backend::Lapack means the reference.
#if COMPRESSM_WITH_LAPACK
#define COMPRESSM_DISPATCH(call) \
  return backend == Backend::Lapack ? lapack::call : reference::call
#else
#define COMPRESSM_DISPATCH(call) \
  (void)backend;                 \
  return reference::call
#endif

MatrixXc gram_rows(const MatrixXc& a, Backend backend) { COMPRESSM_DISPATCH(gram_rows(a)); }
MatrixXc gram_columns(const MatrixXc& a, Backend backend) { COMPRESSM_DISPATCH(gram_columns(a)); }
MatrixXc multiply(const MatrixXc& a, bool adjoint_a, const MatrixXc& b, Backend backend) {
  COMPRESSM_DISPATCH(multiply(a, adjoint_a, b));
}
MatrixXc lower_triangular_multiply(const MatrixXc& l, bool adjoint_l, const MatrixXc& b,
                                   Backend backend) {
  COMPRESSM_DISPATCH(lower_triangular_multiply(l, adjoint_l, b));
}
GramianFactor psd_factor(const MatrixXc& p, Backend backend) { COMPRESSM_DISPATCH(psd_factor(p)); }
PartialSvd partial_svd(const MatrixXc& m, const VectorCountRule& vectors, Backend backend) {
  COMPRESSM_DISPATCH(partial_svd(m, vectors));
}
PartialSvd partial_svd(const MatrixXc& m, Eigen::Index vectors, Backend backend) {
  if (vectors < 0 || vectors > std::min(m.rows(), m.cols()))
    throw std::invalid_argument("partial_svd: vector count out of range");
  if (vectors == 0) return partial_svd(m, VectorCountRule{}, backend);
  return partial_svd(m, [vectors](const VectorXd&) { return vectors; }, backend);
}
EigenDecomposition eigen_decomposition(const MatrixXc& a, Backend backend) {
  COMPRESSM_DISPATCH(eigen_decomposition(a));
}
#undef COMPRESSM_DISPATCH

}  // namespace compressm::linalg
