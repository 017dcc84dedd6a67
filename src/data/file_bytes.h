// Whole-file reads for the dataset readers: raw, or gunzipped when the file
// starts with the gzip magic 1f 8b (whatever its name).
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

namespace compressm::data {

// Files, and decompressed data, larger than this are refused (a gzip bomb, not
// a dataset: the largest supported file, MNIST train images, is 47 MB).
inline constexpr uint64_t kMaxFileBytes = uint64_t{2} << 30;

// The bytes of `path`. Throws DataError naming `path` when it is missing, not
// a regular file, unreadable, or a corrupt, truncated or oversized gzip stream
// (concatenated gzip members are read in full; other trailing bytes are an error).
std::vector<uint8_t> read_file_bytes(const std::filesystem::path& path);

// The first of `candidates` that exists; throws DataError listing them all.
std::filesystem::path first_existing(const std::vector<std::filesystem::path>& candidates);

}  // namespace compressm::data
