// `compressm config --config FILE [--set section.key=value ...]`: the effective
// config (file, then overrides in order, validated) as JSON on stdout, with the
// YAML's nesting (docs/design.md §3, §7).
#include <algorithm>
#include <iostream>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "config/config.h"
#include "data/dataset.h"

namespace compressm::cli {

CLI::App* add_config_command(CLI::App& app, ConfigOptions& options) {
  CLI::App* command =
      app.add_subcommand("config", "Print the effective config (file + --set overrides) as JSON");
  command->add_option("--config", options.config_path, "YAML config file (docs/design.md section 3)")
      ->required();
  command
      ->add_option("--set", options.overrides, kSetHelp)
      ->allow_extra_args(false);  // one value per --set, so `--set a=1 --set b=2`
  return command;
}

int run_config(const ConfigOptions& options) {
  std::vector<std::string> notes;
  const config::Config config = config::load_config(options.config_path, options.overrides, &notes);
  for (const std::string& note : notes) report_warning(options.config_path + ": " + note);
  const std::vector<std::string>& readable = data::supported_names();
  const std::string dataset(config::to_string(config.dataset));
  if (std::find(readable.begin(), readable.end(), dataset) == readable.end())
    report_warning(options.config_path + ": dataset " + dataset +
                   " is a valid config, but train, eval and bench cannot read it yet");
  // ordered_json keeps the file's key order (print_json would sort the keys).
  std::cout << config::to_json(config).dump(2) << std::endl;
  return kExitSuccess;
}

}  // namespace compressm::cli
