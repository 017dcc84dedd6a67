// A trained model read back from a checkpoint, at the sizes it was saved with:
// a model reduced during training (or by `compressm compress`) has fewer states
// per block than its config's model.state_dim, so the architecture is read from
// the tensors in model.bin (encoder / embedding, blocks.<b>.lru.nu_log, head).
#pragma once

#include <torch/types.h>

#include <filesystem>
#include <vector>

#include "config/config.h"
#include "nn/lru_model.h"
#include "training/checkpoint.h"

namespace compressm::training {

struct TrainedModel {
  std::filesystem::path folder;    // the checkpoint folder that was read
  config::Config config;           // its config.yaml
  CheckpointContents contents;     // everything in the folder
  nn::LruModel model{nullptr};     // rebuilt and restored, in eval mode
};

// Model options for `config` (training.precision included) on a dataset with
// `input_dim` channels and `num_classes` classes; `state_dims` (one per block, empty = config's
// state_dim) for a reduced model.
nn::LruModelOptions model_options(const config::Config& config, int64_t input_dim, int64_t num_classes,
                                  std::vector<int64_t> state_dims = {});

// The device `config.device` names. Throws std::invalid_argument for cuda when
// this LibTorch has no CUDA or no GPU is visible.
torch::Device training_device(const config::Config& config);

// The model options a checkpoint's tensors describe (input width or
// vocabulary, classes, N per block), checked against its config. Throws
// CheckpointError naming model.bin.
nn::LruModelOptions saved_model_options(const config::Config& config, const CheckpointContents& contents,
                                        const std::filesystem::path& folder);

// `dir` is a checkpoint folder or a run folder (its final model). Throws
// CheckpointError (damaged files) or config::ConfigError (bad config.yaml).
TrainedModel load_trained_model(const std::filesystem::path& dir);

}  // namespace compressm::training
