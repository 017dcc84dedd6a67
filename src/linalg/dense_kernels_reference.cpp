// Reference backend of the dense kernels: plain Eigen. Slow but simple; it is
// the oracle the LAPACK backend is tested against, and the fallback when a
// build has no LAPACK.
#include <Eigen/Eigenvalues>
#include <Eigen/SVD>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "linalg/dense_kernels.h"
#include "linalg/dense_kernels_internal.h"

namespace compressm::linalg {
namespace reference {

MatrixXc gram_rows(const MatrixXc& a) {
  MatrixXc x = MatrixXc::Zero(a.rows(), a.rows());
  x.selfadjointView<Eigen::Lower>().rankUpdate(a);
  return x.selfadjointView<Eigen::Lower>();
}

MatrixXc gram_columns(const MatrixXc& a) {
  MatrixXc x = MatrixXc::Zero(a.cols(), a.cols());
  x.selfadjointView<Eigen::Lower>().rankUpdate(a.adjoint());
  return x.selfadjointView<Eigen::Lower>();
}

MatrixXc multiply(const MatrixXc& a, bool adjoint_a, const MatrixXc& b) {
  if (adjoint_a) return a.adjoint() * b;
  return a * b;
}

// Outer-product Cholesky with diagonal pivoting (Higham, "Accuracy and
// Stability of Numerical Algorithms", §10.3; the algorithm of LAPACK xPSTRF).
// Stops when the largest remaining diagonal entry is <= tol, the numerical
// rank; tol = N * eps * max(diag P), LAPACK's default.
MatrixXc lower_triangular_multiply(const MatrixXc& l, bool adjoint_l, const MatrixXc& b) {
  if (adjoint_l) return l.triangularView<Eigen::Lower>().adjoint() * b;
  return l.triangularView<Eigen::Lower>() * b;
}

GramianFactor pivoted_cholesky(const MatrixXc& p) {
  const Eigen::Index n = p.rows();
  MatrixXc a = p;
  std::vector<Eigen::Index> perm(n);
  for (Eigen::Index i = 0; i < n; ++i) perm[i] = i;
  const double max_diag = n > 0 ? a.diagonal().real().maxCoeff() : 0.0;
  const double tol = static_cast<double>(n) * std::numeric_limits<double>::epsilon() * max_diag;
  Eigen::Index rank = 0;
  for (Eigen::Index k = 0; k < n; ++k) {
    Eigen::Index j;
    const double pivot = a.diagonal().real().tail(n - k).maxCoeff(&j);
    j += k;
    if (!(pivot > tol)) break;
    if (j != k) {  // symmetric swap of rows/columns k and j
      a.row(k).swap(a.row(j));
      a.col(k).swap(a.col(j));
      std::swap(perm[k], perm[j]);
    }
    const double d = std::sqrt(pivot);
    a(k, k) = d;
    a.col(k).tail(n - k - 1) /= d;
    const VectorXc v = a.col(k).tail(n - k - 1);
    a.bottomRightCorner(n - k - 1, n - k - 1).noalias() -= v * v.adjoint();
    ++rank;
  }
  GramianFactor factor;
  factor.lower_triangular = false;
  factor.L = MatrixXc::Zero(n, rank);
  for (Eigen::Index c = 0; c < rank; ++c)
    for (Eigen::Index r = c; r < n; ++r) factor.L(perm[r], c) = a(r, c);
  return factor;
}

GramianFactor psd_factor(const MatrixXc& p) {
  Eigen::LLT<MatrixXc> llt(p);
  if (llt.info() == Eigen::Success) {
    MatrixXc l = llt.matrixL();
    if (l.diagonal().real().minCoeff() > 0.0 && l.allFinite()) return {std::move(l), true};
  }
  return equilibrated_pivoted_factor(p, pivoted_cholesky);
}

PartialSvd partial_svd(const MatrixXc& m, const VectorCountRule& vectors) {
  if (!vectors) {
    const Eigen::BDCSVD<MatrixXc> values(m);
    return {values.singularValues(), MatrixXc::Zero(m.rows(), 0), MatrixXc::Zero(m.cols(), 0)};
  }
  Eigen::BDCSVD<MatrixXc> svd(m, Eigen::ComputeThinU | Eigen::ComputeThinV);
  PartialSvd out;
  out.singular_values = svd.singularValues();
  const Eigen::Index k = vectors(out.singular_values);
  if (k < 0 || k > out.singular_values.size())
    throw std::invalid_argument("partial_svd: vector count out of range");
  out.U = svd.matrixU().leftCols(k);
  out.V = svd.matrixV().leftCols(k);
  return out;
}

EigenDecomposition eigen_decomposition(const MatrixXc& a) {
  Eigen::ComplexEigenSolver<MatrixXc> solver(a, true);
  EigenDecomposition out{solver.eigenvalues(), solver.eigenvectors()};
  out.vectors.colwise().normalize();
  return out;
}

}  // namespace reference

SchurForm complex_schur(const MatrixXc& a) {
  Eigen::ComplexSchur<MatrixXc> schur(a, true);
  return {schur.matrixT(), schur.matrixU()};
}

}  // namespace compressm::linalg
