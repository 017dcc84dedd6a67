// Controllability and observability Gramians of discrete-time systems.
#pragma once

#include <utility>

#include "linalg/types.h"

namespace compressm::linalg {

// Closed forms for a diagonal system (docs/design.md §2):
//   P_ij = (B B^H)_ij / (1 - lambda_i conj(lambda_j))
//   Q_ij = (C^H C)_ij / (1 - conj(lambda_i) lambda_j)
// Precondition: every |lambda_i| < 1 (checked; throws std::invalid_argument).
MatrixXc controllability_gramian(const DiagonalSystem& system);
MatrixXc observability_gramian(const DiagonalSystem& system);

// Solves the discrete Lyapunov (Stein) equation X = A X A^H + F for a
// Schur-stable A by the Bartels–Stewart approach: A = Z T Z^H (complex Schur),
// then T Y T^H - Y + Z^H F Z = 0 is solved column by column from the last one,
// each column a triangular solve with (I - conj(t_jj) T). O(n^3).
// Throws std::invalid_argument if A has an eigenvalue with |mu| >= 1.
MatrixXc solve_stein(const MatrixXc& a, const MatrixXc& f);

// Gramians of a dense system: P = A P A^H + B B^H,  Q = A^H Q A + C^H C.
MatrixXc controllability_gramian(const DenseSystem& system);
MatrixXc observability_gramian(const DenseSystem& system);

// Factors of the dense Gramians computed directly by Hammarling's method
// (stein_factor.cpp), never forming P or Q: P = L L^H, Q = L L^H, L {N, N}.
// Small HSVs keep their relative accuracy, which forming P and Q loses.
MatrixXc controllability_factor(const DenseSystem& system);
MatrixXc observability_factor(const DenseSystem& system);
// Both, sharing one Schur form of A: {controllability, observability}.
std::pair<MatrixXc, MatrixXc> gramian_factor_pair(const DenseSystem& system);

// X = S^H X S + R^H R for upper triangular S with |s_kk| < 1 and any R {m, n}:
// the upper triangular U with X = U^H U.
MatrixXc stein_upper_factor(const MatrixXc& s, const MatrixXc& r);

}  // namespace compressm::linalg
