// Runs the `compressm` binary as a user would and captures what it printed.
#pragma once

#include <sys/wait.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "support/temp_dir.h"

namespace compressm::testing {

struct CliResult {
  int status = -1;  // exit status; -1 if killed by a signal
  std::string out;  // stdout
  std::string err;  // stderr
};

// POSIX single quoting: safe for any argument, including spaces and quotes.
inline std::string shell_quote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += (c == '\'') ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

// stdout and stderr go to separate temporary files, so a test can check
// that --json printed exactly one document and an error exactly one line.
inline CliResult run_cli(const std::vector<std::string>& args) {
  TempDir capture;
  const auto out = capture / "stdout.txt";
  const auto err = capture / "stderr.txt";
  std::string command = shell_quote(COMPRESSM_CLI_PATH);
  for (const auto& arg : args) command += " " + shell_quote(arg);
  command += " </dev/null >" + shell_quote(out.string()) + " 2>" + shell_quote(err.string());
  const int raw = std::system(command.c_str());
  CliResult result;
  result.status = (raw != -1 && WIFEXITED(raw)) ? WEXITSTATUS(raw) : -1;
  result.out = read_text(out);
  result.err = read_text(err);
  return result;
}

inline std::string golden_path(const std::string& name) {
  return std::string(COMPRESSM_SHARED_DIR) + "/golden/" + name;
}

}  // namespace compressm::testing
