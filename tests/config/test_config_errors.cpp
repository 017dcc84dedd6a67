// Every bad config is a ConfigError with one line that names the file (or the
// --set flag) and the key path.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "config/config.h"
#include "support/temp_dir.h"

namespace {

using namespace compressm::config;
using compressm::testing::TempDir;

const std::string kSmnist = std::string(COMPRESSM_SOURCE_DIR) + "/configs/smnist.yaml";

// The ConfigError message of `action`, or "" (and a failure) if none.
template <typename Action>
std::string error_of(Action&& action) {
  try {
    action();
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ConfigError";
  return "";
}

void expect_message(const std::string& message, const std::string& prefix,
                    const std::vector<std::string>& parts) {
  SCOPED_TRACE(message);
  EXPECT_EQ(message.find('\n'), std::string::npos) << "not one line";
  EXPECT_EQ(message.rfind(prefix, 0), 0u) << "should start with " << prefix;
  for (const auto& part : parts) EXPECT_NE(message.find(part), std::string::npos) << "missing: " << part;
}

struct BadFile {
  const char* yaml;
  std::vector<std::string> parts;  // the key path first, then other text the message needs
};

void expect_bad_files(const std::vector<BadFile>& cases) {
  for (const BadFile& bad : cases) {
    SCOPED_TRACE(bad.yaml);
    const std::string message = error_of([&] { parse_config(bad.yaml, "configs/x.yaml"); });
    expect_message(message, "configs/x.yaml: ", bad.parts);
  }
}

TEST(ConfigErrors, UnknownKeyAtEveryLevel) {
  expect_bad_files({
      {"dataset: smnist\nlearning_rate: 1", {"learning_rate: unknown key", "(line 2)", "dataset"}},
      {"model:\n  state_dims: 4", {"model.state_dims: unknown key", "state_dim", "(line 2)"}},
      {"training:\n  lr: 0.1\n  epochs: 3", {"training.epochs: unknown key", "num_steps", "(line 3)"}},
      {"reduction:\n  tolerance: 0.9", {"reduction.tolerance: unknown key", "tol"}},
      {"model.state_dim: 4", {"model.state_dim: unknown key"}},
      {"optimizer: {lr: 1}", {"optimizer: unknown key"}},
      {"<<: {seed: 1}", {"<<: unknown key"}},
      {"\"bad\\nkey\": 1", {"\"bad\\nkey\": unknown key"}},  // escaped: still one line
  });
}

TEST(ConfigErrors, WrongTypes) {
  expect_bad_files({
      {"training: {num_steps: ten}", {"training.num_steps: expected an integer, got \"ten\""}},
      {"model:\n  num_blocks: 3.5", {"model.num_blocks: expected an integer, got 3.5", "(line 2)"}},
      {"model: {state_dim: 1e3}", {"model.state_dim: expected an integer, got 1e3"}},
      {"model: {state_dim: 0x10}", {"model.state_dim: expected an integer"}},
      {"training: {num_steps: \"10\"}", {"training.num_steps: expected an integer, got the quoted string \"10\""}},
      {"seed: !!str 5", {"seed: expected an integer", "tagged"}},
      {"training: {lr: true}", {"training.lr: expected a number, got true"}},
      {"training: {lr: '0.1'}", {"training.lr: expected a number, got the quoted string"}},
      {"training: {lr: [0.1]}", {"training.lr: expected a number, got a list"}},
      {"training: {lr: {value: 1}}", {"training.lr: expected a number, got a mapping"}},
      {"training:\n  batch_size:\n", {"training.batch_size: expected an integer, got null"}},
      {"training: {batch_size: ~}", {"training.batch_size: expected an integer, got null"}},
      {"training: {use_warmup_cosine: yes}", {"training.use_warmup_cosine: expected true or false"}},
      {"training: {use_warmup_cosine: 1}", {"training.use_warmup_cosine: expected true or false"}},
      {"training: {cuda_graphs: always}", {"training.cuda_graphs: expected true or false"}},
      {"data_dir:", {"data_dir: expected a string, got null"}},
      {"data_dir: [a, b]", {"data_dir: expected a string, got a list"}},
      {"data_dir: /d/\xe9t\xe9", {"data_dir: is not valid UTF-8 (byte 3)"}},  // Latin-1, not UTF-8
      {"data_dir: /d/\xed\xa0\x80", {"data_dir: is not valid UTF-8 (byte 3)"}},  // a surrogate
      {"dataset: 5", {"dataset: expected smnist", "got 5"}},
      {"model: 5", {"model: expected a mapping of keys, got \"5\""}},
      {"reduction: [tol, 0.9]", {"reduction: expected a mapping of keys, got a list"}},
      {"- dataset: smnist", {"expected a mapping of keys", "got a list"}},
      {"smnist", {"expected a mapping of keys", "got a scalar"}},
      {"model: {state_dim: 99999999999}", {"model.state_dim: integer 99999999999 is out of range"}},
      {"training: {num_steps: 99999999999999999999}", {"training.num_steps: integer", "out of range"}},
      {"training: {lr: 1e999}", {"training.lr: number 1e999 is out of range"}},
      {"training: {lr: .inf}", {"training.lr: expected a finite number, got .inf"}},
      {"training: {lr: .nan}", {"training.lr: expected a finite number, got .nan"}},
      {"model: {? [a] : 1}", {"model: keys must be names"}},
  });
}

TEST(ConfigErrors, OutOfRange) {
  expect_bad_files({
      {"model: {num_blocks: 0}", {"model.num_blocks: must be >= 1, got 0"}},
      {"model:\n  state_dim: 0", {"model.state_dim: must be >= 1, got 0", "(line 2)"}},
      {"model: {hidden_dim: -4}", {"model.hidden_dim: must be >= 1, got -4"}},
      {"model: {r_min: -0.1}", {"model.r_min: must be in [0, 1), got -0.1"}},
      {"model: {r_max: 1}", {"model.r_max: must be in (0, 1), got 1"}},
      {"model: {r_min: 0.9, r_max: 0.9}", {"model.r_max: must be greater than model.r_min (0.9), got 0.9"}},
      {"model:\n  r_max: 0.5\n  r_min: 0.6", {"model.r_min: must be less than model.r_max (0.5), got 0.6", "(line 3)"}},
      {"model: {drop_rate: 1.0}", {"model.drop_rate: must be in [0, 1)"}},
      {"model: {max_phase: 0}", {"model.max_phase: must be in (0, 2*pi]"}},
      {"model: {max_phase: 7}", {"model.max_phase: must be in (0, 2*pi]"}},
      {"training: {num_steps: 0}", {"training.num_steps: must be >= 1"}},
      {"training: {batch_size: 0}", {"training.batch_size: must be >= 1, got 0"}},
      {"training: {lr: 0}", {"training.lr: must be > 0, got 0"}},
      {"training: {lr: -1e-3}", {"training.lr: must be > 0, got -0.001"}},
      {"training: {weight_decay: -0.1}", {"training.weight_decay: must be >= 0"}},
      {"training: {ssm_lr_factor: 0}", {"training.ssm_lr_factor: must be > 0"}},
      {"training: {eval_steps: 0}", {"training.eval_steps: must be >= 1"}},
      {"reduction: {tol: 0}", {"reduction.tol: must be in (0, 1], got 0"}},
      {"reduction: {tol: 1.5}", {"reduction.tol: must be in (0, 1], got 1.5"}},
      {"reduction: {tol: -0.01}", {"reduction.tol: must be in (0, 1]"}},
      {"reduction: {red_start: -1}", {"reduction.red_start: must be >= 0"}},
      {"reduction:\n  red_start: 10\n  red_end: 5", {"reduction.red_end: must be >= reduction.red_start (10), got 5", "(line 3)"}},
      {"reduction: {red_interval: 0}", {"reduction.red_interval: must be >= 1"}},
      {"reduction: {hsv_interval: -5}", {"reduction.hsv_interval: must be >= 0"}},
      {"reduction: {reduction_fraction: 0}", {"reduction.reduction_fraction: must be in (0, 1)"}},
      {"reduction: {reduction_fraction: 1}", {"reduction.reduction_fraction: must be in (0, 1)"}},
      {"reduction: {performance_tolerance: 1.5}", {"reduction.performance_tolerance: must be in [0, 1]"}},
      {"reduction: {red_steps: -3}", {"reduction.red_steps: must be >= 0"}},
      {"seed: -1", {"seed: must be >= 0, got -1"}},
      {"threads: -1", {"threads: must be >= 0"}},
      {"threads: 100000", {"threads: must be <= 4096"}},
      {"checkpoint_every: -10", {"checkpoint_every: must be >= 0"}},
  });
}

TEST(ConfigErrors, UnknownEnumValues) {
  expect_bad_files({
      {"dataset: mnist", {"dataset: expected smnist, sfmnist, scifar, digits, listops, imdb, aan or pathfinder, got \"mnist\""}},
      {"device: gpu", {"device: expected cpu or cuda, got \"gpu\""}},
      {"training: {precision: fp16}", {"training.precision: expected fp32, tf32 or bf16, got \"fp16\""}},
      {"training: {block_ops: on}", {"training.block_ops: expected auto, fused or composed, got \"on\""}},
      {"reduction: {mode: always}", {"reduction.mode: expected none, tolerance, fixed or pragmatic"}},
      {"reduction: {selection: top}", {"reduction.selection: expected largest, smallest or random"}},
      {"reduction: {method: svd}", {"reduction.method: expected sqrtm or chol, got \"svd\""}},
      {"dataset: SMNIST", {"dataset: expected", "got \"SMNIST\""}},
  });
}

TEST(ConfigErrors, DuplicatesAndConflicts) {
  expect_bad_files({
      {"model:\n  state_dim: 1\n  state_dim: 2", {"model.state_dim: given twice", "(line 3)"}},
      {"model: {}\nmodel: {}", {"model: given twice"}},
      {"training:\n  eval_steps: 6\n  print_steps: 5", {"training.print_steps: given together with training.eval_steps"}},
      {"reduction: {red_end: 10, red_steps: 5}", {"reduction.red_steps: given together with reduction.red_end"}},
      {"seed: 1\ntraining: {seed: 2}", {"training.seed: given together with seed"}},
      {"reduction: {save_hsvs: maybe}", {"reduction.save_hsvs: expected true or false"}},
  });
}

TEST(ConfigErrors, MalformedYamlNamesFileAndLine) {
  expect_bad_files({
      {"training:\n  lr: [1\n", {"malformed YAML at line 3"}},
      {"model:\n  state_dim: 4\n bad: 1\n", {"malformed YAML at line 3"}},
      {"dataset: smnist\n- item\n", {"malformed YAML at line 2"}},
      {"a: b: c\n", {"malformed YAML at line 1, column 5"}},
      {"dataset: smnist\n\tseed: 1\n", {"malformed YAML at line 2", "tab"}},
      {"seed: *x\n", {"malformed YAML at line 1", "anchor"}},
      {"a: 1\n---\nb: 2\n", {"holds 2 YAML documents"}},
      {"", {"got an empty document"}},
      {"# only a comment\n", {"got an empty document"}},
  });
  const std::string deep = "a: " + std::string(5000, '[') + std::string(5000, ']');
  expect_message(error_of([&] { parse_config(deep, "deep.yaml"); }), "deep.yaml: ",
                 {"malformed YAML", "nested too deeply"});
  const std::string huge = "# " + std::string(2 << 20, 'x');
  expect_message(error_of([&] { parse_config(huge, "huge.yaml"); }), "huge.yaml: ", {"too large"});
}

TEST(ConfigErrors, MissingOrUnreadableFile) {
  TempDir dir;
  const std::string missing = (dir / "missing.yaml").string();
  expect_message(error_of([&] { load_config(missing); }), missing + ": ", {"config file not found"});
  expect_message(error_of([&] { load_config(dir.path().string()); }), dir.path().string() + ": ",
                 {"is a directory"});
  const std::string bad = dir.write("bad.yaml", "model:\n  state_dim: -3\n").string();
  expect_message(error_of([&] { load_config(bad); }), bad + ": ", {"model.state_dim", "(line 2)"});
}

struct BadOverride {
  std::string assignment;
  std::vector<std::string> parts;
};

TEST(ConfigErrors, BadOverridesNameTheFlag) {
  const std::vector<BadOverride> cases = {
      {"training.lr", {"expected section.key=value"}},
      {"=5", {"expected section.key=value"}},
      {"", {"expected section.key=value"}},
      {"training.epochs=3", {"training.epochs: unknown key", "num_steps"}},
      {"model.state_dim.x=3", {"model.state_dim.x: unknown key"}},
      {"optimizer.lr=3", {"optimizer.lr: unknown key"}},
      {"model=3", {"model: is a section"}},
      {"training.print_steps=3", {"training.print_steps:", "set training.eval_steps"}},
      {"reduction.save_hsvs=true", {"reduction.save_hsvs: has no effect"}},
      {"training.num_steps=ten", {"training.num_steps: expected an integer, got \"ten\""}},
      {"model.num_blocks=2.5", {"model.num_blocks: expected an integer, got 2.5"}},
      {"training.lr=", {"training.lr: expected a number, got null"}},
      {"training.lr=[1", {"training.lr: cannot read the value as YAML"}},
      {"training.lr=a: b", {"training.lr: expected a number, got a mapping"}},
      {"reduction.mode=sometimes", {"reduction.mode: expected none, tolerance"}},
      {"dataset=cifar", {"dataset: expected smnist"}},
      {"model.state_dim=0", {"model.state_dim: must be >= 1, got 0"}},
      {"reduction.tol=1.01", {"reduction.tol: must be in (0, 1]"}},
      {"model.r_max=0.5", {"model.r_max: must be greater than model.r_min (0.9), got 0.5"}},
      {"reduction.red_start=30000", {"reduction.red_start: must be <= reduction.red_end (20000)"}},
      {"training.batch_size=-1", {"training.batch_size: must be >= 1"}},
  };
  for (const auto& bad : cases) {
    SCOPED_TRACE(bad.assignment);
    const std::string message = error_of([&] { load_config(kSmnist, {bad.assignment}); });
    expect_message(message, "--set " + bad.assignment + ": ", bad.parts);
    EXPECT_EQ(message.find("(line"), std::string::npos);
  }
  // A flag that is not UTF-8 itself is shown escaped.
  expect_message(error_of([&] { load_config(kSmnist, {"data_dir=/d/\xe9"}); }), "--set \"data_dir=/d/\\ufffd\": ",
                 {"data_dir: is not valid UTF-8 (byte 3)"});
  // Only the failing flag is named, and a file error still names the file.
  expect_message(error_of([&] { load_config(kSmnist, {"seed=1", "threads=x", "seed=2"}); }),
                 "--set threads=x: ", {"threads: expected an integer"});
  Config scratch;
  expect_message(error_of([&] { apply_override(scratch, "foo=1"); }), "--set foo=1: ",
                 {"foo: unknown key"});
}

TEST(ConfigErrors, ValidateNamesTheGivenSource) {
  Config c;
  c.training.lr = -1.0;
  expect_message(error_of([&] { validate(c, "run/config.yaml"); }), "run/config.yaml: ",
                 {"training.lr: must be > 0"});
  c = Config{};
  c.model.drop_rate = std::nan("");
  expect_message(error_of([&] { validate(c); }), "config: ", {"model.drop_rate"});
  c = Config{};
  c.data_dir = "/d/\xc3";  // a lead byte without its continuation
  expect_message(error_of([&] { validate(c); }), "config: ", {"data_dir: is not valid UTF-8 (byte 3)"});
  c.data_dir = "/d/\xc3\xa9t\xc3\xa9";  // "/d/été": valid
  EXPECT_NO_THROW(validate(c));
}

}  // namespace
