// Seeded permutations and the 90/10 train/val split. std::shuffle and the
// std distributions are implementation-defined, so the permutation is built
// here from SplitMix64 and gives the same split on every platform and compiler.
#pragma once

#include <cstdint>
#include <vector>

#include "data/dataset.h"

namespace compressm::data {

// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and well mixed even for
// consecutive seeds, which is what per-epoch permutations need.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next();
  // Uniform in [0, bound) by rejection (no modulo bias); bound > 0.
  uint64_t below(uint64_t bound);

 private:
  uint64_t state_;
};

// A permutation of 0..n-1: Fisher-Yates driven by SplitMix64(seed), for
// i = n-1 down to 1 swap(p[i], p[below(i + 1)]).
std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed);

// The examples of `dataset` at `indices` (in that order), same shapes.
Dataset take_examples(const Dataset& dataset, const std::vector<int64_t>& indices);

// The split rule (docs/design.md §5): n_val = n / 10 (integer division). With
// p = seeded_permutation(n, seed ^ kSplitSalt), the examples p[0..n_val) form
// val and the rest train; both keep the original file order. Consumes `all`
// (train is compacted in place and keeps the capacity of all the rows, so the
// peak memory is ~1.1x the data).
inline constexpr uint64_t kSplitSalt = 0x73706c6974ULL;  // "split" in ASCII
void split_train_val(Dataset all, uint64_t seed, Dataset& train, Dataset& val);

}  // namespace compressm::data
