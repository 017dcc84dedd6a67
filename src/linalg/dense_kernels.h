// The O(N^3) dense kernels the reduction is built from, with two backends:
//   Reference — plain Eigen, always compiled; the parity oracle.
//   Lapack    — BLAS/LAPACK (OpenBLAS) when the build found it; the fast path.
// Every function here has a test comparing the two backends.
#pragma once

#include <functional>
#include <string>

#include "linalg/types.h"

namespace compressm::linalg {

enum class Backend { Reference, Lapack };

// The fastest backend compiled into this build.
Backend default_backend();
bool lapack_available();
const char* backend_name(Backend backend);

// Threads the BLAS/LAPACK library may use per call (1 when the caller runs
// several reductions in parallel). No effect on the reference backend.
void set_dense_kernel_threads(int threads);
int dense_kernel_threads();

// OpenBLAS's kernel set, e.g. "SkylakeX", and how it was chosen: by OpenBLAS,
// by the user (OPENBLAS_CORETYPE), or switched by us when the program started
// because OpenBLAS fell back to older kernels than the CPU runs
// (blas_runtime.cpp). Empty names when the BLAS is not OpenBLAS.
struct BlasKernels {
  std::string chosen_by_library;
  std::string in_use;
  std::string how;
};
const BlasKernels& blas_kernels();

// X = A A^H (Hermitian, both triangles filled). A {N, K} -> X {N, N}.
MatrixXc gram_rows(const MatrixXc& a, Backend backend = default_backend());
// X = A^H A. A {K, N} -> X {N, N}.
MatrixXc gram_columns(const MatrixXc& a, Backend backend = default_backend());

// A factor L {N, rank} with P = L L^H for a Hermitian positive *semi*definite P.
// Tries plain Cholesky first; when P is numerically singular it falls back to
// Cholesky with diagonal pivoting (LAPACK xPSTRF) of diag(P)^-1/2 P diag(P)^-1/2
// and stops at the numerical rank, so states with no energy never produce NaN
// and the cutoff does not depend on how each state is scaled.
struct GramianFactor {
  MatrixXc L;                     // {N, rank}
  bool lower_triangular = false;  // square lower triangular (plain Cholesky)
  Eigen::Index rank() const { return L.cols(); }
};
GramianFactor psd_factor(const MatrixXc& p, Backend backend = default_backend());

// Singular values of M (descending, all of them) and the leading `vectors`
// left/right singular vectors: M ~ U S V^H with U {m, vectors}, V {n, vectors}.
// Only the requested vectors are formed, which is what makes the fast path fast.
struct PartialSvd {
  VectorXd singular_values;  // {min(m, n)}, descending
  MatrixXc U;                // {m, vectors}
  MatrixXc V;                // {n, vectors}
};
PartialSvd partial_svd(const MatrixXc& m, Eigen::Index vectors,
                       Backend backend = default_backend());

// As above, with the number of vectors chosen from the singular values once
// they are known (e.g. by an energy tolerance), without a second factorisation.
// An empty rule asks for the singular values only (the cheapest path).
using VectorCountRule = std::function<Eigen::Index(const VectorXd& singular_values)>;
PartialSvd partial_svd(const MatrixXc& m, const VectorCountRule& vectors,
                       Backend backend = default_backend());

// Eigen-decomposition A = V diag(mu) V^{-1} of a general complex matrix.
struct EigenDecomposition {
  VectorXc values;   // {n}
  MatrixXc vectors;  // {n, n}, columns of unit 2-norm
};
EigenDecomposition eigen_decomposition(const MatrixXc& a,
                                       Backend backend = default_backend());

// Upper triangular Schur form A = Z T Z^H (used by the Stein solver).
struct SchurForm {
  MatrixXc T;
  MatrixXc Z;
};
SchurForm complex_schur(const MatrixXc& a);

}  // namespace compressm::linalg
