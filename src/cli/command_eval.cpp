// `compressm eval --checkpoint DIR [--data-dir D] [--json]`: test accuracy of a
// checkpoint (a checkpoint folder, or a run folder meaning its final model;
// docs/design.md §7) on the dataset of its run, read from the run config's
// data_dir unless --data-dir names another folder (data moved, or a relative
// data_dir run from elsewhere).
#include <cstdio>
#include <iostream>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "config/config.h"
#include "data/dataset.h"
#include "training/checkpoint.h"
#include "training/model_evaluation.h"
#include "training/runtime_setup.h"
#include "training/trained_model.h"

namespace compressm::cli {
namespace fs = std::filesystem;

CLI::App* add_eval_command(CLI::App& app, EvalOptions& options) {
  CLI::App* command = app.add_subcommand("eval", "Test accuracy of a trained model");
  command->add_option("--checkpoint", options.checkpoint_dir, "Checkpoint folder, or a run folder (its final model)")
      ->required();
  command->add_option("--data-dir", options.data_dir, "Dataset folder (default: the run config's data_dir)");
  command->add_flag("--json", options.json, R"(Print {"accuracy": a, "n": count, "loss": mean cross-entropy} on stdout)");
  return command;
}

int run_eval(const EvalOptions& options) {
  training::TrainedModel trained = training::load_trained_model(options.checkpoint_dir);
  const config::Config& config = trained.config;
  const fs::path& folder = trained.folder;
  training::configure_runtime(config.threads);
  data::Dataset test;
  try {
    test = data::load_test_split(std::string(config::to_string(config.dataset)),
                                 options.data_dir.empty() ? config.data_dir : options.data_dir,
                                 static_cast<uint64_t>(config.seed));
  } catch (const data::DataError& e) {
    throw io::InputError(e.what());
  }
  training::apply_saved_input_scaling(trained.contents, folder, {&test});  // the statistics the model saw
  if ((trained.model->options().vocab_size == 0 && trained.model->options().input_dim != test.channels) ||
      trained.model->options().num_classes != test.num_classes)
    throw io::InputError((folder / "model.bin").string() + ": the model does not fit dataset " +
                         std::string(config::to_string(config.dataset)) + " (input width or class count differs)");
  nn::LruModel& model = trained.model;
  const training::Accuracy result = training::evaluate_accuracy(model, test, config.training.batch_size);
  if (options.json) {
    print_json({{"accuracy", result.accuracy}, {"n", result.count}, {"loss", result.loss}});
  } else {
    char line[128];
    std::snprintf(line, sizeof line, "test accuracy %.4f%% (%lld of %lld), loss %.6f", 100 * result.accuracy,
                  static_cast<long long>(result.correct), static_cast<long long>(result.count), result.loss);
    std::cout << line << "  " << folder.string() << "\n";
  }
  return kExitSuccess;
}

}  // namespace compressm::cli
