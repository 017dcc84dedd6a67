// Hankel singular values by the square-root method.
#pragma once

#include "linalg/dense_kernels.h"
#include "linalg/types.h"

namespace compressm::linalg {

// The square-root balancing data shared by HSV computation and truncation:
//   P = Lc Lc^H, Q = Lo Lo^H,  Lo^H Lc = U S V^H,  HSVs = diag(S).
// Semidefinite Gramians are handled by rank-revealing factors (dense_kernels.h);
// HSVs of states that are uncontrollable or unobservable are exactly 0.
struct SquareRootBalancing {
  VectorXd hsv;  // {N}, descending, >= 0, never NaN
  GramianFactor Lc;  // {N, rank_c}
  GramianFactor Lo;  // {N, rank_o}
  MatrixXc U;    // {rank_o, vectors}: leading left singular vectors
  MatrixXc V;    // {rank_c, vectors}: leading right singular vectors
  struct Timing {
    double factor_ms = 0.0;   // P = Lc Lc^H, Q = Lo Lo^H
    double product_ms = 0.0;  // Lo^H Lc
    double svd_ms = 0.0;      // HSVs and leading vectors
  } timing;
};

// Computes the HSVs and the leading singular vectors needed to truncate;
// `vectors` sees the HSVs (length N, descending) and returns how many.
// It is clamped to the number of HSVs that can be nonzero, min(rank_o, rank_c).
// An empty `vectors` computes the HSVs only.
SquareRootBalancing square_root_balancing(const MatrixXc& p, const MatrixXc& q,
                                          const VectorCountRule& vectors,
                                          Backend backend = default_backend());

// The same from factors P = Lc Lc^H, Q = Lo Lo^H computed some other way.
SquareRootBalancing square_root_balancing(GramianFactor lc, GramianFactor lo,
                                          const VectorCountRule& vectors,
                                          Backend backend = default_backend());

// Factors of the Gramians: closed form + Cholesky for diagonal systems,
// Hammarling's direct factors for dense ones.
std::pair<GramianFactor, GramianFactor> gramian_factors(const DiagonalSystem& system,
                                                        Backend backend = default_backend());
std::pair<GramianFactor, GramianFactor> gramian_factors(const DenseSystem& system,
                                                        Backend backend = default_backend());

// HSVs in descending order, length N.
VectorXd hankel_singular_values(const DiagonalSystem& system,
                                Backend backend = default_backend());
VectorXd hankel_singular_values(const DenseSystem& system,
                                Backend backend = default_backend());

}  // namespace compressm::linalg
