// `compressm compress --checkpoint DIR (--tol T | --rank R) --out DIR [--json]`:
// balanced truncation of a trained model after training (the post-training
// baseline of docs/design.md §2). Every block keeps the smallest rank holding `tol`
// of its HSV energy, or R states; D and all non-SSM weights are kept. OUT gets a
// final/ checkpoint, which `compressm eval` and `compressm export` read, and
// compress.json; it is not a run folder (no metrics, no optimiser state to resume).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <thread>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "io/atomic_file.h"
#include "linalg/concurrent.h"
#include "linalg/frequency_response.h"
#include "linalg/lru_parameters.h"
#include "linalg/lru_reduction.h"
#include "training/block_reduction.h"
#include "training/checkpoint.h"
#include "training/trained_model.h"

namespace compressm::cli {
namespace fs = std::filesystem;

CLI::App* add_compress_command(CLI::App& app, CompressOptions& options) {
  CLI::App* command = app.add_subcommand("compress", "Balanced truncation of a trained model (post-training)");
  command->add_option("--checkpoint", options.checkpoint_dir, "Checkpoint folder, or a run folder (its final model)")
      ->required();
  CLI::Option* tol = command->add_option("--tol", options.tol, "Fraction of each block's HSV energy to keep, in (0, 1]");
  CLI::Option* rank = command->add_option("--rank", options.rank, "States to keep per block (>= 1)");
  tol->excludes(rank);
  rank->excludes(tol);
  command->add_option("--out", options.out_dir,
                      "Folder to create for the compressed model: final/ and compress.json (must be empty or absent)")
      ->required();
  command->add_flag("--json", options.json, "Print the per-block result as JSON on stdout");
  return command;
}

namespace {

nlohmann::json compress_block(nn::LruLayer& layer, int64_t block, training::LayerCut& c) {
  const int64_t n = layer->state_dim();
  nlohmann::json row = {{"block", block}, {"old_dim", n}, {"new_dim", c.cut.rank},
                        {"kept_energy", c.cut.kept_energy}, {"discarded_energy", c.cut.discarded_energy},
                        {"hinf_bound", c.cut.hinf_bound}, {"hinf_error", 0.0}, {"guards", c.guards}};
  if (c.cut.rank >= n) return row;
  row["hinf_error"] = linalg::hinf_error(c.full, c.reduced);
  layer->load_parameters(c.parameters);
  return row;
}

// Every block's cut, the blocks side by side on the machine's cores.
std::vector<training::LayerCut> cut_blocks(const std::vector<nn::LruLayer>& layers, const CompressOptions& options) {
  std::vector<linalg::DiagonalSystem> systems = training::layer_systems(layers);
  std::vector<training::LayerCut> cuts(layers.size());
  const int jobs = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  linalg::run_concurrently(static_cast<Eigen::Index>(layers.size()), jobs, [&](Eigen::Index b) {
    const Eigen::Index n = systems[b].state_dim();
    const linalg::RankRule rule = options.tol ? linalg::RankRule::energy(*options.tol)
                                              : linalg::RankRule::fixed(std::min<Eigen::Index>(*options.rank, n));
    cuts[b] = training::balanced_cut(std::move(systems[b]), rule);
  });
  return cuts;
}

}  // namespace

int run_compress(const CompressOptions& options) {
  if (!options.tol && !options.rank) throw UsageError("one of --tol and --rank is required");
  if (options.tol && !(*options.tol > 0.0 && *options.tol <= 1.0))
    throw UsageError("--tol " + format_number(*options.tol) + ": must be in (0, 1] (the fraction of energy kept)");
  if (options.rank && *options.rank < 1) throw UsageError("--rank " + std::to_string(*options.rank) + ": must be >= 1");
  const fs::path out(options.out_dir);
  refuse_output_in_checkpoint("--out", options.out_dir);
  if (fs::exists(out) && !(fs::is_directory(out) && fs::is_empty(out)))
    throw UsageError("--out " + options.out_dir + ": exists and is not an empty folder (nothing is overwritten)");
  training::TrainedModel trained = training::load_trained_model(options.checkpoint_dir);

  nlohmann::json blocks = nlohmann::json::array();
  auto layers = trained.model->lru_layers();
  for (size_t b = 0; b < layers.size(); ++b)
    if (options.rank && *options.rank >= layers[b]->state_dim())
      report_warning("--rank " + std::to_string(*options.rank) + " is not below block " + std::to_string(b) +
                     "'s N = " + std::to_string(layers[b]->state_dim()) + ": that block is kept whole");
  std::vector<training::LayerCut> cuts =
      blame_input((trained.folder / "model.bin").string(), [&] { return cut_blocks(layers, options); });
  for (size_t b = 0; b < layers.size(); ++b)
    blocks.push_back(blame_input((trained.folder / "model.bin").string(),
                                 [&] { return compress_block(layers[b], static_cast<int64_t>(b), cuts[b]); }));

  training::CheckpointContents contents;
  contents.model_tensors = training::capture_model_tensors(trained.model);
  contents.state = {{"compressed_from", fs::absolute(trained.folder).string()},
                    {"tol", options.tol ? nlohmann::json(*options.tol) : nlohmann::json()},
                    {"rank", options.rank ? nlohmann::json(*options.rank) : nlohmann::json()},
                    {"state_dims", trained.model->state_dims()},
                    {"blocks", blocks}};
  // eval and export of the compressed model normalise inputs as the run did (scifar).
  if (const auto scaling = trained.contents.state.find("input_scaling"); scaling != trained.contents.state.end())
    contents.state["input_scaling"] = *scaling;
  contents.config_yaml = trained.contents.config_yaml;
  training::write_checkpoint(contents, training::final_folder(out));
  io::write_file_atomically(out / "compress.json", contents.state.dump(2) + "\n");

  if (options.json) {
    print_json({{"state_dims", trained.model->state_dims()}, {"blocks", blocks}});
  } else {
    for (const auto& row : blocks) {
      const double error = row["hinf_error"].get<double>(), bound = row["hinf_bound"].get<double>();
      const double energy = row["kept_energy"].get<double>() + row["discarded_energy"].get<double>();
      const char* relation = linalg::hinf_error_exceeds(error, bound, energy, 1.0 + 1e-6) ? "> (above!)" : "<=";
      char line[200];
      std::snprintf(line, sizeof line, "block %lld: N %lld -> %lld, H-inf error %.3g %s bound %.3g\n",
                    row["block"].get<long long>(), row["old_dim"].get<long long>(), row["new_dim"].get<long long>(),
                    error, relation, bound);
      std::cout << line;
      for (const auto& guard : row["guards"]) std::cout << "  guard " << guard.get<std::string>() << "\n";
    }
    std::cout << "compressed model: " << training::final_folder(out).string() << "\n";
  }
  return kExitSuccess;
}

}  // namespace compressm::cli
