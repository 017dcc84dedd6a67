// Helpers shared by the `compressm` subcommands: exit codes, error reporting,
// JSON output (docs/design.md §7).
#pragma once

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "io/system_json.h"
#include "training/checkpoint_files.h"  // its constants only: no link to the training library

namespace compressm::cli {

// Exit status of the tool.
constexpr int kExitSuccess = 0;
constexpr int kExitInternal = 1;  // a bug or an environment failure, not the user's fault
constexpr int kExitBadInput = 2;  // bad input file, flag value or usage

// A flag value the parser accepted but the command rejects (e.g. --tol 1.5).
// The message names the flag; it maps to kExitBadInput.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Scripts grep stderr line by line, so an error is always exactly one line.
inline std::string single_line(std::string message) {
  for (char& c : message) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  while (!message.empty() && message.back() == ' ') message.pop_back();
  return message;
}

// The help of --set, the same for config, train and bench.
inline constexpr const char* kSetHelp =
    "Override one key, section.key=value or key=value, the value read as YAML (repeatable; applied in order)";

// `value` printed with a printf format for one double ("%.3f").
inline std::string format_double(const char* format, double value) {
  char text[64];
  std::snprintf(text, sizeof text, format, value);
  return text;
}

// A flag's number as the user would write it (%g: 0 for 0.0, 1.5, 1e-06).
inline std::string format_number(double value) { return format_double("%g", value); }

inline void report_error(const std::string& message) {
  std::cerr << "compressm: error: " << single_line(message) << std::endl;
}

inline void report_warning(const std::string& message) {
  std::cerr << "compressm: warning: " << single_line(message) << std::endl;
}

// Runs a core computation on the system read from `source`. The core rejects
// inputs it cannot handle with std::invalid_argument; that is the file's
// fault, so it becomes an InputError that names the file.
template <typename Computation>
auto blame_input(const std::string& source, Computation&& computation) -> decltype(computation()) {
  try {
    return computation();
  } catch (const std::invalid_argument& e) {
    throw io::InputError(source + ": " + e.what());
  }
}

// Whether `folder` is a compressm checkpoint folder: its manifest.json (a
// small JSON file) says so. Other programs' manifest.json files do not count.
inline bool is_checkpoint_folder(const std::filesystem::path& folder) {
  std::error_code ec;
  const std::filesystem::path manifest = folder / training::kManifestName;
  if (!std::filesystem::is_regular_file(manifest, ec) || std::filesystem::file_size(manifest, ec) > (1u << 20))
    return false;
  std::ifstream in(manifest);
  const nlohmann::json document = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  return document.is_object() && document.value("format", "") == training::kManifestFormat;
}

// An existing output `path` (`flag` names it) is replaced only if
// `read_as_kind` reads it without throwing (an earlier output of the same
// command); anything else there (a run's config.yaml or metrics.json, a
// dataset file, a folder, a pipe) is refused and left as it was.
inline void refuse_replacing_other_files(const std::string& flag, const std::string& path, const std::string& kind,
                                         const std::function<void(const std::string&)>& read_as_kind) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) return;
  if (fs::is_directory(path, ec)) throw UsageError(flag + " " + path + ": is a folder");
  if (!fs::is_regular_file(path, ec)) throw UsageError(flag + " " + path + ": exists and is not a regular file");
  try {
    read_as_kind(path);
  } catch (const std::exception&) {
    throw UsageError(flag + " " + path + ": exists and is not a " + kind + "; refusing to replace it");
  }
}

// Refuses an output path (`flag` names it) in a checkpoint folder or below
// one: writing there could replace a file of the checkpoint (e.g. `export
// --out RUN/final/model.bin`), and the checkpoint would no longer load.
inline void refuse_output_in_checkpoint(const std::string& flag, const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path at = fs::weakly_canonical(fs::absolute(path, ec), ec);
  if (ec) return;  // unreadable: the write itself reports it
  for (; !at.empty(); at = at.parent_path()) {
    if (fs::is_directory(at, ec) && is_checkpoint_folder(at))
      throw UsageError(flag + " " + path + ": inside the checkpoint folder " + at.string() +
                       "; refusing to write there (it could replace a file of the checkpoint)");
    if (at == at.parent_path()) break;
  }
}

// `--json` output: exactly one document on stdout. nlohmann prints doubles in
// the shortest form that parses back to the same value (full precision).
inline void print_json(const nlohmann::json& document) {
  std::cout << document.dump(2) << std::endl;
}

}  // namespace compressm::cli
