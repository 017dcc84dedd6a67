// Internal to compressm_config: the one list of config keys, shared by the
// reader, the validator and the writers, so they cannot drift apart.
#pragma once

#include <array>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "config/config.h"

namespace compressm::config::detail {

inline constexpr std::array<std::string_view, 3> kSections = {"model", "training", "reduction"};

// Calls visit(section, key, value&) for every key, in file order; section is ""
// at the top level. `ConfigT` is Config or const Config.
template <typename ConfigT, typename Visitor>
void for_each_field(ConfigT& c, Visitor&& visit) {
  visit("", "dataset", c.dataset);
  visit("", "data_dir", c.data_dir);
  visit("model", "num_blocks", c.model.num_blocks);
  visit("model", "state_dim", c.model.state_dim);
  visit("model", "hidden_dim", c.model.hidden_dim);
  visit("model", "r_min", c.model.r_min);
  visit("model", "r_max", c.model.r_max);
  visit("model", "drop_rate", c.model.drop_rate);
  visit("model", "max_phase", c.model.max_phase);
  visit("training", "num_steps", c.training.num_steps);
  visit("training", "batch_size", c.training.batch_size);
  visit("training", "lr", c.training.lr);
  visit("training", "weight_decay", c.training.weight_decay);
  visit("training", "ssm_lr_factor", c.training.ssm_lr_factor);
  visit("training", "use_warmup_cosine", c.training.use_warmup_cosine);
  visit("training", "eval_steps", c.training.eval_steps);
  visit("training", "precision", c.training.precision);
  visit("training", "block_ops", c.training.block_ops);
  visit("training", "cuda_graphs", c.training.cuda_graphs);
  visit("reduction", "mode", c.reduction.mode);
  visit("reduction", "selection", c.reduction.selection);
  visit("reduction", "tol", c.reduction.tol);
  visit("reduction", "red_start", c.reduction.red_start);
  visit("reduction", "red_end", c.reduction.red_end);
  visit("reduction", "red_interval", c.reduction.red_interval);
  visit("reduction", "hsv_interval", c.reduction.hsv_interval);
  visit("reduction", "reduction_fraction", c.reduction.reduction_fraction);
  visit("reduction", "performance_tolerance", c.reduction.performance_tolerance);
  visit("reduction", "method", c.reduction.method);
  visit("reduction", "optimizer_state", c.reduction.optimizer_state);
  visit("", "seed", c.seed);
  visit("", "threads", c.threads);
  visit("", "device", c.device);
  visit("", "checkpoint_every", c.checkpoint_every);
}

inline std::string key_path(std::string_view section, std::string_view key) {
  return section.empty() ? std::string(key) : std::string(section) + "." + std::string(key);
}

// Keys that the reference's own YAML files use but its code does not read
// (configs/smnist.yaml, configs/scifar.yaml), or reads under another section
// (training.seed, which its run folders' config.yaml holds).
struct LegacyKey {
  std::string_view path;     // as written in the file
  std::string_view current;  // the key it stands for; "" = accepted and ignored
  std::string_view note;
};
inline constexpr std::array<LegacyKey, 5> kLegacyKeys = {{
    {"training.print_steps", "training.eval_steps",
     "training.print_steps (reference configs/*.yaml) read as training.eval_steps"},
    {"reduction.red_steps", "reduction.red_end",
     "reduction.red_steps (reference configs/*.yaml) read as reduction.red_end = red_start + red_steps"},
    {"reduction.reduction_interval", "reduction.red_interval",
     "reduction.reduction_interval (reference configs/*.yaml) read as reduction.red_interval"},
    {"reduction.save_hsvs", "",
     "reduction.save_hsvs is ignored, as in the reference; reduction.hsv_interval turns HSV logging on"},
    {"training.seed", "seed", ""},  // the reference's place for the seed: no note
}};

inline const LegacyKey* find_legacy_key(std::string_view path) {
  for (const LegacyKey& legacy : kLegacyKeys) {
    if (legacy.path == path) return &legacy;
  }
  return nullptr;
}

// Where each key's value came from, so an error blames the right file line or
// --set flag. Later sources have larger `order`; defaults have none.
struct Origin {
  std::string source;  // file name or "--set key=value"
  int line = 0;        // 1-based line in the file; 0 = unknown or a flag
  int order = 0;
};

class Origins {
 public:
  explicit Origins(std::string default_source) : default_{std::move(default_source)} {}
  void record(const std::string& path, std::string source, int line) {
    by_path_[path] = Origin{std::move(source), line, ++counter_};
  }
  const Origin& of(const std::string& path) const {
    const auto it = by_path_.find(path);
    return it == by_path_.end() ? default_ : it->second;
  }

 private:
  Origin default_;
  std::map<std::string, Origin> by_path_;
  int counter_ = 0;
};

// "source: path: problem (line N)": the one-line message of every ConfigError.
[[noreturn]] void fail(const Origin& origin, const std::string& path, const std::string& problem);

// Range and cross-key checks, blaming the source of the offending key.
void validate(const Config& config, const Origins& origins);

// Escapes and shortens untrusted text for an error message: always one line.
std::string quote_untrusted(std::string_view text, std::size_t max_chars = 60);
std::string format_double(double value);

}  // namespace compressm::config::detail
