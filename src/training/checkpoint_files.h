// The on-disk side of a checkpoint folder, without LibTorch: a manifest of
// every file with its size and FNV-1a checksum, and publication of a finished
// folder by rename so a reader never sees a half-written checkpoint.
//
//   manifest.json  {"format": "compressm-checkpoint", "format_version": 1,
//                   "files": [{"name": "model.bin", "size": 1234, "fnv1a64": "9f..."}, ...]}
#pragma once

#include <cstdint>
#include <filesystem>
#include <set>
#include <string>

#include "io/system_json.h"

namespace compressm::training {

constexpr int kCheckpointFormatVersion = 1;
// The manifest's file name and its "format" value: what makes a folder a
// checkpoint folder (also for the CLI's output checks, which run without
// this library).
constexpr const char* kManifestName = "manifest.json";
constexpr const char* kManifestFormat = "compressm-checkpoint";

// A missing, truncated, corrupt or incompatible checkpoint. One line that
// starts with the file at fault. An io::InputError, so the CLI exits 2.
class CheckpointError : public io::InputError {
 public:
  using io::InputError::InputError;
};

// 64-bit FNV-1a of `size` bytes (offset basis 0xcbf29ce484222325, prime 0x100000001b3).
uint64_t fnv1a_64(const void* data, size_t size);

// Reads a whole file; throws CheckpointError naming it if it cannot be read.
std::string read_checkpoint_file(const std::filesystem::path& path);

// Writes `contents` to `path` and fsyncs it. Throws std::runtime_error.
void write_synced_file(const std::filesystem::path& path, const std::string& contents);

// Lists every regular file of `folder` (but the manifest) in manifest.json.
void write_manifest(const std::filesystem::path& folder);

// Checks the manifest of `folder`: format and version, and that every listed
// file exists with its size and checksum. Returns the names it lists. Throws
// CheckpointError naming the first file at fault.
std::set<std::string> verify_manifest(const std::filesystem::path& folder);

// Moves the complete folder `staged` to `destination` (same file system),
// replacing an older folder there. rename(2) makes the new folder appear whole.
void publish_folder(const std::filesystem::path& staged, const std::filesystem::path& destination);

}  // namespace compressm::training
