#include "training/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <mutex>
#include <stdexcept>

#include "data/input_scaling_json.h"

namespace compressm::training {
namespace fs = std::filesystem;

namespace {

constexpr char kMagic[8] = {'C', 'S', 'M', 'T', 'N', 'S', '0', '1'};

int dtype_code(torch::ScalarType type) {
  switch (type) {
    case torch::kFloat: return 0;
    case torch::kDouble: return 1;
    case torch::kLong: return 2;
    case torch::kByte: return 3;
    default: throw std::logic_error("checkpoint: unsupported tensor dtype");
  }
}

torch::ScalarType dtype_of(int code) {
  switch (code) {
    case 0: return torch::kFloat;
    case 1: return torch::kDouble;
    case 2: return torch::kLong;
    case 3: return torch::kByte;
    default: throw std::invalid_argument("unknown dtype code " + std::to_string(code));
  }
}

template <typename T>
void put(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof value);
}

// Bounds-checked reader over the bytes of a tensor file.
class Reader {
 public:
  Reader(const std::string& bytes, const std::string& source) : bytes_(bytes), source_(source) {}
  template <typename T>
  T get() {
    T value;
    std::memcpy(&value, take(sizeof value), sizeof value);
    return value;
  }
  const char* take(size_t size) {
    if (size > bytes_.size() - offset_) throw CheckpointError(source_ + ": truncated tensor data");
    const char* at = bytes_.data() + offset_;
    offset_ += size;
    return at;
  }
  bool done() const { return offset_ == bytes_.size(); }

 private:
  const std::string& bytes_;
  const std::string& source_;
  size_t offset_ = 0;
};

}  // namespace

std::string encode_tensors(const NamedTensors& tensors) {
  std::string out(kMagic, sizeof kMagic);
  put<uint64_t>(out, tensors.size());
  for (const auto& [name, tensor] : tensors) {
    const torch::Tensor t = tensor.contiguous();
    put<uint32_t>(out, static_cast<uint32_t>(name.size()));
    out += name;
    put<uint8_t>(out, static_cast<uint8_t>(dtype_code(t.scalar_type())));
    put<uint32_t>(out, static_cast<uint32_t>(t.dim()));
    for (int64_t size : t.sizes()) put<int64_t>(out, size);
    const uint64_t nbytes = t.numel() * t.element_size();
    put<uint64_t>(out, nbytes);
    out.append(static_cast<const char*>(t.data_ptr()), nbytes);
  }
  return out;
}

NamedTensors decode_tensors(const std::string& bytes, const std::string& source) {
  Reader in(bytes, source);
  if (std::memcmp(in.take(sizeof kMagic), kMagic, sizeof kMagic) != 0)
    throw CheckpointError(source + ": not a compressm tensor file");
  const uint64_t count = in.get<uint64_t>();
  NamedTensors tensors;
  for (uint64_t i = 0; i < count; ++i) {
    const uint32_t name_size = in.get<uint32_t>();
    std::string name(in.take(name_size), name_size);
    torch::ScalarType type;
    try {
      type = dtype_of(in.get<uint8_t>());
    } catch (const std::invalid_argument& e) {
      throw CheckpointError(source + ": tensor '" + name + "': " + e.what());
    }
    const uint32_t rank = in.get<uint32_t>();
    if (rank > 8) throw CheckpointError(source + ": tensor '" + name + "': rank " + std::to_string(rank));
    std::vector<int64_t> sizes(rank);
    // The shape's product is checked against the bytes the file holds before
    // anything that size is allocated (and cannot overflow on the way).
    uint64_t numel = 1;
    for (auto& size : sizes) {
      size = in.get<int64_t>();
      if (size < 0 || size > (int64_t{1} << 40)) throw CheckpointError(source + ": tensor '" + name + "': bad size");
      if (size != 0 && numel > bytes.size() / static_cast<uint64_t>(size)) numel = bytes.size() + 1;  // too many
      else numel *= static_cast<uint64_t>(size);
    }
    const uint64_t nbytes = in.get<uint64_t>();
    if (numel > bytes.size() || nbytes != numel * c10::elementSize(type))
      throw CheckpointError(source + ": tensor '" + name + "': byte count does not match its shape");
    const char* data = in.take(nbytes);  // throws for a file shorter than its header says
    torch::Tensor t = torch::empty(sizes, torch::TensorOptions().dtype(type));
    std::memcpy(t.data_ptr(), data, nbytes);
    tensors.emplace_back(std::move(name), std::move(t));
  }
  if (!in.done()) throw CheckpointError(source + ": trailing bytes after the last tensor");
  return tensors;
}

