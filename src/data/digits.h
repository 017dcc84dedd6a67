// scikit-learn's digits (UCI optical digits, 8x8): digits.csv[.gz], one row
// per example: 64 comma-separated integers in [0, 16] (row-major pixels) and a
// label in [0, 10). As a sequence: pixel/16, inputs {count, 64, 1}.
// Split (docs/design.md §5): the LAST 360 rows are test, the rest train+val
// (split_train_val, 90/10).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "data/dataset.h"

namespace compressm::data {

inline constexpr int64_t kDigitsTestRows = 360;

// All rows of a digits file. Throws DataError naming the file and line for a
// row with the wrong field count, a non-integer field, a pixel outside
// [0, 16] or a label outside [0, 10); also for an empty file.
Dataset read_digits_csv(const std::filesystem::path& path);

// The digits splits from `dir` (digits.csv.gz, else digits.csv). Throws
// DataError if the file has no more than 360 rows.
Splits load_digits(const std::filesystem::path& dir, uint64_t seed);

}  // namespace compressm::data
