// The run configuration (docs/design.md §3): a typed `Config` read from YAML with the
// official reference's keys, so its `configs/paper/*.yaml` load unchanged, plus
// our additions (seed, threads, device, checkpoint_every, training.precision,
// model.max_phase).
//
//   dataset: smnist            # smnist | sfmnist | scifar | digits | listops | imdb | aan | pathfinder
//   data_dir: /data/lra        # optional; "" = the dataset's default location
//   model:     {num_blocks, state_dim, hidden_dim, r_min, r_max, drop_rate, max_phase}
//   training:  {num_steps, batch_size, lr, weight_decay, ssm_lr_factor,
//               use_warmup_cosine, eval_steps, precision}
//   reduction: {mode, selection, tol, red_start, red_end, red_interval, hsv_interval,
//               reduction_fraction, performance_tolerance, method, optimizer_state}
//   seed, threads, device, checkpoint_every
//
// Defaults are the reference's effective ones (scripts/train.py), so a key left
// out means what it means there. A config file is untrusted input: unknown keys,
// wrong types and out-of-range values are ConfigErrors whose one-line message
// names the file (or the --set flag) and the key path.
// Only yaml-cpp and nlohmann_json here: no LibTorch, no command line.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace compressm::config {

// A bad config file or override, e.g.
// `configs/x.yaml: training.num_steps: expected an integer, got "ten" (line 14)`.
// Always one line.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Dataset { kSmnist, kSfmnist, kScifar, kDigits, kListops, kImdb, kAan, kPathfinder };
enum class Device { kCpu, kCuda };
enum class Precision { kFp32, kTf32, kBf16 };
// How the LRU blocks run their element-wise work (nn::BlockOps): auto = the
// fused ops on CUDA; on the CPU narrow_mix for blocks of H <= 16 (not bf16) and
// LibTorch's ops with Philox dropout masks otherwise; fused or composed on both.
enum class BlockOps { kAuto, kFused, kComposed };
// none: plain training; tolerance: keep the smallest rank holding `tol` of the HSV
// energy; fixed: shrink by reduction_fraction; pragmatic: fixed, rolled back and
// stopped when val accuracy drops by more than performance_tolerance.
enum class ReductionMode { kNone, kTolerance, kFixed, kPragmatic };
// Which states survive: largest HSVs (the method), smallest or random (ablations).
enum class Selection { kLargest, kSmallest, kRandom };
// The reference's balanced-truncation transformation: matrix square roots of the
// Gramians ("sqrtm") or their Cholesky factors ("chol").
enum class TruncationMethod { kSqrtm, kChol };
// What happens to AdamW's moments of the LRU tensors a reduction replaces:
// reset (no state: zero moments, step count 0) or slice (keep the moments of the
// first r states, as the reference; exact only for `random`, which keeps
// diagonal modes in their own basis). See docs/compression.md.
enum class OptimizerStatePolicy { kReset, kSlice };

// YAML spelling of each value ("smnist", "cuda", "bf16", "pragmatic", ...).
std::string_view to_string(Dataset value);
std::string_view to_string(Device value);
std::string_view to_string(Precision value);
std::string_view to_string(BlockOps value);
std::string_view to_string(ReductionMode value);
std::string_view to_string(Selection value);
std::string_view to_string(TruncationMethod value);
std::string_view to_string(OptimizerStatePolicy value);

struct ModelConfig {
  int num_blocks = 6;        // LRU blocks, >= 1
  int state_dim = 512;       // N per block, >= 1
  int hidden_dim = 256;      // H, >= 1
  double r_min = 0.9;        // |lambda| init ring, 0 <= r_min < r_max < 1
  double r_max = 0.999;
  double drop_rate = 0.1;    // [0, 1)
  double max_phase = 6.28;   // arg(lambda) init on [0, max_phase], (0, 2*pi]; ours
};

