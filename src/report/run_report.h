// `compressm report`: reads run folders (metrics.json, config.yaml) and
// writes a self-contained HTML page with SVG plots and a Markdown summary:
//   - the HSV spectrum of each block at each reduction (log scale),
//   - state dimension over training steps, all runs,
//   - validation accuracy against wall-clock time, all runs,
//   - a table: accuracy, final dims, training time, speed-up against the
//     first run; and, when runs differ only by a "_seedN" suffix, the same
//     per group with mean and spread.
// No LibTorch: the report reads files only.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace compressm::report {

// What the report needs from one run folder.
struct RunSummary {
  std::string label;                // the folder's name
  std::filesystem::path folder;
  nlohmann::json metrics;           // metrics.json
  std::string dataset;              // from config.yaml ("" if unknown)
};

// Reads `folder`/metrics.json. Throws io::InputError naming the file when it
// is missing, malformed or lacks the keys the report uses.
RunSummary read_run(const std::filesystem::path& folder);

// The Markdown tables (per run, and per seed group when there are groups).
std::string markdown_summary(const std::vector<RunSummary>& runs);

// Writes index.html, summary.md and the .svg plots into `out` (created).
// Returns the path of index.html.
std::filesystem::path write_report(const std::vector<RunSummary>& runs, const std::filesystem::path& out);

// "sfmnist_tol_seed2" -> "sfmnist_tol"; names without the suffix are their own group.
std::string seed_group(const std::string& label);

}  // namespace compressm::report
