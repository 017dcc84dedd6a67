#include "linalg/frequency_response.h"

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>

#include "linalg/eigenvalue_guards.h"

namespace compressm::linalg {
namespace {

constexpr double kTwoPi = 6.283185307179586476925286766559;

template <class System>
DenseSystem as_dense(const System& s);

template <>
DenseSystem as_dense(const DiagonalSystem& s) {
  return {s.lambda.asDiagonal().toDenseMatrix(), s.B, s.C};
}
template <>
DenseSystem as_dense(const DenseSystem& s) {
  return s;
}

std::vector<MatrixXd> markov(const DenseSystem& s, int count) {
  std::vector<MatrixXd> out;
  MatrixXc akb = s.B;  // A^k B
  for (int k = 0; k < count; ++k) {
    out.push_back((s.C * akb).real());
    akb = s.A * akb;
  }
  return out;
}

// Error system E(z) = C~ (zI - A~)^{-1} B~ with A~ = blkdiag(A, A_r),
// B~ = [B; B_r], C~ = [C, -C_r]. When the state is smaller than the number of
// inputs/outputs, orthogonal compressions C~ = Qc Rc and B~^H = Qb Rb give the
// same singular values from the small core Rc (zI - A~)^{-1} Rb^H.
struct ErrorSystem {
  MatrixXc A, left, right;  // sigma(E(z)) = sigma(left (zI - A)^{-1} right)
  bool diagonal = false;
};

ErrorSystem error_system(const DenseSystem& full, const DenseSystem& reduced, bool diagonal) {
  const Eigen::Index n = full.A.rows(), r = reduced.A.rows();
  ErrorSystem e;
  e.diagonal = diagonal;
  e.A = MatrixXc::Zero(n + r, n + r);
  e.A.topLeftCorner(n, n) = full.A;
  e.A.bottomRightCorner(r, r) = reduced.A;
  MatrixXc b(n + r, full.B.cols()), c(full.C.rows(), n + r);
  b << full.B, reduced.B;
  c << full.C, -reduced.C;
  if (c.rows() > n + r) {
    Eigen::HouseholderQR<MatrixXc> qr(c);
    c = qr.matrixQR().topRows(n + r).triangularView<Eigen::Upper>();
  }
  if (b.cols() > n + r) {
    Eigen::HouseholderQR<MatrixXc> qr(b.adjoint());
    b = MatrixXc(qr.matrixQR().topRows(n + r).triangularView<Eigen::Upper>()).adjoint();
  }
  e.left = std::move(c);
  e.right = std::move(b);
  return e;
}

// The largest singular value of a small matrix as the square root of the
// largest eigenvalue of its Gram matrix (the smaller of G^H G and G G^H):
// exact to rounding for the largest one, and 5x faster than an SVD of the
// 8 x 8 matrices of an sMNIST block (the grid has thousands of points).
double largest_singular_value(const MatrixXc& g, MatrixXc& gram) {
  if (g.size() == 0) return 0.0;
  if (g.rows() >= g.cols())
    gram.noalias() = g.adjoint() * g;
  else
    gram.noalias() = g * g.adjoint();
  const Eigen::SelfAdjointEigenSolver<MatrixXc> eig(gram, Eigen::EigenvaluesOnly);
  return std::sqrt(std::max(0.0, eig.eigenvalues().maxCoeff()));
}

// Buffers reused across the grid's frequencies.
struct Workspace {
  VectorXc d;
  MatrixXc scaled, g, gram, shifted, x;
};

double sigma_max_at(const ErrorSystem& e, double omega, Workspace& w) {
  const Complex z = std::polar(1.0, omega);
  if (e.diagonal) {
    // left (zI - A)^{-1} right = (left diag(1 / (z - a_i))) right
    w.d = (z - e.A.diagonal().array()).inverse();
    w.scaled.noalias() = e.left * w.d.asDiagonal();
    w.g.noalias() = w.scaled * e.right;
  } else {
    w.shifted = -e.A;
    w.shifted.diagonal().array() += z;
    w.x = w.shifted.partialPivLu().solve(e.right);
    w.g.noalias() = e.left * w.x;
  }
  return largest_singular_value(w.g, w.gram);
}

VectorXc eigenvalues_of(const DenseSystem& s, bool diagonal) {
  if (diagonal) return s.A.diagonal();
  return Eigen::ComplexEigenSolver<MatrixXc>(s.A, false).eigenvalues();
}

template <class System>
double hinf(const System& full, const System& reduced, int uniform_points, bool diagonal) {
  const DenseSystem f = as_dense(full), r = as_dense(reduced);
  const ErrorSystem e = error_system(f, r, diagonal);
  double worst = 0.0;
  Workspace w;
  for (double omega :
       hinf_frequency_grid(eigenvalues_of(f, diagonal), eigenvalues_of(r, diagonal), uniform_points)) {
    const double sigma = sigma_max_at(e, omega, w);
    if (std::isnan(sigma)) return sigma;  // std::max would drop it: the error is unknown, not small
    worst = std::max(worst, sigma);
  }
  return worst;
}

}  // namespace

std::vector<MatrixXd> real_markov_parameters(const DiagonalSystem& system, int count) {
  std::vector<MatrixXd> out;
  MatrixXc akb = system.B;
  for (int k = 0; k < count; ++k) {
    out.push_back((system.C * akb).real());
    akb = system.lambda.asDiagonal() * akb;
  }
  return out;
}

std::vector<MatrixXd> real_markov_parameters(const DenseSystem& system, int count) {
  return markov(system, count);
}

std::vector<double> hinf_frequency_grid(const VectorXc& full_eigenvalues,
                                        const VectorXc& reduced_eigenvalues, int uniform_points) {
  std::vector<double> grid;
  for (int k = 0; k < uniform_points; ++k) grid.push_back(kTwoPi * k / uniform_points);
  for (const VectorXc* eigs : {&full_eigenvalues, &reduced_eigenvalues}) {
    for (Eigen::Index i = 0; i < eigs->size(); ++i) {
      const double theta = phase_in_zero_two_pi((*eigs)[i]);
      // A pole at radius rho gives a peak of width ~ (1 - rho) around theta.
      const double width = std::max(1e-9, 1.0 - std::abs((*eigs)[i]));
      for (double offset : {0.0, -0.5 * width, 0.5 * width}) grid.push_back(theta + offset);
    }
  }
  return grid;
}

double hinf_error(const DiagonalSystem& full, const DiagonalSystem& reduced, int uniform_points) {
  return hinf(full, reduced, uniform_points, true);
}

double hinf_error(const DenseSystem& full, const DenseSystem& reduced, int uniform_points) {
  return hinf(full, reduced, uniform_points, false);
}

}  // namespace compressm::linalg