struct TrainingConfig {
  std::int64_t num_steps = 100000;   // >= 1
  int batch_size = 64;               // >= 1
  double lr = 0.004;                 // > 0
  double weight_decay = 0.01;        // >= 0, not applied to the SSM group
  double ssm_lr_factor = 0.5;        // SSM group lr = lr * ssm_lr_factor, > 0
  bool use_warmup_cosine = true;     // 10% linear warm-up, then cosine to 1e-7
  std::int64_t eval_steps = 1000;    // evaluate every eval_steps steps, >= 1
  Precision precision = Precision::kFp32;  // ours
  // ours: fused element-wise block ops (docs/gpu.md, "Fused ops"); `fused`
  // on the CPU runs the CPU loops that are the CUDA kernels' parity oracle.
  BlockOps block_ops = BlockOps::kAuto;
  // ours: on device cuda, replay each training step as one CUDA graph
  // (nn/graphed_step.h); no effect on the CPU.
  bool cuda_graphs = true;
};

struct ReductionConfig {
  ReductionMode mode = ReductionMode::kNone;
  Selection selection = Selection::kLargest;
  // Fraction of plain HSV energy KEPT, (0, 1]: the paper's tau is 1 - tol
  // (tau = 0.01 -> tol = 0.99).
  double tol = 0.99;
  // Reductions are tried at steps s with red_start <= s < red_end (0-based) and
  // (s + 1) % red_interval == 0.
  std::int64_t red_start = 0;        // >= 0
  std::int64_t red_end = 100000;     // >= red_start
  std::int64_t red_interval = 2000;  // >= 1
  std::int64_t hsv_interval = 0;     // log HSVs every hsv_interval steps, 0 = off
  double reduction_fraction = 0.1;   // fixed/pragmatic: N -> max(1, floor(N (1 - f))), (0, 1)
  double performance_tolerance = 0.02;  // pragmatic: allowed val accuracy drop, [0, 1]
  TruncationMethod method = TruncationMethod::kSqrtm;
  OptimizerStatePolicy optimizer_state = OptimizerStatePolicy::kReset;  // ours
};

struct Config {
  Dataset dataset = Dataset::kScifar;
  std::string data_dir;              // "" = the dataset's default location
  ModelConfig model;
  TrainingConfig training;
  ReductionConfig reduction;
  std::int64_t seed = 42;            // >= 0 (the reference reads it as training.seed)
  int threads = 0;                   // CPU threads, 0 = all cores
  Device device = Device::kCpu;
  std::int64_t checkpoint_every = 0; // steps between checkpoints, 0 = final only
};

bool operator==(const Config& a, const Config& b);
bool operator!=(const Config& a, const Config& b);

// Reads, overrides and validates a config file. `overrides` are `--set` values,
// "section.key=value" or "key=value" (top level), each value read with YAML scalar
// rules (`training.lr=1e-3`, `reduction.mode=none`, `data_dir="/my dir"`), applied in
// order after the file. Older keys of the reference's own files are read as their
// current ones: training.print_steps -> eval_steps, reduction.red_steps -> red_end =
// red_start + red_steps, reduction.reduction_interval -> red_interval, training.seed
// -> seed; reduction.save_hsvs is type-checked and ignored, as in the reference. Each
// but training.seed appends a one-line note to `notes` when given.
// Throws ConfigError.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {},
                   std::vector<std::string>* notes = nullptr);

// As load_config, from YAML text; `source` (a file name) prefixes every error.
Config parse_config(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides = {},
                    std::vector<std::string>* notes = nullptr);

// Applies one `--set` assignment to `config` (type-checked, not range-checked:
// call validate after the last one). Throws ConfigError naming the flag.
void apply_override(Config& config, const std::string& assignment);

// Range and cross-key checks (state_dim >= 1, r_min < r_max, red_start <= red_end,
// ...). `source` prefixes the message. Throws ConfigError.
void validate(const Config& config, const std::string& source = "config");

// The effective config with the YAML's nesting and keys, in file order.
nlohmann::ordered_json to_json(const Config& config);

// The effective config as a YAML document (for a run folder's config.yaml);
// parse_config(to_yaml(c), ...) == c, doubles included bit for bit.
std::string to_yaml(const Config& config);

}  // namespace compressm::config
