// CIFAR-10, binary version (Krizhevsky 2009): data_batch_1..5.bin and
// test_batch.bin, each a sequence of 3073-byte records: 1 label byte in
// [0, 10), then 3072 pixel bytes as three 32x32 planes R, G, B (row-major).
//
// As a sequence (sCIFAR): 1024 steps (pixel row * 32 + column) x 3 channels,
// inputs {count, 1024, 3}. Each channel is normalised with the mean and
// standard deviation of that channel over all 50000 images of the five
// training batches (computed here, so it equals the usual constants
// (0.4914, 0.4822, 0.4465) / (0.2470, 0.2435, 0.2616) on the real data and is
// independent of the seed): input = (pixel/255 - mean_c) / std_c, the same
// constants for train, val and test.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "data/dataset.h"

namespace compressm::data {

inline constexpr int64_t kCifarRecordBytes = 1 + 3 * 1024;

// The raw records of one batch file. Throws DataError naming the file if it is
// missing, empty, its size is not a multiple of 3073 or a label is >= 10.
std::vector<uint8_t> read_cifar10_batch(const std::filesystem::path& path);

// The scifar splits from `dir`: train+val from data_batch_1..5.bin
// (split_train_val), test from test_batch.bin.
Splits load_cifar10(const std::filesystem::path& dir, uint64_t seed);

}  // namespace compressm::data
