// Philox4x32-10 against the known-answer vectors published with the
// generator (Random123's kat_vectors), and the CPU keep-mask fill built on
// it: every element is the bit `keeps` gives for its index, whatever the
// thread count, at the asked rate.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/fused_ops.h"
#include "kernels/philox.h"

namespace compressm::kernels {
namespace {

void expect_words(const philox::Words& got, uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
  EXPECT_EQ(got.w[0], a);
  EXPECT_EQ(got.w[1], b);
  EXPECT_EQ(got.w[2], c);
  EXPECT_EQ(got.w[3], d);
}

TEST(Philox, KnownAnswers) {
  expect_words(philox::philox4x32_10(0, 0, 0, 0, 0, 0), 0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u);
  expect_words(philox::philox4x32_10(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu),
               0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu);
  expect_words(philox::philox4x32_10(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u),
               0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u);
}

TEST(Philox, KeepThresholdCoversTheEnds) {
  EXPECT_EQ(philox::keep_threshold(1.0), uint64_t{1} << 32);
  EXPECT_EQ(philox::keep_threshold(0.0), 0u);
  EXPECT_EQ(philox::keep_threshold(0.5), uint64_t{1} << 31);
  // keep_prob 1: even the largest word keeps its element.
  EXPECT_LT(uint64_t{0xffffffffu}, philox::keep_threshold(1.0));
}

std::vector<uint8_t> filled(int64_t n, uint64_t seed, double keep_prob, int threads) {
  const int before = at::get_num_threads();
  at::set_num_threads(threads);
  std::vector<uint8_t> keep(n, 7);
  elementwise::fill_keep_mask(keep.data(), n, seed, keep_prob);
  at::set_num_threads(before);
  return keep;
}

TEST(Philox, KeepMaskIsTheBitOfEachIndexOnAnyThreadCount) {
  const uint64_t seed = 0x0123456789abcdefull;
  const double keep_prob = 0.9;
  for (const int64_t n : {int64_t{1}, int64_t{3}, int64_t{4}, int64_t{4099}, int64_t{200003}}) {
    SCOPED_TRACE("n=" + std::to_string(n));
    const std::vector<uint8_t> one = filled(n, seed, keep_prob, 1), two = filled(n, seed, keep_prob, 2);
    EXPECT_EQ(one, two);
    const uint64_t threshold = philox::keep_threshold(keep_prob);
    int64_t wrong = 0;
    for (int64_t i = 0; i < n; ++i) wrong += one[i] != (philox::keeps(seed, i, threshold) ? 1 : 0);
    EXPECT_EQ(wrong, 0);
  }
}

TEST(Philox, KeepMaskDrawsTheRateAndDependsOnTheSeed) {
  const int64_t n = 400000;
  for (const double keep_prob : {0.9, 0.5, 0.25}) {
    const std::vector<uint8_t> a = filled(n, 42, keep_prob, 2), b = filled(n, 43, keep_prob, 2);
    int64_t kept = 0, same = 0;
    for (int64_t i = 0; i < n; ++i) {
      kept += a[i];
      same += a[i] == b[i];
    }
    // Binomial sd at n = 4e5 is at most 0.0008: 6 sd.
    EXPECT_NEAR(static_cast<double>(kept) / n, keep_prob, 0.005) << keep_prob;
    // Two seeds agree where independent draws would: p^2 + (1 - p)^2.
    const double agree = keep_prob * keep_prob + (1 - keep_prob) * (1 - keep_prob);
    EXPECT_NEAR(static_cast<double>(same) / n, agree, 0.005) << keep_prob;
  }
  const std::vector<uint8_t> all = filled(1000, 5, 1.0, 1);
  EXPECT_EQ(std::count(all.begin(), all.end(), 1), 1000);
}

// Neighbouring elements (one Philox call's four words, and the next call's)
// are not correlated: the rate of kept pairs at lag 1 and 4 is p^2.
TEST(Philox, NeighbouringDrawsAreIndependent) {
  const int64_t n = 400000;
  const double p = 0.5;
  const std::vector<uint8_t> keep = filled(n, 99, p, 1);
  for (const int64_t lag : {int64_t{1}, int64_t{4}}) {
    int64_t both = 0;
    for (int64_t i = 0; i + lag < n; ++i) both += keep[i] & keep[i + lag];
    EXPECT_NEAR(static_cast<double>(both) / (n - lag), p * p, 0.005) << "lag " << lag;
  }
}

}  // namespace
}  // namespace compressm::kernels
