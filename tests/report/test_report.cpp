// The run report: plots with titles, axis labels and legends; the Markdown
// table with the speed-up against the first run and per-seed groups; bad
// run folders rejected with the file named.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/cli_runner.h"
#include "io/system_json.h"
#include "report/run_report.h"
#include "report/svg_plot.h"
#include "support/temp_dir.h"

namespace compressm::report {
namespace {
namespace fs = std::filesystem;
using compressm::testing::TempDir;

// A run folder as `compressm train` leaves it, with one reduction of one block.
fs::path write_run(const fs::path& folder, double wall_time, double accuracy, bool reduced) {
  fs::create_directories(folder);
  nlohmann::json m = {{"steps", {100, 200}},
                      {"val_accuracy", {0.5, accuracy}},
                      {"test_accuracy", {0.5, accuracy}},
                      {"elapsed_s", {wall_time / 2, wall_time}},
                      {"state_dims", reduced ? nlohmann::json({{8}, {8}}) : nlohmann::json({{32}, {32}})},
                      {"final_state_dims", reduced ? nlohmann::json({8}) : nlohmann::json({32})},
                      {"final_test_accuracy", accuracy},
                      {"best_test_accuracy", accuracy},
                      {"wall_time_s", wall_time},
                      {"reduction_history", nlohmann::json::array()}};
  if (reduced)
    m["reduction_history"].push_back({{"step", 50}, {"block", 0}, {"old_dim", 32}, {"new_dim", 8},
                                      {"rolled_back", false}, {"hsv", {3.0, 1.0, 0.1, 0.01}}});
  std::ofstream(folder / "metrics.json") << m.dump();
  std::ofstream(folder / "config.yaml") << "dataset: digits\n";
  return folder;
}

std::string read(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(SvgPlot, HasTitleAxisLabelsLegendAndOneLinePerSeries) {
  LinePlot plot{"Title <1>", "time (s)", "accuracy (%)"};
  plot.series.push_back({"run a", {0, 1, 2}, {10, 20, 30}});
  plot.series.push_back({"run b", {0, 1}, {5, 15}});
  const std::string svg = render_svg(plot);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  for (const char* text : {"Title &lt;1&gt;", "time (s)", "accuracy (%)", "run a", "run b"})
    EXPECT_NE(svg.find(text), std::string::npos) << text;
  size_t lines = 0;
  for (size_t at = svg.find("<polyline"); at != std::string::npos; at = svg.find("<polyline", at + 1)) ++lines;
  EXPECT_EQ(lines, 2u);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
}

TEST(SvgPlot, LogAxisSkipsNonPositiveValuesAndEmptyDataSaysSo) {
  LinePlot plot{"HSV", "i", "sigma", true};
  plot.series.push_back({"s", {1, 2, 3}, {1.0, 0.0, 1e-3}});
  const std::string svg = render_svg(plot);
  EXPECT_NE(svg.find("1e-3"), std::string::npos);
  EXPECT_NE(svg.find("1e0"), std::string::npos);
  LinePlot empty{"Nothing", "x", "y"};
  EXPECT_NE(render_svg(empty).find("no data"), std::string::npos);
}

TEST(SvgPlot, NiceTicksCoverTheRange) {
  const auto ticks = nice_ticks(0, 97, 6);
  ASSERT_GE(ticks.size(), 4u);
  EXPECT_EQ(ticks.front(), 0);
  EXPECT_LE(ticks.back(), 97);
  EXPECT_GT(ticks.back(), 70);
}

TEST(RunReport, WritesThePageThePlotsAndTheTable) {
  TempDir dir;
  const fs::path full = write_run(dir.path() / "full", 100.0, 0.90, false);
  const fs::path small = write_run(dir.path() / "compressed", 40.0, 0.88, true);
  const std::vector<RunSummary> runs = {read_run(full), read_run(small)};
  const fs::path page = write_report(runs, dir.path() / "report");
  EXPECT_EQ(page, dir.path() / "report" / "index.html");
  const std::string html = read(page);
  for (const char* name : {"val_accuracy_vs_time.svg", "state_dimension.svg", "hsv_run2_block0.svg"}) {
    EXPECT_TRUE(fs::exists(dir.path() / "report" / name)) << name;
    EXPECT_NE(html.find(name), std::string::npos) << name;
  }
  EXPECT_NE(read(dir.path() / "report" / "hsv_run2_block0.svg").find("step 50: 32 -&gt; 8"), std::string::npos);
  const std::string md = read(dir.path() / "report" / "summary.md");
  EXPECT_NE(md.find("| full | 90.00 | 90.00 | [32] | 0 | 100.0 | 1.00x |"), std::string::npos) << md;
  EXPECT_NE(md.find("| compressed | 88.00 | 88.00 | [8] | 1 | 40.0 | 2.50x |"), std::string::npos) << md;
  EXPECT_NE(html.find("<table>"), std::string::npos);
}

// Wall times of runs of another length than the first run's give no speed-up.
TEST(RunReport, SpeedUpOnlyBetweenRunsOfTheSameLength) {
  TempDir dir;
  RunSummary longer = read_run(write_run(dir.path() / "longer", 400.0, 0.95, false));
  longer.metrics["steps"] = {100, 200, 400, 800};
  const std::string md = markdown_summary({read_run(write_run(dir.path() / "full", 100.0, 0.90, false)), longer});
  EXPECT_NE(md.find("| longer | 95.00 | 95.00 | [32] | 0 | 400.0 | n/a (800 steps) |"), std::string::npos) << md;
  EXPECT_NE(md.find("test acc. at best val."), std::string::npos) << md;
}

TEST(RunReport, GroupsSeedsWithMeanAndSpread) {
  TempDir dir;
  std::vector<RunSummary> runs;
  runs.push_back(read_run(write_run(dir.path() / "tol_seed0", 10, 0.80, true)));
  runs.push_back(read_run(write_run(dir.path() / "tol_seed1", 10, 0.90, true)));
  const std::string md = markdown_summary(runs);
  EXPECT_NE(md.find("| tol | 2 | 85.00 ± 7.07 | 8.0 | 10.0 |"), std::string::npos) << md;
  EXPECT_EQ(seed_group("a_seed12"), "a");
  EXPECT_EQ(seed_group("a-seed3"), "a");
  EXPECT_EQ(seed_group("seedless"), "seedless");
}

TEST(RunReport, BadRunFoldersNameTheFile) {
  TempDir dir;
  EXPECT_THROW(read_run(dir.path() / "absent"), io::InputError);
  fs::create_directories(dir.path() / "broken");
  std::ofstream(dir.path() / "broken" / "metrics.json") << "{\"steps\": [1,";
  try {
    read_run(dir.path() / "broken");
    FAIL() << "no error";
  } catch (const io::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("broken/metrics.json"), std::string::npos) << e.what();
  }
  fs::create_directories(dir.path() / "partial");
  std::ofstream(dir.path() / "partial" / "metrics.json") << "{\"steps\": [1]}";
  try {
    read_run(dir.path() / "partial");
    FAIL() << "no error";
  } catch (const io::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("val_accuracy"), std::string::npos) << e.what();
  }
}

TEST(ReportCli, WritesTheReportAndRejectsAMissingRunWithExitTwo) {
  TempDir dir;
  write_run(dir.path() / "run", 5, 0.5, true);
  const auto ok = testing::run_cli({"report", (dir.path() / "run").string(), "--out", (dir.path() / "out").string()});
  ASSERT_EQ(ok.status, 0) << ok.err;
  EXPECT_NE(ok.out.find("index.html"), std::string::npos) << ok.out;
  EXPECT_TRUE(fs::exists(dir.path() / "out" / "index.html"));
  const auto bad = testing::run_cli({"report", (dir.path() / "nope").string(), "--out", (dir.path() / "o2").string()});
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("nope/metrics.json"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace compressm::report