NamedTensors capture_model_tensors(const nn::LruModel& model) {
  torch::NoGradGuard no_grad;
  NamedTensors tensors;
  for (const auto& item : model->named_parameters())
    tensors.emplace_back(item.key(), item.value().detach().to(torch::kCPU).clone());
  for (const auto& item : model->named_buffers())
    tensors.emplace_back(item.key(), item.value().detach().to(torch::kCPU).clone());
  return tensors;
}

CheckpointContents capture_checkpoint(const nn::LruModel& model, const torch::optim::AdamW& optimizer,
                                      nlohmann::json state, std::string config_yaml) {
  torch::NoGradGuard no_grad;
  CheckpointContents contents;
  contents.model_tensors = capture_model_tensors(model);

  const auto& states = optimizer.state();
  for (const auto& item : model->named_parameters()) {
    const auto found = states.find(optimizer_key(item.value()));
    if (found == states.end()) continue;  // no step taken yet
    const auto& s = static_cast<const torch::optim::AdamWParamState&>(*found->second);
    contents.optimizer_tensors.emplace_back(item.key() + "/exp_avg", s.exp_avg().to(torch::kCPU).clone());
    contents.optimizer_tensors.emplace_back(item.key() + "/exp_avg_sq", s.exp_avg_sq().to(torch::kCPU).clone());
    contents.optimizer_tensors.emplace_back(item.key() + "/step", torch::tensor({s.step()}, torch::kLong));
  }
  {
    auto generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> generator_lock(generator.mutex());
    contents.optimizer_tensors.emplace_back("rng/cpu", generator.get_state().clone());
  }
  contents.state = std::move(state);
  contents.config_yaml = std::move(config_yaml);
  return contents;
}

void write_checkpoint(const CheckpointContents& contents, const fs::path& destination) {
  const fs::path parent = destination.parent_path();
  fs::create_directories(parent);
  const fs::path staged = parent / ("." + destination.filename().string() + ".partial");
  fs::remove_all(staged);
  fs::create_directory(staged);
  write_synced_file(staged / "model.bin", encode_tensors(contents.model_tensors));
  write_synced_file(staged / "optimizer.bin", encode_tensors(contents.optimizer_tensors));
  write_synced_file(staged / "state.json", contents.state.dump(1) + "\n");
  write_synced_file(staged / "config.yaml", contents.config_yaml);
  if (!contents.rollback_tensors.empty())
    write_synced_file(staged / "rollback.bin", encode_tensors(contents.rollback_tensors));
  write_manifest(staged);
  publish_folder(staged, destination);
}

void apply_saved_input_scaling(const CheckpointContents& contents, const fs::path& folder,
                               const std::vector<data::Dataset*>& datasets) {
  const auto found = contents.state.find("input_scaling");
  if (found == contents.state.end() || found->is_null()) return;
  const std::string source = (folder / "state.json").string();
  try {
    for (data::Dataset* dataset : datasets) data::rescale_channels(*dataset, *found);
  } catch (const data::DataError& e) {
    throw CheckpointError(source + ": input_scaling: " + e.what());
  }
}

