// Whole-file reads for the dataset readers: raw, or gunzipped when the file
// starts with the gzip magic 1f 8b (whatever its name).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <vector>

namespace compressm::data {

// Files, and decompressed data, larger than this are refused (a gzip bomb, not
// a dataset: the largest supported file, MNIST train images, is 47 MB).
inline constexpr uint64_t kMaxFileBytes = uint64_t{2} << 30;

// What a reader knows of a file's size from its first bytes. A gzip stream is
// inflated only to one byte past `bound(header)`: a file longer than its
// header says is still seen to be longer (the reader names the problem), but
// a small gzip bomb behind a small header costs no memory.
struct SizeBound {
  size_t header_bytes = 0;  // how many first bytes `bound` reads
  std::function<uint64_t(const uint8_t* header)> bound;
};

// The bytes of `path`. Throws DataError naming `path` when it is missing, not
// a regular file, unreadable, larger than `max_bytes` (raw or decompressed),
// or a corrupt or truncated gzip stream (concatenated gzip members are read in
// full; other trailing bytes are an error).
std::vector<uint8_t> read_file_bytes(const std::filesystem::path& path, uint64_t max_bytes = kMaxFileBytes,
                                     const SizeBound& size = {});

// The first of `candidates` that exists; throws DataError listing them all.
std::filesystem::path first_existing(const std::vector<std::filesystem::path>& candidates);

}  // namespace compressm::data
