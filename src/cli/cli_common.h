// Helpers shared by the `compressm` subcommands: exit codes, error reporting,
// JSON output (DESIGN.md §7).
#pragma once

#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "io/system_json.h"

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

// `--json` output: exactly one document on stdout. nlohmann prints doubles in
// the shortest form that parses back to the same value (full precision).
inline void print_json(const nlohmann::json& document) {
  std::cout << document.dump(2) << std::endl;
}

}  // namespace compressm::cli
