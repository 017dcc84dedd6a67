// The check the runtime's readers (model files, sequence files) make before
// they open a path. Header-only, no dependency beyond the standard library.
#pragma once

#include <filesystem>
#include <string>

namespace compressm::runtime {

// Why `path` cannot be read as a `kind` ("model file", ...): a folder, not a
// regular file (a pipe or a device), or missing; empty for a regular file.
inline std::string input_file_problem(const std::filesystem::path& path, const std::string& kind) {
  std::error_code error;
  if (std::filesystem::is_regular_file(path, error)) return "";
  if (std::filesystem::is_directory(path, error)) return "a folder, not a " + kind;
  if (std::filesystem::exists(path, error)) return "not a regular file (a pipe or a device?)";
  return "no such file";
}

}  // namespace compressm::runtime