CheckpointContents read_checkpoint(const fs::path& folder) {
  const std::set<std::string> listed = verify_manifest(folder);
  // Every file read must be one the manifest vouches for (rollback.bin too:
  // without it a pending pragmatic check would be skipped).
  const fs::path rollback_path = folder / "rollback.bin";
  const bool has_rollback = fs::exists(rollback_path);
  std::vector<std::string> read = {"model.bin", "optimizer.bin", "state.json", "config.yaml"};
  if (has_rollback) read.push_back("rollback.bin");
  for (const std::string& name : read)
    if (listed.count(name) == 0)
      throw CheckpointError((folder / kManifestName).string() + ": does not list " + name +
                            " (an unfinished or altered checkpoint)");
  CheckpointContents contents;
  const fs::path model_path = folder / "model.bin";
  const fs::path optimizer_path = folder / "optimizer.bin";
  const fs::path state_path = folder / "state.json";
  contents.model_tensors = decode_tensors(read_checkpoint_file(model_path), model_path.string());
  contents.optimizer_tensors = decode_tensors(read_checkpoint_file(optimizer_path), optimizer_path.string());
  try {
    contents.state = nlohmann::json::parse(read_checkpoint_file(state_path));
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(state_path.string() + ": malformed JSON (" + e.what() + ")");
  }
  contents.config_yaml = read_checkpoint_file(folder / "config.yaml");
  if (has_rollback)
    contents.rollback_tensors = decode_tensors(read_checkpoint_file(rollback_path), rollback_path.string());
  return contents;
}

NamedTensors pack_snapshot(const CheckpointContents& snapshot) {
  NamedTensors packed;
  for (const auto& [name, t] : snapshot.model_tensors) packed.emplace_back("model/" + name, t);
  for (const auto& [name, t] : snapshot.optimizer_tensors) packed.emplace_back("optimizer/" + name, t);
  return packed;
}

CheckpointContents unpack_snapshot(const NamedTensors& packed) {
  CheckpointContents snapshot;
  for (const auto& [name, t] : packed) {
    if (name.rfind("model/", 0) == 0)
      snapshot.model_tensors.emplace_back(name.substr(6), t);
    else if (name.rfind("optimizer/", 0) == 0)
      snapshot.optimizer_tensors.emplace_back(name.substr(10), t);
  }
  return snapshot;
}

void restore_model(nn::LruModel& model, const CheckpointContents& contents, const fs::path& folder) {
  const std::string source = (folder / "model.bin").string();
  std::map<std::string, torch::Tensor> saved(contents.model_tensors.begin(), contents.model_tensors.end());
  torch::NoGradGuard no_grad;
  auto copy_into = [&](const std::string& name, torch::Tensor target) {
    const auto found = saved.find(name);
    if (found == saved.end()) throw CheckpointError(source + ": no tensor '" + name + "'");
    if (found->second.sizes() != target.sizes() || found->second.scalar_type() != target.scalar_type())
      throw CheckpointError(source + ": tensor '" + name + "' has another shape or dtype than the model's");
    // A model with NaN or infinite weights (a diverged run, or an altered
    // file) would evaluate and compress to nonsense: refused, as export does.
    const torch::Tensor& value = found->second;
    if (value.is_floating_point() && !torch::isfinite(value).all().item<bool>())
      throw CheckpointError(source + ": tensor '" + name + "' has a non-finite value (a diverged run, or a damaged file)");
    if (nn::has_leaf(name, "running_var") && (value < 0).any().item<bool>())
      throw CheckpointError(source + ": tensor '" + name + "' has a negative variance");
    target.copy_(value);
  };
  for (auto& item : model->named_parameters()) copy_into(item.key(), item.value());
  for (auto& item : model->named_buffers()) copy_into(item.key(), item.value());
  // A tensor the model does not have (more blocks than num_blocks, another
  // architecture): not a checkpoint of this run's model.
  const auto parameters = model->named_parameters();
  const auto buffers = model->named_buffers();
  for (const auto& [name, value] : saved)
    if (!parameters.contains(name) && !buffers.contains(name))
      throw CheckpointError(source + ": tensor '" + name + "' is not in the run's model (" +
                            std::to_string(model->lru_layers().size()) + " blocks)");
}

