// Crash-safe file replacement.
#pragma once

#include <filesystem>
#include <string>

namespace compressm::io {

// Writes `contents` to a temporary file in the directory of `path`, flushes it
// to disk and renames it over `path`. rename(2) within one directory is atomic,
// so readers see either the old file or the complete new one, never a truncated
// file, and a failure leaves no temporary file behind. Throws InputError naming
// `path` if the destination cannot be written (missing directory, permissions,
// a directory in the way, full disk).
void write_file_atomically(const std::filesystem::path& path, const std::string& contents);

// fsync of a file or folder, best effort (durability, not correctness: a
// path that cannot be opened, or a file system that cannot sync it, is left).
void sync_best_effort(const std::filesystem::path& path);

}  // namespace compressm::io
