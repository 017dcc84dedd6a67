// Backend entry points behind dense_kernels.h. Internal to src/linalg.
#pragma once

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
