// `compressm hsv --system FILE [--json]`: Hankel singular values of a system file.
#include <cstdio>
#include <iostream>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "io/system_json.h"
#include "linalg/hankel.h"
#include "linalg/lru_reduction.h"

namespace compressm::cli {
namespace {

// Table of index, HSV and the cumulative fraction of plain HSV energy
// sum_{i<=k} s_i / sum s_i: the quantity `reduce --tol` thresholds.
void print_table(const std::string& path, const linalg::VectorXd& hsv) {
  std::cout << "Hankel singular values of " << path << " (N = " << hsv.size() << ")\n";
  std::cout << "  index                    hsv  cumulative energy\n";
  const double total = hsv.sum();
  double running = 0.0;
  char line[128];
  for (Eigen::Index i = 0; i < hsv.size(); ++i) {
    running += hsv(i);
    // An all-zero spectrum has no energy to split; report it as fully kept.
    const double fraction = total > 0.0 ? running / total : 1.0;
    std::snprintf(line, sizeof line, "  %5ld  %21.15g  %17.12f\n", static_cast<long>(i + 1),
                  hsv(i), fraction);
    std::cout << line;
  }
}

}  // namespace

CLI::App* add_hsv_command(CLI::App& app, HsvOptions& options) {
  CLI::App* command = app.add_subcommand("hsv", "Print the Hankel singular values of a system");
  command->add_option("--system", options.system_path, "System JSON file (docs/design.md §4)")
      ->required();
  command->add_flag("--json", options.json, R"(Print {"hsv": [...], "n": N} on stdout)");
  return command;
}

int run_hsv(const HsvOptions& options) {
  const linalg::DiagonalSystem system = io::read_system_json(options.system_path);
  const linalg::VectorXd hsv =
      blame_input(options.system_path, [&] { return linalg::hankel_singular_values(system); });
  if (const auto guard = linalg::ill_conditioned_guard(system, hsv))
    report_warning(options.system_path + ": the HSVs are unreliable: " + guard->detail);
  if (options.json) {
    print_json({{"hsv", std::vector<double>(hsv.data(), hsv.data() + hsv.size())},
                {"n", system.state_dim()}});
  } else {
    print_table(options.system_path, hsv);
  }
  return kExitSuccess;
}

}  // namespace compressm::cli
