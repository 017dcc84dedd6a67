// `compressm train --config FILE [--set k=v ...] --out DIR [--resume DIR]`:
// trains an LRU model and keeps a run folder (src/training/trainer.h).
#include <unistd.h>

#include <filesystem>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "config/config.h"
#include "data/dataset.h"
#include "io/atomic_file.h"
#include "training/checkpoint.h"
#include "training/runtime_setup.h"
#include "training/trained_model.h"
#include "training/trainer.h"

namespace compressm::cli {
namespace fs = std::filesystem;

namespace {

bool same_folder(const fs::path& a, const fs::path& b) {
  return fs::weakly_canonical(a) == fs::weakly_canonical(b);
}

// The effective config of a run: --config + --set, or (when resuming without
// --config) the run's own config.yaml + --set; a resumed run must keep the
// config it started with, or its metrics would not continue the same run.
config::Config run_config_for(const TrainOptions& options, std::vector<std::string>& notes) {
  if (options.resume_dir.empty()) {
    if (options.config_path.empty()) throw UsageError("--config is required (unless --resume is given)");
    return config::load_config(options.config_path, options.overrides, &notes);
  }
  const fs::path saved_path = fs::path(options.resume_dir) / "config.yaml";
  if (!fs::exists(saved_path)) throw UsageError("--resume " + options.resume_dir + ": not a run folder (no config.yaml)");
  const config::Config saved = config::load_config(saved_path.string());
  const std::string source = options.config_path.empty() ? saved_path.string() : options.config_path;
  const config::Config wanted = config::load_config(source, options.overrides, &notes);
  if (wanted != saved)
    throw UsageError("--resume " + options.resume_dir + ": the config (" + source +
                     " with --set) differs from the run's config.yaml");
  return saved;
}

data::Splits load_splits(const config::Config& config) {
  try {
    return data::load_dataset(std::string(config::to_string(config.dataset)), config.data_dir,
                              static_cast<uint64_t>(config.seed));
  } catch (const data::DataError& e) {
    throw io::InputError(e.what());
  }
}

}  // namespace

CLI::App* add_train_command(CLI::App& app, TrainOptions& options) {
  CLI::App* command = app.add_subcommand("train", "Train an LRU model; keeps a run folder with checkpoints");
  command->add_option("--config", options.config_path, "YAML config file (DESIGN.md section 3)");
  command->add_option("--set", options.overrides, "Override one key, section.key=value (repeatable)")
      ->allow_extra_args(false);
  command->add_option("--out", options.out_dir, "Run folder to create (must be empty or absent)");
  command->add_option("--resume", options.resume_dir,
                      "Continue the run in this folder from its latest checkpoint");
  return command;
}

int run_train(const TrainOptions& options) {
  if (options.out_dir.empty() && options.resume_dir.empty()) throw UsageError("--out is required");
  if (!options.out_dir.empty() && !options.resume_dir.empty() && !same_folder(options.out_dir, options.resume_dir))
    throw UsageError("--out and --resume name different folders (a run resumes in its own folder)");
  std::vector<std::string> notes;
  const config::Config config = run_config_for(options, notes);
  for (const std::string& note : notes) report_warning(note);
  try {
    training::training_device(config);  // device: cuda without a GPU fails here, before any file is made
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  if (config.training.precision == config::Precision::kTf32)
    report_warning("training.precision tf32 only changes CUDA GEMMs; on the CPU this trains in fp32");
  training::configure_runtime(config.threads);

  const fs::path run_dir = options.resume_dir.empty() ? fs::path(options.out_dir) : fs::path(options.resume_dir);
  fs::path resume_from;
  if (options.resume_dir.empty()) {
    if (fs::exists(run_dir) && (!fs::is_directory(run_dir) || !fs::is_empty(run_dir)))
      throw UsageError("--out " + options.out_dir + ": exists and is not empty (use --resume to continue a run)");
    fs::create_directories(run_dir);
  } else {
    resume_from = training::latest_checkpoint(run_dir);
  }

  const data::Splits splits = load_splits(config);
  training::TrainerOptions trainer_options;
  trainer_options.run_dir = run_dir;
  trainer_options.log = &std::cerr;
  trainer_options.log_is_terminal = ::isatty(STDERR_FILENO) != 0;
  training::Trainer trainer(config, splits, trainer_options);
  if (!resume_from.empty()) {
    trainer.restore(resume_from);
    std::cerr << "compressm: resuming " << run_dir.string() << " at step " << trainer.steps_done() << " ("
              << resume_from.filename().string() << ")\n";
    if (trainer.steps_done() >= config.training.num_steps && resume_from == training::final_folder(run_dir)) {
      std::cerr << "compressm: the run is already finished\n";
      return kExitSuccess;
    }
  } else {
    io::write_file_atomically(run_dir / "config.yaml", config::to_yaml(config));
  }
  trainer.run();
  return kExitSuccess;
}

}  // namespace compressm::cli
