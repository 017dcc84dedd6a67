// Cholesky factors of Stein solutions computed directly, never forming the
// Gramian: Hammarling's method (S. J. Hammarling, "Numerical solution of the
// discrete-time, convergent, non-negative definite Lyapunov equation", Systems
// & Control Letters 17, 1991), complex Schur version. Forming P and then
// factoring it loses small HSVs to an absolute error ~ eps ||P||; the direct
// factor keeps them relatively accurate (the SLICOT cross-check shows it).
#include <Eigen/Jacobi>
#include <cmath>
#include <stdexcept>
#include <string>

#include "linalg/dense_kernels.h"
#include "linalg/gramians.h"
#include "linalg/stability.h"

namespace compressm::linalg {
namespace {

// Triangularises [R; z] in place with Givens rotations: R {w, w} upper
// triangular, z {1, w}; afterwards R^H R (new) = R^H R (old) + z^H z.
void absorb_row(Eigen::Ref<MatrixXc> r, VectorXc z) {
  const Eigen::Index w = r.cols();
  for (Eigen::Index j = 0; j < w; ++j) {
    if (z[j] == Complex(0.0)) continue;
    Eigen::JacobiRotation<Complex> g;
    Complex top;
    g.makeGivens(r(j, j), z[j], &top);
    for (Eigen::Index c = j; c < w; ++c) {  // [r_jc; z_c] <- G^H [r_jc; z_c]
      const Complex a = r(j, c), b = z[c];
      r(j, c) = std::conj(g.c()) * a - std::conj(g.s()) * b;  // == top at c = j
      z[c] = g.s() * a + g.c() * b;
    }
    r(j, j) = top;
    z[j] = 0.0;
  }
}

}  // namespace

// X = S^H X S + R^H R with S upper triangular, |s_kk| < 1: returns U upper
// triangular with X = U^H U. Partition S = [s, s12; 0, S2], R = [r, r12; 0, R2]
// (R triangularised first), U = [u, u12; 0, U2]:
//   u = |r| / sqrt(1 - |s|^2)
//   u12 (I - conj(s) S2) = conj(s) u s12 + (conj(r)/u) r12
//   U2^H U2 = S2^H U2^H U2 S2 + R2^H R2 + z^H z,
//   z = c y - (s conj(r) / (u c)) r12,  y = u s12 + u12 S2,  c = sqrt(1 - |s|^2)
// and the (n-1) problem is solved the same way with R2 updated by z.
MatrixXc stein_upper_factor(const MatrixXc& s, const MatrixXc& r_in) {
  const Eigen::Index n = s.rows();
  MatrixXc r = MatrixXc::Zero(n, n);
  {
    Eigen::HouseholderQR<MatrixXc> qr(r_in);
    const Eigen::Index rows = std::min(n, r_in.rows());
    r.topRows(rows) = qr.matrixQR().topRows(rows).triangularView<Eigen::Upper>();
  }
  MatrixXc u = MatrixXc::Zero(n, n);
  for (Eigen::Index k = 0; k < n; ++k) {
    const Complex sk = s(k, k), rk = r(k, k);
    const double c = std::sqrt((1.0 - std::abs(sk)) * (1.0 + std::abs(sk)));
    if (!(c > 0.0)) throw std::invalid_argument("stein_upper_factor: |s_kk| >= 1");
    const double ukk = std::abs(rk) / c;
    u(k, k) = ukk;
    const Eigen::Index w = n - k - 1;
    if (w == 0) break;
    const auto s12 = s.row(k).tail(w);
    const auto s2 = s.bottomRightCorner(w, w);
    const auto r12 = r.row(k).tail(w);
    VectorXc z(w);
    if (ukk == 0.0) {  // no energy in this state: u12 = 0 and the row moves on
      z = r12.transpose();
    } else {
      const Complex beta = std::conj(rk) / ukk;
      const Eigen::RowVectorXcd rhs = std::conj(sk) * ukk * s12 + beta * r12;
      MatrixXc m = -std::conj(sk) * s2;
      m.diagonal().array() += 1.0;
      // u12 m = rhs  <=>  m^T u12^T = rhs^T, m upper triangular
      const Eigen::RowVectorXcd u12 =
          m.triangularView<Eigen::Upper>().transpose().solve(rhs.transpose()).transpose();
      u.row(k).tail(w) = u12;
      const Eigen::RowVectorXcd y = ukk * s12 + u12 * s2.triangularView<Eigen::Upper>();
      z = (c * y - (sk * std::conj(rk) / (ukk * c)) * r12).transpose();
    }
    absorb_row(r.bottomRightCorner(w, w), z);
  }
  return u;
}

namespace {

// P = A P A^H + B B^H, A = Z T Z^H. With J the index reversal, X = J Z^H P Z J
// solves X = S^H X S + R^H R for S = J T^H J (upper) and R = B^H Z J;
// then P = Z J U^H U J Z^H, so L = Z J U^H.
MatrixXc controllability_factor(const SchurForm& schur, const MatrixXc& b) {
  const MatrixXc s = schur.T.adjoint().colwise().reverse().rowwise().reverse();
  const MatrixXc r = (b.adjoint() * schur.Z).rowwise().reverse();
  return schur.Z * stein_upper_factor(s, r).adjoint().colwise().reverse();
}

// Q = A^H Q A + C^H C: with Q~ = Z^H Q Z, Q~ = T^H Q~ T + (C Z)^H (C Z), and
// Q = Z U^H U Z^H, so L = Z U^H.
MatrixXc observability_factor(const SchurForm& schur, const MatrixXc& c) {
  return schur.Z * stein_upper_factor(schur.T, c * schur.Z).adjoint();
}

SchurForm stable_schur(const MatrixXc& a, const char* what) {
  SchurForm schur = complex_schur(a);
  require_stable(schur.T.diagonal(), what);
  return schur;
}

}  // namespace

MatrixXc controllability_factor(const DenseSystem& system) {
  return controllability_factor(stable_schur(system.A, "controllability_factor"), system.B);
}

MatrixXc observability_factor(const DenseSystem& system) {
  return observability_factor(stable_schur(system.A, "observability_factor"), system.C);
}

std::pair<MatrixXc, MatrixXc> gramian_factor_pair(const DenseSystem& system) {
  const SchurForm schur = stable_schur(system.A, "gramian_factors");  // one Schur form for both
  return {controllability_factor(schur, system.B), observability_factor(schur, system.C)};
}

}  // namespace compressm::linalg
