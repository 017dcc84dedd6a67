// `compressm export --checkpoint DIR --out FILE.safetensors`: a trained (possibly
// compressed) model as a safetensors file for the standalone runtime
// (src/runtime/model_file.h). The file is checked by the runtime's own loader
// before it is written, and written atomically.
#include <iostream>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "config/config.h"
#include "data/dataset.h"
#include "export/model_export.h"
#include "io/atomic_file.h"
#include "runtime/safetensors.h"
#include "training/trained_model.h"

namespace compressm::cli {

CLI::App* add_export_command(CLI::App& app, ExportOptions& options) {
  CLI::App* command = app.add_subcommand("export", "Write a trained model as a safetensors file for the runtime");
  command->add_option("--checkpoint", options.checkpoint_dir, "Checkpoint folder, or a run folder (its final model)")
      ->required();
  command->add_option("--out", options.out_path, "Model file to write (.safetensors)")->required();
  return command;
}

int run_export(const ExportOptions& options) {
  refuse_output_in_checkpoint("--out", options.out_path);
  // An earlier export is replaced; anything else there (even a JSON file that starts like one) is refused.
  refuse_replacing_other_files("--out", options.out_path, "safetensors model file",
                               [](const std::string& path) { runtime::read_safetensors(path); });
  const training::TrainedModel trained = training::load_trained_model(options.checkpoint_dir);
  const config::Config& config = trained.config;
  runtime::TensorFile file = exporting::model_tensor_file(
      trained.model, trained.contents.config_yaml, std::string(config::to_string(config.dataset)), config.seed);
  file.metadata["data_dir"] = config.data_dir;  // `classify --dataset` reads the same folder by default
  // The runtime computes in float32: `classify` says so for a model trained in bf16 or tf32.
  file.metadata["precision"] = std::string(config::to_string(config.training.precision));
  const int64_t seq_len = data::sequence_length(std::string(config::to_string(config.dataset)));
  if (seq_len > 0) file.metadata["seq_len"] = std::to_string(seq_len);  // `classify --input` checks it
  // The per-channel statistics the inputs were normalised with (scifar): `classify --dataset` uses them, and
  // they are what a caller of `classify --input` applies to its pixels.
  const auto scaling = trained.contents.state.find("input_scaling");
  if (scaling != trained.contents.state.end() && !scaling->is_null()) file.metadata["input_scaling"] = scaling->dump();
  std::string bytes;
  try {
    bytes = exporting::encode_model_file(file, trained.folder.string());
  } catch (const runtime::ModelFileError& e) {
    throw io::InputError(std::string(e.what()) + " (not exported)");
  }
  io::write_file_atomically(options.out_path, bytes);
  std::string dims;
  for (int64_t n : trained.model->state_dims()) dims += (dims.empty() ? "" : ", ") + std::to_string(n);
  std::cerr << "compressm: exported " << trained.folder.string() << " (N per block: " << dims << ") to "
            << options.out_path << " (" << bytes.size() << " bytes)" << std::endl;
  return kExitSuccess;
}

}  // namespace compressm::cli
