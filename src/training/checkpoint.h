// Checkpoints of a training run (one folder each):
//
//   model.bin      parameters and buffers (BatchNorm running stats) by name
//   optimizer.bin  AdamW moments and step per parameter name, and the state of
//                  LibTorch's default CPU generator (dropout)
//   state.json     step, loader position, run history, elapsed time
//   rollback.bin   only while a pragmatic reduction awaits its check: the
//                  model and optimizer tensors from before it ("model/<name>",
//                  "optimizer/<name>")
//   config.yaml    the effective config (the model is rebuilt from it)
//   manifest.json  size and FNV-1a of each file above (checkpoint_files.h)
//
// The .bin files are a plain tensor list: magic "CSMTNS01", u64 count, then
// per tensor: u32 name length, name, u8 dtype (0 f32, 1 f64, 2 i64, 3 u8),
// u32 rank, i64 sizes[rank], u64 byte count, bytes (little-endian host order).
#pragma once

#include <torch/optim/adamw.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "data/dataset.h"
#include "nn/lru_model.h"
#include "nn/lru_optimizer.h"
#include "training/checkpoint_files.h"

namespace compressm::training {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// Everything a checkpoint holds, detached from the live model: tensors are
// CPU clones, so a writer thread can save them while training goes on.
struct CheckpointContents {
  NamedTensors model_tensors;
  NamedTensors optimizer_tensors;  // "<param>/exp_avg", "<param>/exp_avg_sq", "<param>/step", "rng/cpu"
  nlohmann::json state;
  std::string config_yaml;
  NamedTensors rollback_tensors;   // empty: no rollback.bin
};

// The per-channel input statistics the run normalised its data with, saved
// in state.json as "input_scaling": {"mean": [...], "std": [...]} (datasets
// with such statistics: scifar). eval, resume and export use them rather than
// the statistics of the training files found now, which another data folder
// changes. Applies them to every dataset given; no-op for checkpoints without
// them. Throws CheckpointError naming state.json when they are malformed.
void apply_saved_input_scaling(const CheckpointContents& contents, const std::filesystem::path& folder,
                               const std::vector<data::Dataset*>& datasets);

// A checkpoint's model and optimizer tensors as one list with "model/" and
// "optimizer/" prefixes (rollback.bin), and back.
NamedTensors pack_snapshot(const CheckpointContents& snapshot);
CheckpointContents unpack_snapshot(const NamedTensors& packed);

// CPU clones of the model's parameters and buffers, by name (model.bin).
NamedTensors capture_model_tensors(const nn::LruModel& model);

// Clones the model, the optimizer state and the default CPU generator state.
CheckpointContents capture_checkpoint(const nn::LruModel& model, const torch::optim::AdamW& optimizer,
                                      nlohmann::json state, std::string config_yaml);

// Writes `contents` into `destination` through a staging folder beside it,
// manifest last, then renames it into place.
void write_checkpoint(const CheckpointContents& contents, const std::filesystem::path& destination);

// Verifies the manifest and reads the folder. Throws CheckpointError naming
// the file at fault.
CheckpointContents read_checkpoint(const std::filesystem::path& folder);

// Copies the checkpoint's parameters and buffers into `model` (same names and
// shapes). Throws CheckpointError naming `folder`'s model.bin.
void restore_model(nn::LruModel& model, const CheckpointContents& contents, const std::filesystem::path& folder);

// Restores AdamW moments/steps per parameter and the default generator state.
// With restore_generator = false the generator is left as it is (a rollback
// does not replay dropout draws).
void restore_optimizer(torch::optim::AdamW& optimizer, const nn::LruModel& model,
                       const CheckpointContents& contents, const std::filesystem::path& folder,
                       bool restore_generator = true);

// Folder names inside a run folder.
std::filesystem::path checkpoint_folder(const std::filesystem::path& run_dir, int64_t step);  // checkpoints/step_000500
std::filesystem::path final_folder(const std::filesystem::path& run_dir);                     // final

// The newest checkpoint of a run folder: final/ if present, else the highest
// checkpoints/step_*. Throws CheckpointError if there is none.
std::filesystem::path latest_checkpoint(const std::filesystem::path& run_dir);

// Whether the run folder holds a checkpoint to resume from (final/ or a
// checkpoints/step_NNNNNN folder; staging folders do not count).
bool has_checkpoint(const std::filesystem::path& run_dir);

// The newest checkpoint of a run folder older than `checkpoint` (final/ is
// the newest of all), or an empty path if there is none.
std::filesystem::path checkpoint_before(const std::filesystem::path& run_dir, const std::filesystem::path& checkpoint);

// `--checkpoint DIR` (docs/design.md §7): a checkpoint folder itself, or a run
// folder meaning its final model. Throws CheckpointError.
std::filesystem::path resolve_checkpoint(const std::filesystem::path& dir);

// The key under which AdamW keeps a parameter's state (nn/lru_optimizer.h).
using nn::optimizer_key;

// Tensor list (de)serialisation; exposed for the tests.
std::string encode_tensors(const NamedTensors& tensors);
NamedTensors decode_tensors(const std::string& bytes, const std::string& source);

}  // namespace compressm::training
