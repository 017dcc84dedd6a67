// Configs that must load: the official code's YAML files unchanged, our
// examples, defaults, --set overrides, and the YAML / JSON round trips.
#include <gtest/gtest.h>

#include <filesystem>
#include <limits>

#include "config/config.h"
#include "support/temp_dir.h"

namespace {

namespace fs = std::filesystem;
using namespace compressm::config;
using compressm::testing::TempDir;

const std::string kSource = COMPRESSM_SOURCE_DIR;
const std::string kReference = kSource + "/tests/config/reference";

std::vector<std::string> yaml_files(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() == ".yaml") files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// Our additions keep their defaults when a reference file leaves them out.
void expect_our_defaults(const Config& c) {
  EXPECT_EQ(c.seed, 42);
  EXPECT_EQ(c.threads, 0);
  EXPECT_EQ(c.device, Device::kCpu);
  EXPECT_EQ(c.checkpoint_every, 0);
  EXPECT_EQ(c.training.precision, Precision::kFp32);
  EXPECT_TRUE(c.training.cuda_graphs);
  EXPECT_EQ(c.training.block_ops, BlockOps::kAuto);
  EXPECT_EQ(c.model.max_phase, 6.28);
}

TEST(ConfigReference, PaperSmnistTau001LoadsUnchanged) {
  std::vector<std::string> notes;
  const Config c = load_config(kReference + "/paper/smnist_tau0.01.yaml", {}, &notes);
  EXPECT_TRUE(notes.empty());
  EXPECT_EQ(c.dataset, Dataset::kSmnist);
  EXPECT_EQ(c.data_dir, "");
  EXPECT_EQ(c.model.num_blocks, 1);
  EXPECT_EQ(c.model.state_dim, 256);
  EXPECT_EQ(c.model.hidden_dim, 8);
  EXPECT_EQ(c.model.r_min, 0.9);
  EXPECT_EQ(c.model.r_max, 0.999);
  EXPECT_EQ(c.model.drop_rate, 0.1);
  EXPECT_EQ(c.training.num_steps, 200000);
  EXPECT_EQ(c.training.batch_size, 50);
  EXPECT_EQ(c.training.lr, 0.0004);
  EXPECT_EQ(c.training.weight_decay, 0.0);
  EXPECT_EQ(c.training.ssm_lr_factor, 1.0);
  EXPECT_FALSE(c.training.use_warmup_cosine);
  EXPECT_EQ(c.training.eval_steps, 5000);
  EXPECT_EQ(c.reduction.mode, ReductionMode::kTolerance);
  EXPECT_EQ(c.reduction.selection, Selection::kLargest);
  EXPECT_EQ(c.reduction.tol, 0.99);  // tau = 0.01
  EXPECT_EQ(c.reduction.red_start, 0);
  EXPECT_EQ(c.reduction.red_end, 20000);
  EXPECT_EQ(c.reduction.red_interval, 2000);
  EXPECT_EQ(c.reduction.hsv_interval, 0);
  EXPECT_EQ(c.reduction.reduction_fraction, 0.1);
  EXPECT_EQ(c.reduction.performance_tolerance, 0.02);
  EXPECT_EQ(c.reduction.method, TruncationMethod::kSqrtm);
  expect_our_defaults(c);
}

TEST(ConfigReference, PaperScifarTau010LoadsUnchanged) {
  const Config c = load_config(kReference + "/paper/scifar_tau0.10.yaml");
  EXPECT_EQ(c.dataset, Dataset::kScifar);
  EXPECT_EQ(c.model.num_blocks, 6);
  EXPECT_EQ(c.model.state_dim, 384);
  EXPECT_EQ(c.model.hidden_dim, 512);
  EXPECT_EQ(c.training.num_steps, 180000);
  EXPECT_EQ(c.training.lr, 0.001);
  EXPECT_EQ(c.training.weight_decay, 0.05);
  EXPECT_EQ(c.training.ssm_lr_factor, 0.25);
  EXPECT_TRUE(c.training.use_warmup_cosine);
  EXPECT_EQ(c.training.eval_steps, 4500);
  EXPECT_EQ(c.reduction.mode, ReductionMode::kTolerance);
  EXPECT_EQ(c.reduction.tol, 0.90);  // tau = 0.10
  EXPECT_EQ(c.reduction.red_end, 18000);
  expect_our_defaults(c);
}

TEST(ConfigReference, LraBaselinesKeepDataDir) {
  const Config listops = load_config(kReference + "/paper/listops_baseline.yaml");
  EXPECT_EQ(listops.dataset, Dataset::kListops);
  EXPECT_EQ(listops.data_dir, "/fast/pnazari/data/lra_release");
  EXPECT_EQ(listops.model.drop_rate, 0.0);
  EXPECT_EQ(listops.reduction.mode, ReductionMode::kNone);
  const Config pathfinder = load_config(kReference + "/paper/pathfinder_baseline.yaml");
  EXPECT_EQ(pathfinder.dataset, Dataset::kPathfinder);
  EXPECT_EQ(pathfinder.data_dir, "/fast/pnazari/data/lra_release/pathfinder/pathfinder32");
  EXPECT_EQ(pathfinder.training.num_steps, 500000);
}

TEST(ConfigReference, EveryPaperFixtureLoadsWithoutNotes) {
  const auto files = yaml_files(kReference + "/paper");
  ASSERT_GE(files.size(), 3u);
  for (const auto& file : files) {
    SCOPED_TRACE(file);
    std::vector<std::string> notes;
    EXPECT_NO_THROW(load_config(file, {}, &notes));
    EXPECT_TRUE(notes.empty());
  }
}

// The reference's configs/smnist.yaml uses keys its code never reads.
TEST(ConfigReference, OlderKeysAreReadAsTheirCurrentNames) {
  std::vector<std::string> notes;
  const Config c = load_config(kReference + "/configs/smnist.yaml", {}, &notes);
  EXPECT_EQ(c.training.eval_steps, 5000);     // print_steps
  EXPECT_EQ(c.reduction.red_end, 20000);      // red_start (0) + red_steps
  EXPECT_EQ(c.reduction.red_interval, 2000);  // reduction_interval
  EXPECT_EQ(c.reduction.tol, 0.95);
  ASSERT_EQ(notes.size(), 4u);
  EXPECT_NE(notes[0].find("training.print_steps"), std::string::npos);
  EXPECT_NE(notes[3].find("reduction.save_hsvs"), std::string::npos);
  // red_steps is a length counted from red_start.
  const Config shifted = parse_config("reduction: {red_steps: 100, red_start: 50}", "x.yaml");
  EXPECT_EQ(shifted.reduction.red_end, 150);
}

// The reference writes training.seed into a run folder's config.yaml.
TEST(ConfigReference, RunFolderConfigWithTrainingSeedLoads) {
  const Config c = parse_config(
      "dataset: smnist\n"
      "model: {drop_rate: 0.1, hidden_dim: 8, num_blocks: 1, r_max: 0.999, r_min: 0.9, state_dim: 256}\n"
      "reduction: {hsv_interval: 0, method: sqrtm, mode: tolerance, performance_tolerance: 0.02,\n"
      "  red_end: 20000, red_interval: 2000, red_start: 0, reduction_fraction: 0.1,\n"
      "  selection: largest, tol: 0.99}\n"
      "training: {batch_size: 50, eval_steps: 5000, lr: 0.0004, num_steps: 200000, seed: 8,\n"
      "  ssm_lr_factor: 1.0, use_warmup_cosine: false, weight_decay: 0.0}\n",
      "run/config.yaml");
  EXPECT_EQ(c.seed, 8);
  EXPECT_EQ(c, load_config(kReference + "/paper/smnist_tau0.01.yaml", {"seed=8"}));
}

TEST(ConfigExamples, EveryExampleLoadsWithoutNotes) {
  const auto files = yaml_files(kSource + "/configs");
  ASSERT_GE(files.size(), 3u);
  for (const auto& file : files) {
    SCOPED_TRACE(file);
    std::vector<std::string> notes;
    EXPECT_NO_THROW(load_config(file, {}, &notes));
    EXPECT_TRUE(notes.empty());
  }
  const Config digits = load_config(kSource + "/configs/digits_fast.yaml");
  EXPECT_EQ(digits.dataset, Dataset::kDigits);
  EXPECT_EQ(digits.device, Device::kCpu);
  EXPECT_LE(digits.training.num_steps, 1000);
}

// Defaults are the reference's effective ones (scripts/train.py).
TEST(ConfigDefaults, MatchTheReferenceTrainScript) {
  const Config c = parse_config("{}", "empty.yaml");
  EXPECT_EQ(c, Config{});
  EXPECT_EQ(c.dataset, Dataset::kScifar);
  EXPECT_EQ(c.model.num_blocks, 6);
  EXPECT_EQ(c.model.state_dim, 512);
  EXPECT_EQ(c.model.hidden_dim, 256);
  EXPECT_EQ(c.model.drop_rate, 0.1);
  EXPECT_EQ(c.training.num_steps, 100000);
  EXPECT_EQ(c.training.batch_size, 64);
  EXPECT_EQ(c.training.lr, 0.004);
  EXPECT_EQ(c.training.weight_decay, 0.01);
  EXPECT_EQ(c.training.ssm_lr_factor, 0.5);
  EXPECT_TRUE(c.training.use_warmup_cosine);
  EXPECT_EQ(c.training.eval_steps, 1000);
  EXPECT_EQ(c.reduction.mode, ReductionMode::kNone);
  EXPECT_EQ(c.reduction.tol, 0.99);
  EXPECT_EQ(c.reduction.red_end, 100000);
  EXPECT_EQ(c.reduction.red_interval, 2000);
  expect_our_defaults(c);
  // A section with every key left out.
  EXPECT_EQ(parse_config("model:\ntraining:\n", "x.yaml"), Config{});
  EXPECT_NO_THROW(validate(Config{}));
}

TEST(ConfigOverrides, EveryForm) {
  const std::string file = kSource + "/configs/smnist.yaml";
  const Config c = load_config(file, {"training.lr=1e-3", "model.state_dim=64", "reduction.mode=none",
                                      "dataset=digits", "data_dir=\"/my dir/x: y\"",
                                      "training.use_warmup_cosine=true", "training.precision=bf16",
                                      "device=cpu", "seed=7", "reduction.tol=1", "threads=3",
                                      "reduction.selection=\"random\"", "training.weight_decay=0",
                                      "training.cuda_graphs=false", "training.block_ops=fused"});
  EXPECT_FALSE(c.training.cuda_graphs);
  EXPECT_EQ(c.training.block_ops, BlockOps::kFused);
  EXPECT_EQ(c.training.lr, 1e-3);
  EXPECT_EQ(c.model.state_dim, 64);
  EXPECT_EQ(c.reduction.mode, ReductionMode::kNone);
  EXPECT_EQ(c.dataset, Dataset::kDigits);
  EXPECT_EQ(c.data_dir, "/my dir/x: y");
  EXPECT_TRUE(c.training.use_warmup_cosine);
  EXPECT_EQ(c.training.precision, Precision::kBf16);
  EXPECT_EQ(c.device, Device::kCpu);
  EXPECT_EQ(c.seed, 7);
  EXPECT_EQ(c.reduction.tol, 1.0);
  EXPECT_EQ(c.threads, 3);
  EXPECT_EQ(c.reduction.selection, Selection::kRandom);
  EXPECT_EQ(c.training.weight_decay, 0.0);
  // Untouched keys keep the file's values.
  EXPECT_EQ(c.training.num_steps, 200000);
  EXPECT_EQ(c.model.hidden_dim, 8);
}

TEST(ConfigOverrides, LaterWinsAndValidationComesLast) {
  const std::string file = kSource + "/configs/smnist.yaml";
  EXPECT_EQ(load_config(file, {"training.lr=0.1", "training.lr=0.2"}).training.lr, 0.2);
  // Invalid on the way (r_max below r_min), valid at the end.
  const Config c = load_config(file, {"model.r_max=0.5", "model.r_min=0.1"});
  EXPECT_EQ(c.model.r_min, 0.1);
  EXPECT_EQ(c.model.r_max, 0.5);
  // A quoted value is a string: fine for data_dir and enums.
  EXPECT_EQ(load_config(file, {"data_dir=\"123\""}).data_dir, "123");
  EXPECT_EQ(load_config(file, {"data_dir=\"\""}).data_dir, "");
  EXPECT_EQ(load_config(file, {"data_dir=/plain path/x"}).data_dir, "/plain path/x");
}

TEST(ConfigOverrides, ApplyOverrideDirectly) {
  Config c;
  apply_override(c, "model.num_blocks=2");
  apply_override(c, "checkpoint_every=500");
  EXPECT_EQ(c.model.num_blocks, 2);
  EXPECT_EQ(c.checkpoint_every, 500);
  apply_override(c, "model.state_dim=0");  // type-checked only
  EXPECT_THROW(validate(c, "mine"), ConfigError);
}

// Configs that exercise every value shape the writers must reproduce.
std::vector<Config> round_trip_cases() {
  std::vector<Config> cases = {Config{}};
  cases.push_back(load_config(kReference + "/paper/smnist_tau0.01.yaml"));
  cases.push_back(load_config(kReference + "/paper/listops_baseline.yaml"));
  cases.push_back(load_config(kSource + "/configs/digits_fast.yaml"));
  Config odd;
  odd.data_dir = "dir with \"quotes\", 'ticks', #hash, colon: and ünïcödé\\";
  odd.training.lr = 1e-7;
  odd.training.weight_decay = 1.0 / 3.0;
  odd.training.ssm_lr_factor = 123456789.0;
  odd.model.r_min = std::numeric_limits<double>::denorm_min();
  odd.model.r_max = 0.1 + 0.2;
  odd.reduction.tol = std::nextafter(1.0, 0.0);
  odd.training.num_steps = std::numeric_limits<std::int64_t>::max();
  odd.reduction.red_end = std::numeric_limits<std::int64_t>::max();
  odd.seed = 0;
  odd.device = Device::kCuda;
  odd.training.precision = Precision::kTf32;
  odd.training.cuda_graphs = false;
  odd.reduction.mode = ReductionMode::kPragmatic;
  odd.reduction.method = TruncationMethod::kChol;
  cases.push_back(odd);
  return cases;
}

TEST(ConfigRoundTrip, YamlReadsBackEqual) {
  for (const Config& c : round_trip_cases()) {
    const std::string yaml = to_yaml(c);
    SCOPED_TRACE(yaml);
    EXPECT_NO_THROW(validate(c));
    EXPECT_EQ(parse_config(yaml, "config.yaml"), c);
  }
}

TEST(ConfigRoundTrip, YamlIsReadableByTheReferenceToo) {
  Config c;
  c.training.lr = 1e-7;
  c.training.ssm_lr_factor = 1.0;
  const std::string yaml = to_yaml(c);
  // YAML 1.1 (PyYAML) needs a '.' to see a float.
  EXPECT_NE(yaml.find("  lr: 1.0e-07\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("  ssm_lr_factor: 1.0\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("\nreduction:\n  mode: none\n"), std::string::npos) << yaml;
}

TEST(ConfigRoundTrip, JsonHasTheYamlNestingAndReadsBackEqual) {
  for (const Config& c : round_trip_cases()) {
    const nlohmann::ordered_json json = to_json(c);
    SCOPED_TRACE(json.dump());
    EXPECT_EQ(json.begin().key(), "dataset");
    EXPECT_EQ(json["dataset"], std::string(to_string(c.dataset)));
    EXPECT_EQ(json["training"]["lr"].get<double>(), c.training.lr);
    EXPECT_EQ(json["model"]["state_dim"].get<int>(), c.model.state_dim);
    EXPECT_EQ(json["reduction"]["mode"], std::string(to_string(c.reduction.mode)));
    EXPECT_EQ(json["seed"].get<std::int64_t>(), c.seed);
    EXPECT_EQ(json.size(), 9u);
    // JSON is YAML: the JSON text loads as a config file.
    EXPECT_EQ(parse_config(json.dump(2), "config.json"), c);
    // and it converts to the sorted-key json type other modules use.
    const nlohmann::json sorted = json;
    EXPECT_EQ(sorted["training"]["num_steps"].get<std::int64_t>(), c.training.num_steps);
  }
}

TEST(ConfigRoundTrip, FileWrittenToDiskLoadsBack) {
  TempDir dir;
  const Config c = load_config(kSource + "/configs/sfmnist_compress.yaml", {"training.lr=3e-4"});
  const auto path = dir.write("config.yaml", to_yaml(c));
  EXPECT_EQ(load_config(path.string()), c);
}

TEST(ConfigEnums, YamlSpellings) {
  EXPECT_EQ(to_string(Dataset::kSfmnist), "sfmnist");
  EXPECT_EQ(to_string(Dataset::kPathfinder), "pathfinder");
  EXPECT_EQ(to_string(Device::kCuda), "cuda");
  EXPECT_EQ(to_string(Precision::kBf16), "bf16");
  EXPECT_EQ(to_string(ReductionMode::kPragmatic), "pragmatic");
  EXPECT_EQ(to_string(Selection::kSmallest), "smallest");
  EXPECT_EQ(to_string(TruncationMethod::kChol), "chol");
}

}  // namespace
