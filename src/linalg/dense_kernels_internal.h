// Backend entry points behind dense_kernels.h. Internal to src/linalg.
#pragma once

#include <cmath>

#include "linalg/dense_kernels.h"

namespace compressm::linalg {

// C = op(A) * B with op(A) = A or A^H.
MatrixXc multiply(const MatrixXc& a, bool adjoint_a, const MatrixXc& b,
                  Backend backend = default_backend());

// C = op(L) * B for a square lower-triangular L (half the work of multiply).
MatrixXc lower_triangular_multiply(const MatrixXc& l, bool adjoint_l, const MatrixXc& b,
                                   Backend backend = default_backend());

// op(F) * B for a Gramian factor, with half the work when it is triangular.
inline MatrixXc factor_multiply(const GramianFactor& f, bool adjoint_f, const MatrixXc& b,
                                Backend backend = default_backend()) {
  return f.lower_triangular ? lower_triangular_multiply(f.L, adjoint_f, b, backend)
                            : multiply(f.L, adjoint_f, b, backend);
}

// The semidefinite fallback of psd_factor: `pivoted` (Cholesky with
// diagonal pivoting, stopping at N * eps * max(diag)) run on the equilibrated
// D P D, D = diag(P)^{-1/2}, and then L = D^{-1} L~. On P itself that cutoff
// depends on how each state is scaled, which the HSVs do not (B row times s,
// C column over s): directions tiny in P but weighted heavily by Q were
// dropped (HSVs 12% off, a wrong rank). With a unit diagonal the cutoff is
// relative to each state's own size (van der Sluis). A state whose diagonal
// entry is zero has a zero row and column (P is semidefinite): its row of L
// is zero.
template <class Pivoted>
GramianFactor equilibrated_pivoted_factor(const MatrixXc& p, Pivoted pivoted) {
  const Eigen::Index n = p.rows();
  VectorXc scale(n);  // D's diagonal
  for (Eigen::Index i = 0; i < n; ++i) {
    const double diagonal = p(i, i).real();
    scale[i] = diagonal > 0.0 ? 1.0 / std::sqrt(diagonal) : 0.0;
  }
  GramianFactor factor = pivoted(MatrixXc(scale.asDiagonal() * p * scale.asDiagonal()));
  for (Eigen::Index i = 0; i < n; ++i)
    factor.L.row(i) *= scale[i] != 0.0 ? std::sqrt(p(i, i).real()) : 0.0;
  return factor;
}

#define COMPRESSM_DENSE_KERNELS(ns)                                           \
  namespace ns {                                                              \
  MatrixXc gram_rows(const MatrixXc& a);                                      \
  MatrixXc gram_columns(const MatrixXc& a);                                   \
  MatrixXc multiply(const MatrixXc& a, bool adjoint_a, const MatrixXc& b);   \
  MatrixXc lower_triangular_multiply(const MatrixXc& l, bool adjoint_l, const MatrixXc& b); \
  GramianFactor psd_factor(const MatrixXc& p);                                \
  PartialSvd partial_svd(const MatrixXc& m, const VectorCountRule& vectors); \
  EigenDecomposition eigen_decomposition(const MatrixXc& a);                  \
  }

COMPRESSM_DENSE_KERNELS(reference)
COMPRESSM_DENSE_KERNELS(lapack)
#undef COMPRESSM_DENSE_KERNELS

}  // namespace compressm::linalg
