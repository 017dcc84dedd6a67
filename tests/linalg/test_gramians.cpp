// Gramians: closed forms for diagonal systems against the dense Stein solver,
// and the Stein solver against its defining equation.
#include <gtest/gtest.h>

#include "linalg/gramians.h"
#include "support/random_systems.h"

namespace compressm::linalg {
namespace {

using testing::random_system;

DenseSystem dense_of(const DiagonalSystem& s) { return {s.lambda.asDiagonal().toDenseMatrix(), s.B, s.C}; }

TEST(Gramians, ClosedFormSolvesSteinEquation) {
  std::mt19937_64 rng(11);
  const DiagonalSystem s = random_system(rng, 20, 3);
  const MatrixXc p = controllability_gramian(s);
  const MatrixXc a = s.lambda.asDiagonal();
  EXPECT_LT((a * p * a.adjoint() + s.B * s.B.adjoint() - p).norm() / p.norm(), 1e-13);
  const MatrixXc q = observability_gramian(s);
  EXPECT_LT((a.adjoint() * q * a + s.C.adjoint() * s.C - q).norm() / q.norm(), 1e-13);
}

TEST(Gramians, DenseSolverMatchesClosedForm) {
  std::mt19937_64 rng(12);
  const DiagonalSystem s = random_system(rng, 16, 2);
  EXPECT_LT((controllability_gramian(dense_of(s)) - controllability_gramian(s)).norm() /
                controllability_gramian(s).norm(),
            1e-11);
  EXPECT_LT((observability_gramian(dense_of(s)) - observability_gramian(s)).norm() /
                observability_gramian(s).norm(),
            1e-11);
}

TEST(Gramians, SteinSolverOnNonNormalMatrix) {
  std::mt19937_64 rng(13);
  std::normal_distribution<double> normal;
  const int n = 15;
  MatrixXc a(n, n), f(n, n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      a(i, j) = Complex(normal(rng), normal(rng));
      f(i, j) = Complex(normal(rng), normal(rng));
    }
  f = f * f.adjoint();
  a *= 0.9 / Eigen::ComplexEigenSolver<MatrixXc>(a, false).eigenvalues().cwiseAbs().maxCoeff();
  const MatrixXc x = solve_stein(a, f);
  EXPECT_LT((a * x * a.adjoint() + f - x).norm() / x.norm(), 1e-12);
  EXPECT_LT((x - x.adjoint()).norm(), 1e-12 * x.norm());
}

TEST(Gramians, UnstableSystemsAreRejected) {
  std::mt19937_64 rng(14);
  DiagonalSystem s = random_system(rng, 4, 2);
  s.lambda[2] = Complex(1.0, 0.0);
  EXPECT_THROW(controllability_gramian(s), std::invalid_argument);
  EXPECT_THROW(observability_gramian(s), std::invalid_argument);
  EXPECT_THROW(solve_stein(dense_of(s).A, MatrixXc::Identity(4, 4)), std::invalid_argument);
}

}  // namespace
}  // namespace compressm::linalg

namespace compressm::linalg {
namespace {

// Hammarling's direct factors against the formed Gramians.
TEST(SteinFactor, FactorsReproduceTheGramians) {
  std::mt19937_64 rng(15);
  std::normal_distribution<double> normal;
  const int n = 12;
  MatrixXc a(n, n), b(n, 2), c(3, n);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) a(i, j) = Complex(normal(rng), normal(rng));
    for (int j = 0; j < 2; ++j) b(i, j) = Complex(normal(rng), normal(rng));
    for (int j = 0; j < 3; ++j) c(j, i) = Complex(normal(rng), normal(rng));
  }
  a *= 0.95 / Eigen::ComplexEigenSolver<MatrixXc>(a, false).eigenvalues().cwiseAbs().maxCoeff();
  const DenseSystem s{a, b, c};
  const MatrixXc lc = controllability_factor(s), lo = observability_factor(s);
  const MatrixXc p = controllability_gramian(s), q = observability_gramian(s);
  EXPECT_LT((lc * lc.adjoint() - p).norm() / p.norm(), 1e-12);
  EXPECT_LT((lo * lo.adjoint() - q).norm() / q.norm(), 1e-12);
}

TEST(SteinFactor, UpperFactorSolvesTheEquation) {
  std::mt19937_64 rng(16);
  std::normal_distribution<double> normal;
  const int n = 9;
  MatrixXc s = MatrixXc::Zero(n, n), r(2, n);
  for (int i = 0; i < n; ++i) {
    s(i, i) = std::polar(0.3 + 0.069 * i, 0.7 * i);
    for (int j = i + 1; j < n; ++j) s(i, j) = 0.3 * Complex(normal(rng), normal(rng));
    for (int j = 0; j < 2; ++j) r(j, i) = Complex(normal(rng), normal(rng));
  }
  r.col(3).setZero();  // a state without direct input energy
  const MatrixXc u = stein_upper_factor(s, r);
  EXPECT_TRUE(u.isUpperTriangular());
  const MatrixXc x = u.adjoint() * u;
  EXPECT_LT((s.adjoint() * x * s + r.adjoint() * r - x).norm() / x.norm(), 1e-13);
}

}  // namespace
}  // namespace compressm::linalg
