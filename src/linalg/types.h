// Core types of the control-theory library. Eigen only: no LibTorch here.
#pragma once

#include <Eigen/Dense>
#include <complex>
#include <string>
#include <vector>

namespace compressm::linalg {

using Complex = std::complex<double>;
using VectorXc = Eigen::VectorXcd;
using MatrixXc = Eigen::MatrixXcd;
using Eigen::MatrixXd;
using Eigen::VectorXd;

// A complex diagonal discrete-time system (one LRU layer, docs/design.md §1):
//   x_k = diag(lambda) x_{k-1} + B u_k,   y_k = C x_k (+ D .* u_k)
// B is the *normalised* input matrix Bt = diag(gamma) (B_re + i B_im).
struct DiagonalSystem {
  VectorXc lambda;  // {N}
  MatrixXc B;       // {N, H}
  MatrixXc C;       // {H, N}
  VectorXd D;       // {H} feed-through; carried along, never reduced

  Eigen::Index state_dim() const { return lambda.size(); }
  Eigen::Index input_dim() const { return B.cols(); }
  Eigen::Index output_dim() const { return C.rows(); }
};

// A general dense discrete-time system x_k = A x_{k-1} + B u_k, y_k = C x_k.
// Real systems are represented with zero imaginary parts.
struct DenseSystem {
  MatrixXc A;  // {N, N}
  MatrixXc B;  // {N, H}
  MatrixXc C;  // {P, N}

  Eigen::Index state_dim() const { return A.rows(); }
};

// Something a numerical guard did to keep a result finite and stable.
// Guards never hide: every intervention is reported to the caller.
struct GuardEvent {
  std::string guard;   // e.g. "unit_circle", "zero_phase", "nearly_defective"
  std::string detail;  // human-readable: which index, old and new value
};

}  // namespace compressm::linalg
