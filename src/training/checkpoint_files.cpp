#include "training/checkpoint_files.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "io/atomic_file.h"

namespace compressm::training {
namespace fs = std::filesystem;

namespace {

std::string hex64(uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));
  return text;
}

}  // namespace

uint64_t fnv1a_64(const void* data, size_t size) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < size; ++i) {
    hash ^= bytes[i];
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

std::string read_checkpoint_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CheckpointError(path.string() + ": cannot be read (missing file?)");
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

void write_synced_file(const fs::path& path, const std::string& contents) {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    out.flush();
    if (!out) throw std::runtime_error(path.string() + ": write failed");
  }
  io::sync_best_effort(path);
}

void write_manifest(const fs::path& folder) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(folder)) {
    if (entry.is_regular_file() && entry.path().filename() != kManifestName)
      names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  nlohmann::ordered_json files = nlohmann::ordered_json::array();
  for (const std::string& name : names) {
    const std::string bytes = read_checkpoint_file(folder / name);
    files.push_back({{"name", name},
                     {"size", bytes.size()},
                     {"fnv1a64", hex64(fnv1a_64(bytes.data(), bytes.size()))}});
  }
  nlohmann::ordered_json manifest;
  manifest["format"] = kManifestFormat;
  manifest["format_version"] = kCheckpointFormatVersion;
  manifest["files"] = files;
  write_synced_file(folder / kManifestName, manifest.dump(2) + "\n");
}

std::set<std::string> verify_manifest(const fs::path& folder) {
  const fs::path manifest_path = folder / kManifestName;
  if (!fs::is_directory(folder)) throw CheckpointError(folder.string() + ": not a checkpoint folder");
  if (!fs::exists(manifest_path))
    throw CheckpointError(manifest_path.string() + ": missing (not a checkpoint folder, or an unfinished one)");
  nlohmann::json manifest;
  std::set<std::string> listed;
  try {
    manifest = nlohmann::json::parse(read_checkpoint_file(manifest_path));
    if (manifest.at("format").get<std::string>() != kManifestFormat)
      throw CheckpointError(manifest_path.string() + ": not a compressm checkpoint manifest");
    const int version = manifest.at("format_version").get<int>();
    if (version != kCheckpointFormatVersion)
      throw CheckpointError(manifest_path.string() + ": format_version " + std::to_string(version) +
                            ", this build reads " + std::to_string(kCheckpointFormatVersion));
    for (const auto& file : manifest.at("files")) {
      const std::string name = file.at("name").get<std::string>();
      if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
        throw CheckpointError(manifest_path.string() + ": bad file name '" + name + "'");
      const fs::path path = folder / name;
      if (!fs::exists(path)) throw CheckpointError(path.string() + ": missing (listed in the manifest)");
      const nlohmann::json& size = file.at("size");
      if (!size.is_number_unsigned())
        throw CheckpointError(manifest_path.string() + ": the size of '" + name + "' is not a byte count (" +
                              size.dump() + ")");
      const uint64_t expected_size = size.get<uint64_t>();
      const std::string bytes = read_checkpoint_file(path);
      if (bytes.size() != expected_size)
        throw CheckpointError(path.string() + ": " + std::to_string(bytes.size()) + " bytes, the manifest says " +
                              std::to_string(expected_size) + " (truncated or corrupt checkpoint)");
      if (hex64(fnv1a_64(bytes.data(), bytes.size())) != file.at("fnv1a64").get<std::string>())
        throw CheckpointError(path.string() + ": checksum does not match the manifest (corrupt checkpoint)");
      listed.insert(name);
    }
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(manifest_path.string() + ": malformed manifest (" + e.what() + ")");
  }
  return listed;
}

void publish_folder(const fs::path& staged, const fs::path& destination) {
  io::sync_best_effort(staged);
  if (fs::exists(destination)) {
    // rename(2) cannot replace a non-empty directory: move the old one aside first.
    const fs::path old = destination.parent_path() / ("." + destination.filename().string() + ".old");
    fs::remove_all(old);
    fs::rename(destination, old);
    fs::rename(staged, destination);
    fs::remove_all(old);
  } else {
    fs::rename(staged, destination);
  }
  io::sync_best_effort(destination.parent_path());
}

}  // namespace compressm::training
