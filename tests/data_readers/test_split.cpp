// Seeded permutations and the 90/10 split rule.
#include "data/split.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace {

using compressm::data::Dataset;
using compressm::data::seeded_permutation;
using compressm::data::split_train_val;
using compressm::data::SplitMix64;

Dataset numbered(int64_t count, int64_t seq_len) {
  Dataset d;
  d.seq_len = seq_len;
  d.channels = 1;
  d.num_classes = 10;
  for (int64_t i = 0; i < count; ++i) {
    for (int64_t t = 0; t < seq_len; ++t) d.inputs.push_back(static_cast<float>(i * 1000 + t));
    d.labels.push_back(static_cast<int32_t>(i % 10));
  }
  return d;
}

TEST(Split, SplitMixMatchesTheReferenceSequence) {
  // First outputs of SplitMix64 seeded with 1234567 (Vigna's splitmix64.c).
  SplitMix64 rng(1234567);
  EXPECT_EQ(rng.next(), 6457827717110365317ULL);
  EXPECT_EQ(rng.next(), 3203168211198807973ULL);
}

TEST(Split, PermutationIsAPermutationAndSeeded) {
  for (int64_t n : {0, 1, 2, 17, 1000}) {
    std::vector<int64_t> p = seeded_permutation(n, 9);
    EXPECT_EQ(p, seeded_permutation(n, 9));
    std::sort(p.begin(), p.end());
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(p[i], i);
  }
  EXPECT_NE(seeded_permutation(1000, 9), seeded_permutation(1000, 10));
}

TEST(Split, NinetyTenInFileOrderAndComplete) {
  for (int64_t n : {1, 9, 10, 11, 99, 1437}) {
    Dataset train, val;
    split_train_val(numbered(n, 3), 4, train, val);
    EXPECT_EQ(val.count(), n / 10);
    EXPECT_EQ(train.count(), n - n / 10);
    std::vector<int64_t> ids;
    for (const Dataset* d : {&train, &val}) {
      EXPECT_EQ(d->inputs.size(), static_cast<size_t>(d->count() * 3));
      for (int64_t r = 0; r < d->count(); ++r) {
        const int64_t i = static_cast<int64_t>(d->inputs[r * 3]) / 1000;
        EXPECT_EQ(d->inputs[r * 3 + 2], static_cast<float>(i * 1000 + 2));
        EXPECT_EQ(d->labels[r], i % 10);
        if (r > 0) {
          EXPECT_GT(i, ids.back());
        }
        ids.push_back(i);
      }
    }
    std::sort(ids.begin(), ids.end());
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(ids[i], i);
  }
}

TEST(Split, ValIsTheFirstTenthOfTheSaltedPermutation) {
  Dataset train, val;
  split_train_val(numbered(50, 1), 21, train, val);
  std::vector<int64_t> p = seeded_permutation(50, 21 ^ compressm::data::kSplitSalt);
  std::vector<int64_t> expected(p.begin(), p.begin() + 5);
  std::sort(expected.begin(), expected.end());
  for (int64_t r = 0; r < 5; ++r) EXPECT_EQ(val.inputs[r], expected[r] * 1000.0f);
}

}  // namespace
