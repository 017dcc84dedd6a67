// Seeded random LRU-like systems for tests, including the hard cases the
// reduction must survive. Header-only so every test binary can use it.
#pragma once

#include <cmath>
#include <random>

#include "linalg/types.h"

namespace compressm::testing {

using linalg::Complex;
using linalg::DiagonalSystem;

enum class SystemKind {
  Standard,      // the LRU initialisation: |lambda|^2 ~ U[r_min^2, r_max^2], phase ~ U[0, 2pi)
  NearUnitCircle,// |lambda| up to 0.99999
  WeakStates,    // some rows of B / columns of C scaled by 1e-6 .. 1e-10
  ZeroRowsCols,  // exact zero rows of B and columns of C
  RealEigenvalues,  // phases exactly 0 or pi
  Repeated,      // eigenvalues repeated exactly
};
inline constexpr int kSystemKindCount = 6;

inline const char* kind_name(SystemKind kind) {
  switch (kind) {
    case SystemKind::Standard: return "standard";
    case SystemKind::NearUnitCircle: return "near_unit_circle";
    case SystemKind::WeakStates: return "weak_states";
    case SystemKind::ZeroRowsCols: return "zero_rows_cols";
    case SystemKind::RealEigenvalues: return "real_eigenvalues";
    case SystemKind::Repeated: return "repeated";
  }
  return "?";
}

inline DiagonalSystem random_system(std::mt19937_64& rng, int n, int h,
                                    SystemKind kind = SystemKind::Standard, double r_min = 0.9,
                                    double r_max = 0.999) {
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::normal_distribution<double> normal(0.0, 1.0);
  if (kind == SystemKind::NearUnitCircle) r_max = 0.99999;
  DiagonalSystem s;
  s.lambda.resize(n);
  s.B.resize(n, h);
  s.C.resize(h, n);
  s.D.resize(h);
  for (int i = 0; i < n; ++i) {
    const double r2 = r_min * r_min + unit(rng) * (r_max * r_max - r_min * r_min);
    double phase = 2.0 * M_PI * unit(rng);
    if (kind == SystemKind::RealEigenvalues) phase = unit(rng) < 0.5 ? 0.0 : M_PI;
    s.lambda[i] = std::polar(std::sqrt(r2), phase);
    if (kind == SystemKind::NearUnitCircle && i % 3 == 0) s.lambda[i] = std::polar(0.99999, phase);
  }
  if (kind == SystemKind::Repeated)
    for (int i = 1; i < n; i += 2) s.lambda[i] = s.lambda[i - 1];
  for (int i = 0; i < n; ++i) {
    const double gamma = std::sqrt(1.0 - std::norm(s.lambda[i]));
    for (int j = 0; j < h; ++j)
      s.B(i, j) = gamma * Complex(normal(rng), normal(rng)) / std::sqrt(2.0 * h);
  }
  for (int j = 0; j < h; ++j)
    for (int i = 0; i < n; ++i) s.C(j, i) = Complex(normal(rng), normal(rng)) / std::sqrt(double(n));
  for (int j = 0; j < h; ++j) s.D[j] = normal(rng);
  if (kind == SystemKind::WeakStates) {
    for (int i = 0; i < n; i += 3) s.B.row(i) *= std::pow(10.0, -6.0 - 4.0 * unit(rng));
    for (int i = 1; i < n; i += 4) s.C.col(i) *= std::pow(10.0, -6.0 - 4.0 * unit(rng));
  }
  if (kind == SystemKind::ZeroRowsCols) {
    for (int i = 0; i < n; i += 3) s.B.row(i).setZero();
    for (int i = 1; i < n; i += 4) s.C.col(i).setZero();
  }
  return s;
}

// States that cancel each other: 1 / (z^k - eps^k) as k poles on the circle
// of radius eps with residues ~eps^(1-k) (1e8 for k = 6, eps = 0.017) whose
// sum is small. Its HSVs are rounding noise in double precision.
inline DiagonalSystem cancelling_system(int k, double eps) {
  DiagonalSystem s{linalg::VectorXc(k), linalg::MatrixXc(k, 1), linalg::MatrixXc(1, k), linalg::VectorXd::Zero(1)};
  for (int m = 0; m < k; ++m) {
    s.lambda[m] = std::polar(eps, 2.0 * M_PI * m / k);
    const Complex residue = 1.0 / (static_cast<double>(k) * std::pow(s.lambda[m], k - 1));
    s.B(m, 0) = std::sqrt(residue);
    s.C(0, m) = std::sqrt(residue);
  }
  return s;
}

}  // namespace compressm::testing
