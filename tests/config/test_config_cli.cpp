// `compressm config`: the effective config as JSON on stdout, exit 0; bad input
// exits 2 with exactly one stderr line naming the file or flag and the key.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "cli_runner.h"

namespace {

using compressm::testing::run_cli;
using compressm::testing::TempDir;

const std::string kSmnist = std::string(COMPRESSM_SOURCE_DIR) + "/configs/smnist.yaml";

int line_count(const std::string& text) {
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

TEST(CliConfig, PrintsTheEffectiveConfigWithOverrides) {
  const auto result = run_cli({"config", "--config", kSmnist, "--set", "training.lr=0.01"});
  ASSERT_EQ(result.status, 0) << result.err;
  EXPECT_TRUE(result.err.empty()) << result.err;
  const auto json = nlohmann::ordered_json::parse(result.out);
  EXPECT_EQ(json["training"]["lr"].get<double>(), 0.01);
  EXPECT_EQ(json["dataset"], "smnist");
  EXPECT_EQ(json["model"]["state_dim"], 256);
  EXPECT_EQ(json.begin().key(), "dataset");  // the file's key order
}

TEST(CliConfig, RepeatedSetFlagsApplyInOrder) {
  const auto result = run_cli({"config", "--config", kSmnist, "--set", "model.state_dim=64",
                               "--set", "dataset=digits", "--set=reduction.mode=tolerance",
                               "--set", "model.state_dim=32"});
  ASSERT_EQ(result.status, 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json["model"]["state_dim"], 32);
  EXPECT_EQ(json["dataset"], "digits");
  EXPECT_EQ(json["reduction"]["mode"], "tolerance");
}

TEST(CliConfig, OlderReferenceKeysLoadWithAWarning) {
  const std::string file =
      std::string(COMPRESSM_SOURCE_DIR) + "/tests/config/reference/configs/smnist.yaml";
  const auto result = run_cli({"config", "--config", file});
  ASSERT_EQ(result.status, 0) << result.err;
  EXPECT_EQ(nlohmann::json::parse(result.out)["training"]["eval_steps"], 5000);
  EXPECT_EQ(line_count(result.err), 4) << result.err;
  EXPECT_EQ(result.err.rfind("compressm: warning: " + file + ": training.print_steps", 0), 0u)
      << result.err;
}

// A dataset the config knows but the readers do not: valid, with a warning.
TEST(CliConfig, ADatasetWithoutReaderIsValidWithAWarning) {
  const auto result = run_cli({"config", "--config", kSmnist, "--set", "dataset=listops"});
  ASSERT_EQ(result.status, 0) << result.err;
  EXPECT_EQ(nlohmann::json::parse(result.out)["dataset"], "listops");
  EXPECT_EQ(line_count(result.err), 1) << result.err;
  EXPECT_NE(result.err.find("dataset listops is a valid config, but train, eval and bench cannot read it yet"),
            std::string::npos)
      << result.err;
}

void expect_bad_input(const std::vector<std::string>& args, const std::string& names) {
  const auto result = run_cli(args);
  SCOPED_TRACE(result.err);
  EXPECT_EQ(result.status, 2);
  EXPECT_TRUE(result.out.empty()) << result.out;
  EXPECT_EQ(line_count(result.err), 1);
  EXPECT_EQ(result.err.rfind("compressm: error: ", 0), 0u);
  EXPECT_NE(result.err.find(names), std::string::npos) << "stderr should name " << names;
}

TEST(CliConfig, BadInputExitsTwoWithOneLine) {
  TempDir dir;
  const std::string bad = dir.write("bad.yaml", "training:\n  num_steps: ten\n").string();
  expect_bad_input({"config", "--config", bad}, bad + ": training.num_steps: expected an integer");
  const std::string unknown = dir.write("unknown.yaml", "model:\n  width: 3\n").string();
  expect_bad_input({"config", "--config", unknown}, unknown + ": model.width: unknown key");
  const std::string malformed = dir.write("malformed.yaml", "model: [1\n").string();
  expect_bad_input({"config", "--config", malformed}, malformed + ": malformed YAML at line");
  expect_bad_input({"config", "--config", (dir / "none.yaml").string()}, "none.yaml: config file not found");
  expect_bad_input({"config", "--config", kSmnist, "--set", "reduction.tol=2"},
                   "--set reduction.tol=2: reduction.tol: must be in (0, 1]");
  expect_bad_input({"config", "--config", kSmnist, "--set", "training.lr"},
                   "--set training.lr: expected section.key=value");
  expect_bad_input({"config", "--config", kSmnist, "--set", "a=1", "b=2"}, "b=2");
  expect_bad_input({"config"}, "--config");
}

}  // namespace
