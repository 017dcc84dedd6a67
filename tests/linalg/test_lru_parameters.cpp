// The LRU parameter map and its guards.
#include <gtest/gtest.h>

#include "linalg/lru_parameters.h"
#include "support/random_systems.h"

namespace compressm::linalg {
namespace {

bool has_guard(const std::vector<GuardEvent>& guards, const std::string& name) {
  for (const auto& g : guards)
    if (g.guard == name) return true;
  return false;
}

TEST(LruParameters, RoundTripIsExactToRounding) {
  std::mt19937_64 rng(21);
  const DiagonalSystem s = testing::random_system(rng, 12, 3);
  std::vector<GuardEvent> guards;
  const LruParameters p = system_to_lru(s, &guards);
  EXPECT_TRUE(guards.empty());
  EXPECT_TRUE(all_finite(p));
  const DiagonalSystem back = lru_to_system(p);
  EXPECT_LT((back.lambda - s.lambda).cwiseAbs().maxCoeff(), 1e-14);
  EXPECT_LT((back.B - s.B).norm() / s.B.norm(), 1e-13);
  EXPECT_EQ((back.C - s.C).norm(), 0.0);
  EXPECT_EQ((back.D - s.D).norm(), 0.0);
}

TEST(LruParameters, GammaMatchesTheNormalisation) {
  std::mt19937_64 rng(22);
  const DiagonalSystem s = testing::random_system(rng, 5, 2);
  const LruParameters p = system_to_lru(s, nullptr);
  for (int i = 0; i < 5; ++i)
    EXPECT_NEAR(std::exp(2.0 * p.gamma_log[i]), 1.0 - std::norm(s.lambda[i]), 1e-14);
}

TEST(LruParameters, GuardsKeepEveryParameterFinite) {
  std::mt19937_64 rng(23);
  DiagonalSystem s = testing::random_system(rng, 5, 2);
  s.lambda[0] = Complex(1.0000001, 0.0);           // outside the unit circle, and phase 0
  s.lambda[1] = std::polar(1.0, 0.3);              // on the unit circle
  s.lambda[2] = Complex(0.0, 0.0);                 // radius 0
  s.lambda[3] = Complex(0.7, 0.0);                 // real positive: log(arg) = -inf
  s.lambda[4] = Complex(-0.7, 0.0);                // real negative: arg = pi, fine
  std::vector<GuardEvent> guards;
  const LruParameters p = system_to_lru(s, &guards);
  EXPECT_TRUE(all_finite(p));
  EXPECT_TRUE(has_guard(guards, "unit_circle"));
  EXPECT_TRUE(has_guard(guards, "zero_radius"));
  EXPECT_TRUE(has_guard(guards, "zero_phase"));
  const DiagonalSystem back = lru_to_system(p);
  for (int i = 0; i < 5; ++i) EXPECT_LT(std::abs(back.lambda[i]), 1.0) << i;
  EXPECT_NEAR(std::arg(back.lambda[4]), M_PI, 1e-15);
  EXPECT_NEAR(std::abs(back.lambda[3] - s.lambda[3]), 0.0, 1e-11);
}

TEST(LruParameters, NonFiniteInputIsRejected) {
  std::mt19937_64 rng(24);
  DiagonalSystem s = testing::random_system(rng, 3, 2);
  s.B(1, 1) = Complex(std::nan(""), 0.0);
  EXPECT_THROW(system_to_lru(s, nullptr), std::invalid_argument);
}

}  // namespace
}  // namespace compressm::linalg