void restore_optimizer(torch::optim::AdamW& optimizer, const nn::LruModel& model,
                       const CheckpointContents& contents, const fs::path& folder, bool restore_generator) {
  const std::string source = (folder / "optimizer.bin").string();
  std::map<std::string, torch::Tensor> saved(contents.optimizer_tensors.begin(), contents.optimizer_tensors.end());
  auto& states = optimizer.state();
  for (const auto& item : model->named_parameters()) {
    const auto avg = saved.find(item.key() + "/exp_avg");
    const auto avg_sq = saved.find(item.key() + "/exp_avg_sq");
    const auto step = saved.find(item.key() + "/step");
    if (avg == saved.end() && avg_sq == saved.end() && step == saved.end()) continue;
    if (avg == saved.end() || avg_sq == saved.end() || step == saved.end() ||
        avg->second.sizes() != item.value().sizes() || avg_sq->second.sizes() != item.value().sizes() ||
        step->second.numel() != 1)
      throw CheckpointError(source + ": incomplete or mismatched AdamW state for '" + item.key() + "'");
    auto state = std::make_unique<torch::optim::AdamWParamState>();
    state->step(step->second.item<int64_t>());
    state->exp_avg(avg->second.to(item.value().device()).clone());
    state->exp_avg_sq(avg_sq->second.to(item.value().device()).clone());
    states[optimizer_key(item.value())] = std::move(state);
  }
  if (!restore_generator) return;
  const auto rng = saved.find("rng/cpu");
  if (rng == saved.end()) throw CheckpointError(source + ": no generator state 'rng/cpu'");
  try {
    auto generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> generator_lock(generator.mutex());
    generator.set_state(rng->second);
  } catch (const c10::Error& e) {
    throw CheckpointError(source + ": bad generator state");
  }
}

fs::path checkpoint_folder(const fs::path& run_dir, int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "step_%06lld", static_cast<long long>(step));
  return run_dir / "checkpoints" / name;
}

fs::path final_folder(const fs::path& run_dir) { return run_dir / "final"; }

namespace {
// The checkpoints/step_NNNNNN folders of a run, by step.
std::map<long long, fs::path> step_checkpoints(const fs::path& run_dir) {
  std::map<long long, fs::path> found;
  const fs::path folder = run_dir / "checkpoints";
  if (!fs::is_directory(folder)) return found;
  for (const auto& entry : fs::directory_iterator(folder)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_directory() || name.rfind("step_", 0) != 0) continue;
    char* end = nullptr;
    const long long step = std::strtoll(name.c_str() + 5, &end, 10);
    if (end == name.c_str() + 5 || *end != '\0' || step < 0) continue;
    found.emplace(step, entry.path());
  }
  return found;
}
}  // namespace

fs::path latest_checkpoint(const fs::path& run_dir) {
  if (fs::exists(final_folder(run_dir) / kManifestName)) return final_folder(run_dir);
  const std::map<long long, fs::path> found = step_checkpoints(run_dir);
  if (found.empty()) throw CheckpointError(run_dir.string() + ": no checkpoint to resume from");
  return found.rbegin()->second;
}

bool has_checkpoint(const fs::path& run_dir) {
  return fs::exists(final_folder(run_dir) / kManifestName) || !step_checkpoints(run_dir).empty();
}

fs::path checkpoint_before(const fs::path& run_dir, const fs::path& checkpoint) {
  const std::map<long long, fs::path> found = step_checkpoints(run_dir);
  if (checkpoint == final_folder(run_dir)) return found.empty() ? fs::path() : found.rbegin()->second;
  fs::path before;
  for (const auto& [step, path] : found) {
    if (path == checkpoint) break;
    before = path;
  }
  return before;
}

fs::path resolve_checkpoint(const fs::path& dir) {
  if (!fs::is_directory(dir))
    throw CheckpointError(dir.string() + (fs::exists(dir) ? ": not a folder (a checkpoint or run folder is expected)"
                                                          : ": no such folder"));
  if (fs::exists(dir / kManifestName)) return dir;
  if (fs::is_directory(final_folder(dir))) return final_folder(dir);
  throw CheckpointError(dir.string() + ": neither a checkpoint folder (no manifest.json) nor a finished run (no final/)");
}

}  // namespace compressm::training
