// Balanced truncation: structure, exactness on decoupled systems, backend
// parity, and the re-diagonalisation guards.
#include <gtest/gtest.h>

#include <Eigen/SVD>
#include <cmath>
#include <limits>
#include <tuple>

#include "linalg/balanced_truncation.h"
#include "linalg/frequency_response.h"
#include "linalg/gramians.h"
#include "linalg/hankel.h"
#include "linalg/lru_reduction.h"
#include "support/random_systems.h"

namespace compressm::linalg {
namespace {

double markov_difference(const std::vector<MatrixXd>& a, const std::vector<MatrixXd>& b) {
  double diff = 0.0, scale = 0.0;
  for (size_t k = 0; k < a.size(); ++k) {
    diff = std::max(diff, (a[k] - b[k]).cwiseAbs().maxCoeff());
    scale = std::max(scale, b[k].cwiseAbs().maxCoeff());
  }
  return diff / scale;
}

TEST(BalancedTruncation, FullOrderReproducesTheSystem) {
  std::mt19937_64 rng(31);
  const DiagonalSystem s = testing::random_system(rng, 10, 3);
  const BalancedTruncation t = balanced_truncation(s, 10);
  EXPECT_EQ(t.rank, 10);
  EXPECT_EQ(t.hinf_bound, 0.0);
  const DenseSystem d{s.lambda.asDiagonal().toDenseMatrix(), s.B, s.C};
  EXPECT_LT(markov_difference(real_markov_parameters(t.reduced, 64), real_markov_parameters(d, 64)),
            1e-11);
}

TEST(BalancedTruncation, FullOrderRealisationIsBalanced) {
  // Projecting with every balanced state gives P = Q = diag(HSVs).
  std::mt19937_64 rng(32);
  const DiagonalSystem s = testing::random_system(rng, 12, 2, testing::SystemKind::Standard, 0.5,
                                                  0.9);
  const BalancedTruncation t = balanced_truncation(s, 12);
  const MatrixXc sigma = t.hsv.cast<Complex>().asDiagonal();
  EXPECT_LT((controllability_gramian(t.reduced) - sigma).norm() / t.hsv[0], 1e-10);
  EXPECT_LT((observability_gramian(t.reduced) - sigma).norm() / t.hsv[0], 1e-10);
}

TEST(BalancedTruncation, BackendsAgree) {
  if (!lapack_available()) GTEST_SKIP();
  std::mt19937_64 rng(33);
  const DiagonalSystem s = testing::random_system(rng, 30, 4);
  const BalancedTruncation fast = balanced_truncation(s, RankRule::energy(0.9), Backend::Lapack);
  const BalancedTruncation ref = balanced_truncation(s, RankRule::energy(0.9), Backend::Reference);
  EXPECT_EQ(fast.rank, ref.rank);
  EXPECT_LT((fast.hsv - ref.hsv).norm() / ref.hsv.norm(), 1e-13);
  EXPECT_LT(markov_difference(real_markov_parameters(fast.reduced, 64),
                              real_markov_parameters(ref.reduced, 64)),
            1e-10);
}

TEST(BalancedTruncation, ZeroSystemGivesZeroOneStateSystem) {
  std::mt19937_64 rng(34);
  DiagonalSystem s = testing::random_system(rng, 5, 2);
  s.B.setZero();
  const LruReduction r = reduce_diagonal_system(s, RankRule::fixed(3));
  EXPECT_EQ(r.rank, 1);
  EXPECT_EQ(r.hsv.norm(), 0.0);
  EXPECT_EQ(r.reduced.B.norm(), 0.0);
  EXPECT_LT(std::abs(r.reduced.lambda[0]), 1.0);
}

TEST(BalancedTruncation, RankAboveNumericalRankIsLoweredAndReported) {
  std::mt19937_64 rng(35);
  DiagonalSystem s = testing::random_system(rng, 8, 1);
  s.B.topRows(4).setZero();  // only 4 controllable states
  const LruReduction r = reduce_diagonal_system(s, RankRule::fixed(6));
  EXPECT_EQ(r.rank, 4);
  ASSERT_FALSE(r.guards.empty());
  EXPECT_EQ(r.guards[0].guard, "rank_lowered");
  EXPECT_LE(hinf_error(s, r.reduced), 1e-10);
}

// hinf_error (compressed error system, largest singular value from the Gram
// matrix, dense path through LU) against the plain formula: the SVD of
// G(z) - G_r(z) formed in full at every grid frequency.
double plain_hinf(const DiagonalSystem& f, const DiagonalSystem& r, int uniform_points) {
  double worst = 0.0;
  for (double omega : hinf_frequency_grid(f.lambda, r.lambda, uniform_points)) {
    const Complex z = std::polar(1.0, omega);
    const MatrixXc g = f.C * (z - f.lambda.array()).inverse().matrix().asDiagonal() * f.B -
                       r.C * (z - r.lambda.array()).inverse().matrix().asDiagonal() * r.B;
    worst = std::max(worst, Eigen::JacobiSVD<MatrixXc>(g).singularValues()[0]);
  }
  return worst;
}

TEST(FrequencyResponse, HinfErrorEqualsThePlainFormula) {
  std::mt19937_64 rng(41);
  // Wide (H > N + r: compressed core), square-ish and tall-output shapes.
  for (auto [n, h, rank] : {std::tuple{12, 40, 5}, std::tuple{30, 8, 11}, std::tuple{24, 3, 9}}) {
    const DiagonalSystem s = testing::random_system(rng, n, h);
    const LruReduction r = reduce_diagonal_system(s, RankRule::fixed(rank));
    const double plain = plain_hinf(s, r.reduced, 256);
    EXPECT_NEAR(hinf_error(s, r.reduced, 256), plain, 1e-12 * plain) << "N " << n << " H " << h;
    const DenseSystem full{s.lambda.asDiagonal().toDenseMatrix(), s.B, s.C};
    const DenseSystem reduced{r.reduced.lambda.asDiagonal().toDenseMatrix(), r.reduced.B, r.reduced.C};
    EXPECT_NEAR(hinf_error(full, reduced, 256), plain, 1e-10 * plain) << "dense, N " << n << " H " << h;
  }
}

TEST(Rediagonalise, JordanBlockIsSeparatedAndReported) {
  // A_r = [[0.5, 1], [0, 0.5]] is defective: no eigenvector basis exists.
  DenseSystem d{MatrixXc(2, 2), MatrixXc(2, 1), MatrixXc(1, 2)};
  d.A << 0.5, 1.0, 0.0, 0.5;
  d.B << 0.3, 1.0;
  d.C << 1.0, 0.2;
  const DiagonalReduction r = rediagonalise(d, VectorXd::Zero(1));
  ASSERT_FALSE(r.guards.empty());
  EXPECT_EQ(r.guards[0].guard, "nearly_defective");
  EXPECT_TRUE(r.system.lambda.allFinite() && r.system.B.allFinite() && r.system.C.allFinite());
  // The perturbation is small: Markov parameters stay close.
  EXPECT_LT(markov_difference(real_markov_parameters(r.system, 64), real_markov_parameters(d, 64)),
            1e-5);
}

TEST(Rediagonalise, DiagonalisableMatrixIsExact) {
  std::mt19937_64 rng(36);
  const DiagonalSystem s = testing::random_system(rng, 6, 2);
  const MatrixXc v = MatrixXc::Random(6, 6) + 3.0 * MatrixXc::Identity(6, 6);
  const DenseSystem d{v * s.lambda.asDiagonal() * v.inverse(), v * s.B, s.C * v.inverse()};
  const DiagonalReduction r = rediagonalise(d, s.D);
  EXPECT_TRUE(r.guards.empty());
  EXPECT_LT(markov_difference(real_markov_parameters(r.system, 64), real_markov_parameters(s, 64)),
            1e-12);
}

// Rescaling a state (its B row times s, its C column over s) leaves the HSVs
// unchanged. With a zero B row P is singular and the factor falls back to
// pivoted Cholesky, whose cutoff must not depend on that scaling (it did:
// HSVs off by 5e-3 sigma_1 and a different rank for --tol 0.99).
TEST(HankelSingularValues, IndependentOfHowEachStateIsScaled) {
  std::mt19937_64 rng(77);
  DiagonalSystem s = testing::random_system(rng, 32, 1, testing::SystemKind::Standard, 0.5, 0.99);
  s.B.row(9).setZero();
  DiagonalSystem scaled = s;
  scaled.B.row(5) *= 1e-7;
  scaled.C.col(5) *= 1e7;
  for (const Backend backend : {Backend::Reference, default_backend()}) {
    const VectorXd a = hankel_singular_values(s, backend), b = hankel_singular_values(scaled, backend);
    EXPECT_LT((a - b).cwiseAbs().maxCoeff(), 1e-12 * a[0]) << backend_name(backend) << "\n" << a.transpose()
                                                            << "\n" << b.transpose();
    EXPECT_EQ(reduce_diagonal_system(s, RankRule::energy(0.99), backend).rank,
              reduce_diagonal_system(scaled, RankRule::energy(0.99), backend).rank);
  }
}

// 1 - |lambda|^2 is formed to full relative accuracy: for one state the HSV
// is |B| |C| / (1 - lambda^2) exactly, here with 1 - lambda = 2^-40 + 2^-52.
// Plain arithmetic loses the low bits of lambda^2 (an error of 3e-5).
TEST(HankelSingularValues, ExactForAPoleNearTheUnitCircle) {
  const double lambda = 1.0 - std::ldexp(1.0, -40) - std::ldexp(1.0, -52);
  for (const Complex pole : {Complex(lambda, 0.0), Complex(0.0, lambda), Complex(-lambda, 0.0)}) {
    const DiagonalSystem s{VectorXc::Constant(1, pole), MatrixXc::Constant(1, 1, 0.75), MatrixXc::Constant(1, 1, 2.0),
                           VectorXd::Zero(1)};
    // 1 - lambda is exact (Sterbenz); 1 + lambda and the product in long double (64-bit mantissa).
    const long double gap = static_cast<long double>(1.0 - lambda) * (1.0L + static_cast<long double>(lambda));
    const double exact = static_cast<double>(1.5L / gap);
    for (const Backend backend : {Backend::Reference, default_backend()})
      EXPECT_NEAR(hankel_singular_values(s, backend)[0], exact, 1e-13 * exact) << pole;
  }
}

// Poles inside the unit circle keep their place, however close to it; the
// LRU's limit 1 - 1e-7 is system_to_lru's business. Clamping them here made
// the H-inf error 1.6e5 against a bound of 60.
TEST(LruReduction, PolesNearTheUnitCircleAreNotClamped) {
  std::mt19937_64 rng(100);
  DiagonalSystem s = testing::random_system(rng, 8, 2);
  s.lambda[3] = std::polar(1.0 - 1e-9, 0.7);
  s.B.row(3) *= 1e-4;  // a strong state all the same: |B| |C| / (1 - |lambda|^2) ~ 1e4
  const LruReduction r = reduce_diagonal_system(s, RankRule::energy(0.9));
  ASSERT_LT(r.rank, 8);
  EXPECT_GT(r.reduced.lambda.cwiseAbs().maxCoeff(), 1.0 - 1e-8);
  EXPECT_LT(r.reduced.lambda.cwiseAbs().maxCoeff(), 1.0);
  for (const GuardEvent& e : r.guards) ADD_FAILURE() << e.guard << ": " << e.detail;
  EXPECT_LE(hinf_error(s, r.reduced), r.hinf_bound * (1.0 + 1e-6));
}

// An eigenvalue of A_r on or outside the unit circle cannot come from a
// stable system: it is reported as "unstable" (and clamped inside).
TEST(Rediagonalise, AnUnstableEigenvalueIsReported) {
  DenseSystem d{MatrixXc(2, 2), MatrixXc(2, 1), MatrixXc(1, 2)};
  d.A << 1.5, 0.0, 0.0, 0.25;
  d.B << 1.0, 1.0;
  d.C << 1.0, 1.0;
  const DiagonalReduction r = rediagonalise(d, VectorXd::Zero(1));
  ASSERT_EQ(r.guards.size(), 1u);
  EXPECT_EQ(r.guards[0].guard, "unstable");
  EXPECT_NE(r.guards[0].detail.find("|mu| = 1.5 >= 1"), std::string::npos) << r.guards[0].detail;
  EXPECT_LT(r.system.lambda.cwiseAbs().maxCoeff(), 1.0);
}

// States that cancel each other (1 / (z^6 - eps^6) as six poles on a circle of
// radius eps with residues ~1e8) leave HSVs that are rounding noise: flagged.
TEST(LruReduction, CancellingStatesAreFlaggedIllConditioned) {
  const DiagonalSystem s = testing::cancelling_system(6, 0.017);
  EXPECT_GT(std::numeric_limits<double>::epsilon() * hsv_condition(s, hankel_singular_values(s)[0]),
            kIllConditionedHsvError);
  const LruReduction r = reduce_diagonal_system(s, RankRule::fixed(2));
  ASSERT_FALSE(r.guards.empty());
  EXPECT_EQ(r.guards[0].guard, "ill_conditioned");
  // A well-conditioned system is not flagged.
  std::mt19937_64 rng(5);
  const DiagonalSystem fine = testing::random_system(rng, 64, 4);
  EXPECT_LT(hsv_condition(fine, hankel_singular_values(fine)[0]), 1e4);
}

}  // namespace
}  // namespace compressm::linalg
