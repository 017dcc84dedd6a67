// Property tests over seeded random systems, hard cases included: the
// H-infinity error of every reduction stays within twice the discarded HSVs,
// every reduced eigenvalue is strictly stable, every LRU parameter is finite.
#include <gtest/gtest.h>

#include "linalg/frequency_response.h"
#include "linalg/lru_parameters.h"
#include "linalg/lru_reduction.h"
#include "support/random_systems.h"

namespace compressm::linalg {
namespace {

using testing::SystemKind;

struct Outcome {
  int reductions = 0;
  double worst_ratio = 0.0;   // hinf_error / hinf_bound, over bounds >= 1e-8 sigma_1
  double worst_excess = 0.0;  // max(0, hinf_error - hinf_bound) / sigma_1
  std::string worst_case;
};

void check_system(std::mt19937_64& rng, SystemKind kind, int seed, Outcome& outcome) {
  std::uniform_int_distribution<int> n_dist(2, 24), h_dist(1, 4);
  const int n = n_dist(rng), h = h_dist(rng);
  const DiagonalSystem s = testing::random_system(rng, n, h, kind);
  const bool energy = seed % 2 == 0;
  const RankRule rule = energy ? RankRule::energy(0.5 + 0.49 * (seed % 7) / 6.0)
                               : RankRule::fixed(1 + seed % n);
  const std::string where = std::string(testing::kind_name(kind)) + " seed " +
                            std::to_string(seed) + " N=" + std::to_string(n) +
                            " H=" + std::to_string(h);
  const LruReduction r = reduce_diagonal_system(s, rule);
  ASSERT_TRUE(r.hsv.allFinite()) << where;
  ASSERT_GE(r.hsv.minCoeff(), 0.0) << where;
  // Stable as computed, not by a clamp: no "unstable" guard fired.
  for (const GuardEvent& e : r.guards) ASSERT_NE(e.guard, "unstable") << where << ": " << e.detail;
  for (Eigen::Index i = 0; i < r.reduced.lambda.size(); ++i)
    ASSERT_LT(std::abs(r.reduced.lambda[i]), 1.0) << where;
  std::vector<GuardEvent> guards;
  const LruParameters p = system_to_lru(r.reduced, &guards);
  ASSERT_TRUE(all_finite(p)) << where;
  const double error = hinf_error(s, r.reduced, 512);
  // Rounding in any computation is relative to the size of the system, so the
  // slack is relative to sigma_1 (= the Hankel norm <= the H-inf norm of G).
  const double slack = 1e-6 * r.hsv[0];
  ASSERT_LE(error, r.hinf_bound + slack)
      << where << " error " << error << " bound " << r.hinf_bound;
  ++outcome.reductions;
  const double sigma1 = r.hsv[0];
  if (r.hinf_bound >= 1e-8 * sigma1)
    outcome.worst_ratio = std::max(outcome.worst_ratio, error / r.hinf_bound);
  const double excess = std::max(0.0, error - r.hinf_bound) / sigma1;
  if (excess > outcome.worst_excess) {
    outcome.worst_excess = excess;
    outcome.worst_case = where + " rank " + std::to_string(r.rank) + " error " +
                         std::to_string(error) + " bound " + std::to_string(r.hinf_bound) +
                         " guards " + std::to_string(r.guards.size() + guards.size());
  }
}

class Properties : public ::testing::TestWithParam<int> {};

TEST_P(Properties, ErrorBoundStabilityFiniteness) {
  const auto kind = static_cast<SystemKind>(GetParam());
  Outcome outcome;
  for (int seed = 0; seed < 200; ++seed) {
    std::mt19937_64 rng(1000003ull * GetParam() + seed);
    check_system(rng, kind, seed, outcome);
    if (HasFatalFailure()) return;
  }
  EXPECT_EQ(outcome.reductions, 200);
  RecordProperty("worst_error_over_bound", std::to_string(outcome.worst_ratio));
  std::cout << testing::kind_name(kind) << ": 200 systems, worst H-inf error / bound = "
            << outcome.worst_ratio << " (bounds >= 1e-8 sigma_1), worst excess / sigma_1 = "
            << outcome.worst_excess << " " << outcome.worst_case << "\n";
}

INSTANTIATE_TEST_SUITE_P(AllKinds, Properties, ::testing::Range(0, testing::kSystemKindCount),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return std::string(
                               testing::kind_name(static_cast<SystemKind>(info.param)));
                         });

}  // namespace
}  // namespace compressm::linalg
