// `compressm report RUN_DIR [RUN_DIR ...] --out DIR`: an HTML page with SVG
// plots and a Markdown table comparing runs (src/report/run_report.h).
#include <iostream>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "report/run_report.h"

namespace compressm::cli {
namespace fs = std::filesystem;

CLI::App* add_report_command(CLI::App& app, ReportOptions& options) {
  CLI::App* command = app.add_subcommand("report", "HTML report (plots and a table) comparing training runs");
  command->add_option("runs", options.run_dirs, "Run folders (the first is the speed-up baseline)")->required();
  command->add_option("--out", options.out_dir, "Folder for index.html, summary.md and the plots")->required();
  return command;
}

int run_report(const ReportOptions& options) {
  std::vector<report::RunSummary> runs;
  for (const std::string& dir : options.run_dirs) runs.push_back(report::read_run(dir));
  const fs::path out(options.out_dir);
  refuse_output_in_checkpoint("--out", options.out_dir);
  if (fs::exists(out) && !fs::is_directory(out)) throw UsageError("--out " + options.out_dir + ": not a folder");
  const fs::path page = report::write_report(runs, out);
  std::cout << report::markdown_summary(runs) << "\nreport: " << page.string() << "\n";
  return kExitSuccess;
}

}  // namespace compressm::cli
