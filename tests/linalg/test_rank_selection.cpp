#include <gtest/gtest.h>

#include "linalg/rank_selection.h"

namespace compressm::linalg {
namespace {

TEST(RankSelection, EnergyUsesPlainSumOfHsvs) {
  VectorXd hsv(4);
  hsv << 4.0, 3.0, 2.0, 1.0;  // cumulative fractions 0.4, 0.7, 0.9, 1.0
  EXPECT_EQ(rank_for_energy(hsv, 0.4), 1);
  EXPECT_EQ(rank_for_energy(hsv, 0.41), 2);
  EXPECT_EQ(rank_for_energy(hsv, 0.9), 3);
  EXPECT_EQ(rank_for_energy(hsv, 0.95), 4);
  EXPECT_EQ(rank_for_energy(hsv, 1.0), 4);
  EXPECT_DOUBLE_EQ(kept_energy(hsv, 3), 9.0);
  EXPECT_DOUBLE_EQ(discarded_energy(hsv, 3), 1.0);
}

TEST(RankSelection, ZeroSpectrumKeepsEverything) {
  EXPECT_EQ(rank_for_energy(VectorXd::Zero(5), 0.5), 5);
}

TEST(RankSelection, BadToleranceIsRejected) {
  const VectorXd hsv = VectorXd::Ones(3);
  for (double tol : {0.0, -0.1, 1.0000001, std::nan("")})
    EXPECT_THROW(rank_for_energy(hsv, tol), std::invalid_argument) << tol;
  EXPECT_THROW(select_rank(RankRule::fixed(0), hsv), std::invalid_argument);
  EXPECT_THROW(select_rank(RankRule::fixed(4), hsv), std::invalid_argument);
  EXPECT_EQ(select_rank(RankRule::fixed(2), hsv), 2);
}

TEST(RankSelection, FivePercentGate) {
  EXPECT_TRUE(passes_reduction_gate(94, 100));
  EXPECT_FALSE(passes_reduction_gate(95, 100));
  EXPECT_FALSE(passes_reduction_gate(100, 100));
}

TEST(RankSelection, FractionRule) {
  EXPECT_EQ(rank_for_fraction(100, 0.1), 90);
  EXPECT_EQ(rank_for_fraction(3, 0.9), 1);
  EXPECT_EQ(rank_for_fraction(45, 0.1), 40);  // floor(40.5), as int() in the reference
  EXPECT_THROW(rank_for_fraction(10, 1.0), std::invalid_argument);
}

}  // namespace
}  // namespace compressm::linalg
