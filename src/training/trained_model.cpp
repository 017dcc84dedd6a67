#include "training/trained_model.h"

#include <torch/torch.h>

#include <map>
#include <stdexcept>
#include <string>

namespace compressm::training {
namespace fs = std::filesystem;

nn::LruModelOptions model_options(const config::Config& config, int64_t input_dim, int64_t num_classes,
                                  std::vector<int64_t> state_dims) {
  nn::LruModelOptions o;
  o.input_dim = input_dim;
  o.num_classes = num_classes;
  o.num_blocks = config.model.num_blocks;
  o.state_dim = config.model.state_dim;
  o.block_state_dims = std::move(state_dims);
  o.hidden_dim = config.model.hidden_dim;
  o.drop_rate = config.model.drop_rate;
  o.init.r_min = config.model.r_min;
  o.init.r_max = config.model.r_max;
  o.init.max_phase = config.model.max_phase;
  switch (config.training.precision) {
    case config::Precision::kFp32: o.precision = nn::Precision::kFp32; break;
    case config::Precision::kTf32: o.precision = nn::Precision::kTf32; break;
    case config::Precision::kBf16: o.precision = nn::Precision::kBf16; break;
  }
  switch (config.training.block_ops) {
    case config::BlockOps::kAuto: o.block_ops = nn::BlockOps::kAuto; break;
    case config::BlockOps::kFused: o.block_ops = nn::BlockOps::kFused; break;
    case config::BlockOps::kComposed: o.block_ops = nn::BlockOps::kComposed; break;
  }
  return o;
}

torch::Device training_device(const config::Config& config) {
  if (config.device == config::Device::kCpu) return torch::kCPU;
  if (!torch::cuda::is_available())
    throw std::invalid_argument(
        "device: cuda: no CUDA device available to this build of compressm (CPU-only LibTorch or no GPU)");
  return torch::Device(torch::kCUDA, 0);
}

nn::LruModelOptions saved_model_options(const config::Config& config, const CheckpointContents& contents,
                                        const fs::path& folder) {
  const std::string source = (folder / "model.bin").string();
  std::map<std::string, torch::Tensor> saved(contents.model_tensors.begin(), contents.model_tensors.end());
  auto tensor = [&](const std::string& name, int64_t rank) -> const torch::Tensor& {
    const auto found = saved.find(name);
    if (found == saved.end()) throw CheckpointError(source + ": no tensor '" + name + "'");
    if (found->second.dim() != rank)
      throw CheckpointError(source + ": tensor '" + name + "' has rank " + std::to_string(found->second.dim()) +
                            ", expected " + std::to_string(rank));
    return found->second;
  };
  const int64_t hidden = config.model.hidden_dim;
  const torch::Tensor& head = tensor("head.weight", 2);
  if (head.size(1) != hidden)
    throw CheckpointError(source + ": head.weight has width " + std::to_string(head.size(1)) +
                          ", the config's model.hidden_dim is " + std::to_string(hidden));
  nn::LruModelOptions o = model_options(config, 1, head.size(0));
  if (saved.count("embedding.weight")) {
    o.vocab_size = tensor("embedding.weight", 2).size(0);
  } else {
    o.input_dim = tensor("encoder.weight", 2).size(1);
  }
  for (int64_t b = 0; b < o.num_blocks; ++b) {
    const int64_t n = tensor("blocks." + std::to_string(b) + ".lru.nu_log", 1).size(0);
    if (n < 1) throw CheckpointError(source + ": block " + std::to_string(b) + " has no states");
    o.block_state_dims.push_back(n);
  }
  return o;
}

TrainedModel load_trained_model(const fs::path& dir) {
  TrainedModel t;
  t.folder = resolve_checkpoint(dir);
  t.contents = read_checkpoint(t.folder);
  t.config = config::parse_config(t.contents.config_yaml, (t.folder / "config.yaml").string());
  t.model = nn::LruModel(saved_model_options(t.config, t.contents, t.folder));
  restore_model(t.model, t.contents, t.folder);
  t.model->eval();
  return t;
}

}  // namespace compressm::training
