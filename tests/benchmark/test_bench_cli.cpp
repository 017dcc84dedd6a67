// `compressm bench` as a user runs it: a tiny digits-shaped model for a few
// steps on the CPU (no data files needed: the batch is synthetic). The last
// stdout line is JSON with ms_per_step and the configuration measured; bad
// flags exit 2 with one line on stderr. Times are only checked to be positive.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <cmath>
#include <sstream>

#include "cli/cli_runner.h"

namespace compressm::testing {
namespace {

const std::string kConfig = std::string(COMPRESSM_SOURCE_DIR) + "/configs/digits_fast.yaml";

std::vector<std::string> bench_args(std::vector<std::string> extra) {
  std::vector<std::string> args = {"bench", "--config", kConfig, "--set", "model.state_dim=12", "--set",
                                   "model.hidden_dim=4", "--set", "training.batch_size=5", "--set", "threads=1"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

std::string last_line(const std::string& text) {
  std::istringstream lines(text);
  std::string line, last;
  while (std::getline(lines, line))
    if (!line.empty()) last = line;
  return last;
}

int line_count(const std::string& text) {
  int count = 0;
  for (char c : text) count += c == '\n';
  return count;
}

TEST(BenchCli, LastLineIsJsonWithTheConfigurationMeasured) {
  const CliResult r = run_cli(bench_args({"--steps", "3", "--warmup", "1", "--device", "cpu", "--set",
                                          "model.num_blocks=2", "--set", "model.drop_rate=0.25", "--set",
                                          "training.block_ops=composed"}));
  ASSERT_EQ(r.status, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(last_line(r.out));
  EXPECT_GT(j.at("ms_per_step").get<double>(), 0.0);
  EXPECT_GT(j.at("cpu_ms_per_step").get<double>(), 0.0);
  EXPECT_EQ(j.at("steps").get<int>(), 3);
  EXPECT_EQ(j.at("warmup_steps").get<int>(), 1);
  EXPECT_EQ(j.at("state_dims"), nlohmann::json::array({12, 12}));
  EXPECT_EQ(j.at("num_blocks").get<int>(), 2);
  EXPECT_EQ(j.at("hidden_dim").get<int>(), 4);
  EXPECT_EQ(j.at("batch_size").get<int>(), 5);
  EXPECT_EQ(j.at("length").get<int>(), 64);  // digits: 8 x 8 pixels
  EXPECT_EQ(j.at("device").get<std::string>(), "cpu");
  EXPECT_EQ(j.at("threads").get<int>(), 1);
  EXPECT_EQ(j.at("precision").get<std::string>(), "fp32");
  EXPECT_EQ(j.at("block_ops").get<std::string>(), "composed");
  EXPECT_EQ(j.at("dropout").get<double>(), 0.25);
  EXPECT_FALSE(j.at("cuda_graph").get<bool>());
  EXPECT_FALSE(j.at("queued_ahead").get<bool>());  // only graphed CUDA steps queue ahead
  EXPECT_TRUE(std::isfinite(j.at("final_loss").get<double>()));
  // --sync (graphed CUDA steps one at a time) is accepted anywhere; on the CPU it changes nothing.
  const CliResult sync = run_cli(bench_args({"--steps", "2", "--warmup", "0", "--device", "cpu", "--sync"}));
  ASSERT_EQ(sync.status, 0) << sync.err;
  EXPECT_FALSE(nlohmann::json::parse(last_line(sync.out)).at("queued_ahead").get<bool>());
}

TEST(BenchCli, Bf16AndTf32OnTheCpu) {
  const CliResult bf16 = run_cli(bench_args({"--steps", "2", "--set", "training.precision=bf16"}));
  ASSERT_EQ(bf16.status, 0) << bf16.err;
  EXPECT_EQ(nlohmann::json::parse(last_line(bf16.out)).at("precision").get<std::string>(), "bf16");
  const CliResult tf32 = run_cli(bench_args({"--steps", "2", "--set", "training.precision=tf32"}));
  ASSERT_EQ(tf32.status, 0) << tf32.err;
  EXPECT_NE(tf32.err.find("warning: training.precision tf32"), std::string::npos) << tf32.err;
}

TEST(BenchCli, BadFlagsExitTwoWithOneLine) {
  const std::vector<std::vector<std::string>> cases = {
      bench_args({"--steps", "0"}),
      bench_args({"--steps", "2", "--warmup", "-1"}),
      bench_args({"--steps", "2", "--device", "tpu"}),
      bench_args({"--steps", "two"}),
      bench_args({}),  // no --steps
      {"bench", "--steps", "2"},  // no --config
      {"bench", "--config", "/nonexistent.yaml", "--steps", "2"},
      bench_args({"--steps", "2", "--set", "dataset=listops"}),
      bench_args({"--steps", "2", "--set", "model.hidden_dim=0"}),
  };
  for (const auto& args : cases) {
    const CliResult r = run_cli(args);
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    EXPECT_EQ(r.status, 2) << joined << "\n" << r.err;
    EXPECT_EQ(line_count(r.err), 1) << joined << "\n" << r.err;
    EXPECT_TRUE(r.out.empty()) << joined;
  }
}

}  // namespace
}  // namespace compressm::testing
