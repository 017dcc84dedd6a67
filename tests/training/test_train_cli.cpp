// `compressm train` / `compressm eval` as a user runs them: the run folder,
// kill -9 and resume to identical metrics, damaged checkpoints, eval --json.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <torch/cuda.h>
#include <thread>

#include "cli/cli_runner.h"
#include "config/config.h"
#include "data_readers/synthetic_files.h"
#include "data/dataset.h"
#include "support/temp_dir.h"
#include "training/checkpoint.h"

namespace compressm::testing {
namespace {
namespace fs = std::filesystem;

const std::string kConfigPath = std::string(COMPRESSM_SOURCE_DIR) + "/tests/training/digits_train.yaml";
// 300 steps, evaluation every 50, checkpoints every 75 (not a multiple of
// eval_steps, so a checkpoint falls between evaluations).
const std::vector<std::string> kShortRun = {"--set", "training.num_steps=300", "--set", "training.eval_steps=50",
                                            "--set", "checkpoint_every=75"};

bool digits_available() {
  const std::string dir = data::default_data_dir("digits");
  return fs::exists(dir + "/digits.csv.gz") || fs::exists(dir + "/digits.csv");
}

std::vector<std::string> train_args(const fs::path& out) {
  std::vector<std::string> args = {"train", "--config", kConfigPath, "--out", out.string()};
  args.insert(args.end(), kShortRun.begin(), kShortRun.end());
  return args;
}

nlohmann::json read_json(const fs::path& path) { return nlohmann::json::parse(read_text(path)); }

bool is_one_error_line(const std::string& err) {
  return err.rfind("compressm: error: ", 0) == 0 && err.find('\n') == err.size() - 1;
}

// The columns of curve.csv that do not depend on timing (all but elapsed_s).
std::string curve_without_time(const fs::path& path) {
  std::string text = read_text(path), out;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    const std::string line = text.substr(start, end - start);
    out += line.substr(0, line.rfind(',')) + "\n";
    start = end == std::string::npos ? text.size() : end + 1;
  }
  return out;
}

// metrics.json without the keys that measure time.
nlohmann::json metrics_without_timing(const fs::path& path) {
  nlohmann::json m = read_json(path);
  for (const char* timing : {"wall_time_s", "data_wait_fraction", "elapsed_s", "step_time_ms", "train_steps_per_s",
                             "steady_steps_per_s", "step_ms_median"})
    m.erase(timing);
  for (auto& event : m["reduction_history"]) {
    event.erase("wall_ms");
    event.erase("hinf_ms");
  }
  return m;
}

// One uninterrupted run shared by the tests of this file (it takes seconds).
class TrainCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!digits_available()) return;
    dir_ = new TempDir();
    result_ = new CliResult(run_cli(train_args(run())));
  }
  static void TearDownTestSuite() {
    delete result_;
    delete dir_;
  }
  void SetUp() override {
    if (!digits_available()) GTEST_SKIP() << "scikit-learn's digits not installed (python3-sklearn)";
    ASSERT_EQ(result_->status, 0) << result_->err;
  }
  static fs::path run() { return dir_->path() / "run"; }
  static TempDir* dir_;
  static CliResult* result_;
};
TempDir* TrainCli::dir_ = nullptr;
CliResult* TrainCli::result_ = nullptr;

TEST_F(TrainCli, WritesTheRunFolder) {
  for (const char* name : {"config.yaml", "metrics.json", "curve.csv", "final/manifest.json", "final/model.bin",
                           "final/optimizer.bin", "final/state.json", "checkpoints/step_000075/manifest.json",
                           "checkpoints/step_000225/manifest.json"})
    EXPECT_TRUE(fs::exists(run() / name)) << name;
  EXPECT_FALSE(fs::exists(run() / "checkpoints/step_000300"));  // the last step is final/
  const nlohmann::json m = read_json(run() / "metrics.json");
  for (const char* key : {"steps", "train_accuracy", "val_accuracy", "test_accuracy", "best_test_accuracy",
                          "best_step", "final_state_dims", "reduction_history", "wall_time_s", "data_wait_fraction",
                          "train_steps_per_s", "steady_steps_per_s", "step_ms_median", "device"})
    EXPECT_TRUE(m.contains(key)) << key;
  EXPECT_EQ(m["device"], "cpu");
  EXPECT_GT(m["train_steps_per_s"].get<double>(), 0.0);
  EXPECT_GT(m["steady_steps_per_s"].get<double>(), 0.0);
  EXPECT_GT(m["step_ms_median"].get<double>(), 0.0);
  EXPECT_EQ(m["steps"], nlohmann::json({50, 100, 150, 200, 250, 300}));
  EXPECT_EQ(m["val_accuracy"].size(), 6u);
  EXPECT_EQ(m["final_state_dims"], nlohmann::json({64}));
  EXPECT_TRUE(m["reduction_history"].empty());
  const std::string curve = read_text(run() / "curve.csv");
  EXPECT_EQ(curve.substr(0, curve.find('\n')), "step,loss,train_acc,val_acc,test_acc,state_dims,elapsed_s");
  EXPECT_NE(result_->err.find("test at best val"), std::string::npos) << result_->err;  // the summary table
}

TEST_F(TrainCli, RefusesToOverwriteANonEmptyRunFolder) {
  const CliResult again = run_cli(train_args(run()));
  EXPECT_EQ(again.status, 2);
  EXPECT_TRUE(is_one_error_line(again.err)) << again.err;
  EXPECT_NE(again.err.find("--out"), std::string::npos) << again.err;
}

TEST_F(TrainCli, DeviceCudaWithoutAGpuIsAUsageErrorBeforeAnyFile) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "this build has a GPU: device cuda is valid here";
  TempDir dir;
  std::vector<std::string> args = train_args(dir.path() / "run");
  args.insert(args.end(), {"--set", "device=cuda"});
  const CliResult result = run_cli(args);
  EXPECT_EQ(result.status, 2);
  EXPECT_TRUE(is_one_error_line(result.err)) << result.err;
  EXPECT_NE(result.err.find("device: cuda"), std::string::npos) << result.err;
  EXPECT_FALSE(fs::exists(dir.path() / "run"));
}

// Starts `compressm ARGS` in a child process with stderr into `err_file`
// (stdout to /dev/null); returns its pid.
pid_t spawn_cli(std::vector<std::string> args, const fs::path& err_file) {
  const pid_t child = fork();
  if (child == 0) {
    freopen("/dev/null", "w", stdout);
    freopen(err_file.c_str(), "w", stderr);
    std::vector<char*> argv = {const_cast<char*>(COMPRESSM_CLI_PATH)};
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(COMPRESSM_CLI_PATH, argv.data());
    _exit(127);
  }
  return child;
}

// Waits up to two minutes for `ready`; false if it never held.
bool wait_for(const std::function<bool()>& ready) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!ready()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// Ctrl-C (SIGINT) stops the loop after the step in flight, writes a
// checkpoint of it and exits 130; --resume from there ends exactly as the
// uninterrupted run.
TEST_F(TrainCli, InterruptedRunCheckpointsItsLastStepAndResumesToTheSameMetrics) {
  TempDir dir;
  const fs::path stopped = dir / "stopped";
  const fs::path err = dir / "stderr.txt";
  const pid_t child = spawn_cli(train_args(stopped), err);
  ASSERT_GE(child, 0);
  // The first evaluation's progress line (step 50 of 300) is out: the loop is running.
  ASSERT_TRUE(wait_for([&] { return read_text(err).find("step 50/300") != std::string::npos; })) << read_text(err);
  // Twice, as Ctrl-C under `timeout` delivers it (the second once the first
  // was handled: two pending ones would merge): one request.
  kill(child, SIGINT);
  EXPECT_TRUE(wait_for([&] { return read_text(err).find("compressm: stopping") != std::string::npos; }));
  kill(child, SIGINT);
  int status = 0;
  waitpid(child, &status, 0);
  const std::string log = read_text(err);
  ASSERT_TRUE(WIFEXITED(status)) << log;
  ASSERT_EQ(WEXITSTATUS(status), 130) << log;
  const size_t at = log.find("stopped at step ");
  ASSERT_NE(at, std::string::npos) << log;
  const int step = std::stoi(log.substr(at + 16));
  EXPECT_GE(step, 50);
  EXPECT_LT(step, 300);
  char name[64];
  std::snprintf(name, sizeof name, "checkpoints/step_%06d/manifest.json", step);
  EXPECT_TRUE(fs::exists(stopped / name)) << log;
  EXPECT_FALSE(fs::exists(stopped / "final"));
  EXPECT_FALSE(fs::exists(stopped / "metrics.json"));

  // Resumed with checkpoints every 10 steps (a key a resume may change).
  const CliResult resumed = run_cli({"train", "--resume", stopped.string(), "--set", "checkpoint_every=10"});
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_TRUE(fs::exists(stopped / "checkpoints/step_000290/manifest.json"));
  EXPECT_EQ(metrics_without_timing(run() / "metrics.json"), metrics_without_timing(stopped / "metrics.json"));
  EXPECT_EQ(read_text(run() / "final/model.bin"), read_text(stopped / "final/model.bin"));
}

// While one process trains in a run folder, a second `train` on it is refused
// and changes nothing.
TEST_F(TrainCli, ASecondTrainOnABusyRunFolderIsRefused) {
  TempDir dir;
  const fs::path busy = dir / "busy";
  std::vector<std::string> args = train_args(busy);
  // Long enough to be running throughout; short enough that a second run
  // let in by mistake (it would start over) ends the test in seconds.
  args.insert(args.end(), {"--set", "training.num_steps=2000", "--set", "checkpoint_every=0"});
  const pid_t child = spawn_cli(args, dir / "stderr.txt");
  ASSERT_GE(child, 0);
  ASSERT_TRUE(wait_for([&] { return read_text(dir / "stderr.txt").find("step 50/2000") != std::string::npos; }));
  const CliResult second = run_cli({"train", "--resume", busy.string()});
  kill(child, SIGINT);
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_EQ(second.status, 2) << second.err;
  EXPECT_TRUE(is_one_error_line(second.err)) << second.err;
  EXPECT_NE(second.err.find("another compressm process is training in this folder"), std::string::npos) << second.err;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 130) << read_text(dir / "stderr.txt");
}

// A resumed run keeps its config: the message names each key that differs;
// threads, data_dir and checkpoint_every may change.
TEST_F(TrainCli, ResumeNamesTheConfigKeysThatDifferAndAllowsRuntimeOnes) {
  const CliResult changed = run_cli({"train", "--resume", run().string(), "--set", "training.num_steps=60", "--set",
                                     "model.state_dim=32"});
  EXPECT_EQ(changed.status, 2);
  EXPECT_TRUE(is_one_error_line(changed.err)) << changed.err;
  EXPECT_NE(changed.err.find("model.state_dim (was 64, now 32), training.num_steps (was 300, now 60)"),
            std::string::npos)
      << changed.err;
  EXPECT_NE(changed.err.find("(only threads, data_dir and checkpoint_every may change)"), std::string::npos)
      << changed.err;
  const CliResult runtime = run_cli({"train", "--resume", run().string(), "--set", "threads=2", "--set",
                                     "checkpoint_every=10"});
  EXPECT_EQ(runtime.status, 0) << runtime.err;
  EXPECT_NE(runtime.err.find("already finished"), std::string::npos) << runtime.err;
}

// A run stopped before its first checkpoint was published (and without
// metrics.json; here killed while staging it) starts over on --resume and
// ends as the uninterrupted run.
TEST_F(TrainCli, ResumeOfARunWithoutCheckpointsStartsItOver) {
  TempDir dir;
  const fs::path copy = dir / "copy";
  fs::create_directories(copy / "checkpoints/.step_000075.partial");
  fs::copy(run() / "config.yaml", copy / "config.yaml");
  fs::copy(run() / "checkpoints/step_000075/model.bin", copy / "checkpoints/.step_000075.partial/model.bin");
  const CliResult resumed = run_cli({"train", "--resume", copy.string()});
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("starting the run over from step 0"), std::string::npos) << resumed.err;
  EXPECT_EQ(metrics_without_timing(run() / "metrics.json"), metrics_without_timing(copy / "metrics.json"));
}

// `train --resume folder` is refused: exit 2, one error line holding every part.
void expect_resume_refused(const fs::path& folder, const std::vector<std::string>& parts) {
  const CliResult r = run_cli({"train", "--resume", folder.string()});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(is_one_error_line(r.err)) << r.err;
  for (const std::string& part : parts) EXPECT_NE(r.err.find(part), std::string::npos) << r.err;
}

// A finished run that lost its metrics.json (it ended between final/ and
// metrics.json) gets the same file back on --resume, from final/state.json.
TEST_F(TrainCli, AResumeOfAFinishedRunWithoutMetricsWritesThemAgain) {
  TempDir dir;
  const fs::path copy = dir / "copy";
  fs::copy(run(), copy, fs::copy_options::recursive);
  fs::remove(copy / "metrics.json");
  fs::remove(copy / "curve.csv");
  const CliResult r = run_cli({"train", "--resume", copy.string()});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("compressm: wrote " + (copy / "metrics.json").string() + " from final/"), std::string::npos)
      << r.err;
  EXPECT_EQ(read_json(copy / "metrics.json"), read_json(run() / "metrics.json"));
  EXPECT_EQ(read_text(copy / "curve.csv"), read_text(run() / "curve.csv"));
}

// A checkpoint copied in from another run (the same model, another learning
// rate) is refused, naming the keys its own config.yaml differs in.
TEST_F(TrainCli, ACheckpointOfAnotherRunIsRefused) {
  TempDir dir;
  std::vector<std::string> args = train_args(dir / "other");
  args.insert(args.end(), {"--set", "training.lr=0.02", "--set", "training.num_steps=100"});
  ASSERT_EQ(run_cli(args).status, 0);
  const fs::path mixed = dir / "mixed";
  fs::create_directories(mixed / "checkpoints");
  fs::copy(run() / "config.yaml", mixed / "config.yaml");
  fs::copy(dir / "other/checkpoints/step_000075", mixed / "checkpoints/step_000075", fs::copy_options::recursive);
  expect_resume_refused(mixed, {(mixed / "checkpoints/step_000075/config.yaml").string() +
                                     ": the checkpoint was written with another config than the run's, in ",
                                 "training.lr (was 0.02, now 0.01)"});
  EXPECT_FALSE(fs::exists(mixed / "metrics.json"));
}

// A saved data position that does not fit the training data read now (resumed
// with another data_dir) is named in state.json's terms, not the loader's.
TEST_F(TrainCli, ADataPositionOutsideTheDataIsRefused) {
  TempDir dir;
  const fs::path copy = dir / "copy";
  fs::create_directories(copy / "checkpoints");
  fs::copy(run() / "config.yaml", copy / "config.yaml");
  training::CheckpointContents contents = training::read_checkpoint(run() / "checkpoints/step_000075");
  contents.state["loader"]["position"] = 999999;
  training::write_checkpoint(contents, copy / "checkpoints/step_000075");
  expect_resume_refused(copy, {(copy / "checkpoints/step_000075/state.json").string() + ": data position {epoch ",
                                "example 999999} does not fit the "});
}

// A run whose loss turns NaN stops there with a clear error (exit 2) and
// writes no checkpoint, final model or metrics of the diverged model.
TEST_F(TrainCli, ADivergedRunStopsWithAClearError) {
  TempDir dir;
  std::vector<std::string> args = train_args(dir / "diverged");
  args.insert(args.end(), {"--set", "training.lr=1e6"});
  const CliResult r = run_cli(args);
  EXPECT_EQ(r.status, 2) << r.err;
  const std::string last = r.err.substr(r.err.rfind("compressm: "));
  EXPECT_NE(last.find("compressm: error: training diverged at step "), std::string::npos) << r.err;
  EXPECT_NE(last.find("(loss nan): try a lower training.lr"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "diverged/final"));
  EXPECT_FALSE(fs::exists(dir / "diverged/metrics.json"));
  EXPECT_FALSE(fs::exists(dir / "diverged/checkpoints"));
}

// A reducing config shortened so that no reduction step falls in the run says so (num_steps or red_end).
TEST_F(TrainCli, ReductionWindowAfterTheLastStepIsAWarning) {
  TempDir dir;
  std::vector<std::string> args = {"train", "--config", kConfigPath, "--out", (dir / "r").string(), "--set",
                                   "training.num_steps=30", "--set", "training.eval_steps=30", "--set",
                                   "reduction.mode=tolerance", "--set", "reduction.red_interval=50"};
  const CliResult r = run_cli(args);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("compressm: warning: reduction.mode tolerance, but no reduction step falls in the run: the "
                       "first would be step 50"),
            std::string::npos)
      << r.err;
  args[4] = (dir / "r2").string();
  args.back() = "reduction.red_interval=10";
  const CliResult reduced = run_cli(args);
  ASSERT_EQ(reduced.status, 0) << reduced.err;
  EXPECT_EQ(reduced.err.find("no reduction step falls in the run"), std::string::npos) << reduced.err;
  // A window that closes before its first grid step: the same warning.
  args[4] = (dir / "r3").string();
  args.insert(args.end(), {"--set", "reduction.red_end=5"});
  const CliResult closed = run_cli(args);
  ASSERT_EQ(closed.status, 0) << closed.err;
  EXPECT_NE(closed.err.find("no reduction step falls in the run: the first would be step 10 (red_start 0, "
                            "red_interval 10, red_end 5)"),
            std::string::npos)
      << closed.err;
}

// New-run folder problems: a file, and a dataset that is missing (no folder is left behind).
TEST_F(TrainCli, OutThatIsAFileOrDataThatIsMissingLeavesNothing) {
  TempDir dir;
  const fs::path file = dir.write("afile", "");
  CliResult r = run_cli(train_args(file));
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("exists and is not a folder"), std::string::npos) << r.err;
  std::vector<std::string> args = train_args(dir / "nodata");
  args.insert(args.end(), {"--set", "data_dir=" + (dir / "missing").string()});
  r = run_cli(args);
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(is_one_error_line(r.err)) << r.err;
  EXPECT_NE(r.err.find((dir / "missing").string()), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "nodata"));
  // A batch larger than the training split: named, before any folder is made.
  args = train_args(dir / "bigbatch");
  args.insert(args.end(), {"--set", "training.batch_size=100000"});
  r = run_cli(args);
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(is_one_error_line(r.err)) << r.err;
  EXPECT_NE(r.err.find(kConfigPath + ": training.batch_size 100000 is larger than the "), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "bigbatch"));
  // Inside a checkpoint folder: refused, the checkpoint still loads.
  r = run_cli(train_args(run() / "final" / "sub"));
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("inside the checkpoint folder"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(run() / "final" / "sub"));
}

TEST_F(TrainCli, KilledAndResumedRunEndsWithExactlyTheSameMetrics) {
  TempDir dir;
  const fs::path killed = dir / "killed";
  std::vector<std::string> args = train_args(killed);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Quiet child: the progress goes nowhere.
    freopen("/dev/null", "w", stderr);
    std::vector<char*> argv = {const_cast<char*>(COMPRESSM_CLI_PATH)};
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(COMPRESSM_CLI_PATH, argv.data());
    _exit(127);
  }
  // SIGKILL as soon as the first checkpoint is published.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!fs::exists(killed / "checkpoints/step_000075") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the run ended before it could be killed";
  ASSERT_TRUE(fs::exists(killed / "checkpoints/step_000075/manifest.json"));
  ASSERT_FALSE(fs::exists(killed / "final"));

  const CliResult resumed = run_cli({"train", "--resume", killed.string()});
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("resuming"), std::string::npos) << resumed.err;

  const nlohmann::json a = metrics_without_timing(run() / "metrics.json");
  const nlohmann::json b = metrics_without_timing(killed / "metrics.json");
  EXPECT_EQ(a, b) << "uninterrupted:\n" << a.dump(1) << "\nresumed:\n" << b.dump(1);
  EXPECT_EQ(curve_without_time(run() / "curve.csv"), curve_without_time(killed / "curve.csv"));
  // The final models are the same bit for bit.
  EXPECT_EQ(read_text(run() / "final/model.bin"), read_text(killed / "final/model.bin"));
}

TEST_F(TrainCli, EvalJsonMatchesTheRunsFinalTestAccuracy) {
  const CliResult eval = run_cli({"eval", "--checkpoint", run().string(), "--json"});
  ASSERT_EQ(eval.status, 0) << eval.err;
  const nlohmann::json doc = nlohmann::json::parse(eval.out);  // exactly one document
  ASSERT_TRUE(doc.is_object());
  EXPECT_EQ(doc.size(), 3u);
  ASSERT_TRUE(doc.contains("accuracy") && doc.contains("n") && doc.contains("loss"));
  EXPECT_GT(doc["loss"].get<double>(), 0.0);
  EXPECT_LT(doc["loss"].get<double>(), 1.0);  // a trained model (chance is log 10 = 2.3)
  EXPECT_EQ(doc["n"].get<int>(), 360);
  const nlohmann::json metrics = read_json(run() / "metrics.json");
  EXPECT_EQ(doc["accuracy"].get<double>(), metrics["final_test_accuracy"].get<double>());

  // A checkpoint folder works too; its accuracy is in [0, 1].
  const CliResult mid = run_cli({"eval", "--checkpoint", (run() / "checkpoints/step_000150").string(), "--json"});
  ASSERT_EQ(mid.status, 0) << mid.err;
  const double accuracy = nlohmann::json::parse(mid.out)["accuracy"].get<double>();
  EXPECT_GE(accuracy, 0.0);
  EXPECT_LE(accuracy, 1.0);

  const CliResult text = run_cli({"eval", "--checkpoint", run().string()});
  ASSERT_EQ(text.status, 0) << text.err;
  EXPECT_NE(text.out.find("test accuracy"), std::string::npos) << text.out;

  // --data-dir reads the dataset from another folder (a copy here; a missing one is named).
  TempDir dir;
  const std::string source = data::default_data_dir("digits");
  for (const char* name : {"digits.csv.gz", "digits.csv"})
    if (fs::exists(source + "/" + name)) fs::copy(source + "/" + name, dir / name);
  // A relative data_dir is recorded absolute in the run's config.yaml.
  const fs::path relative = fs::relative(dir.path(), fs::current_path());
  ASSERT_TRUE(relative.is_relative());
  std::vector<std::string> args = train_args(dir / "rel");
  args.insert(args.end(), {"--set", "data_dir=" + relative.string(), "--set", "training.num_steps=20", "--set",
                           "training.eval_steps=20", "--set", "checkpoint_every=0"});
  const CliResult rel = run_cli(args);
  ASSERT_EQ(rel.status, 0) << rel.err;
  EXPECT_NE(read_text(dir / "rel/config.yaml").find("data_dir: \"" + fs::absolute(relative).lexically_normal().string() + "\""),
            std::string::npos)
      << read_text(dir / "rel/config.yaml");
  const CliResult moved = run_cli({"eval", "--checkpoint", run().string(), "--data-dir", dir.path().string(), "--json"});
  ASSERT_EQ(moved.status, 0) << moved.err;
  EXPECT_EQ(nlohmann::json::parse(moved.out)["accuracy"].get<double>(), doc["accuracy"].get<double>());
  const CliResult missing = run_cli({"eval", "--checkpoint", run().string(), "--data-dir", (dir / "no").string()});
  EXPECT_EQ(missing.status, 2);
  EXPECT_TRUE(is_one_error_line(missing.err)) << missing.err;
  EXPECT_NE(missing.err.find((dir / "no").string()), std::string::npos) << missing.err;
}

// The working directory of a test, changed and put back (the CLI runs in it).
class WorkingDirectory {
 public:
  explicit WorkingDirectory(const fs::path& dir) : saved_(fs::current_path()) { fs::current_path(dir); }
  ~WorkingDirectory() { fs::current_path(saved_); }
  WorkingDirectory(const WorkingDirectory&) = delete;
  WorkingDirectory& operator=(const WorkingDirectory&) = delete;

 private:
  fs::path saved_;
};

// sMNIST's default folder (data/mnist) is relative: a run without data_dir
// records the folder it read, absolute, so eval from elsewhere reads it too.
TEST(TrainCliData, TheDefaultDataFolderIsRecordedAbsolute) {
  TempDir dir;
  const fs::path data = dir / "work" / data::default_data_dir("smnist");
  ASSERT_TRUE(fs::path(data::default_data_dir("smnist")).is_relative());
  fs::create_directories(data);
  write_file(data / "train-images-idx3-ubyte", idx_images(40));
  write_file(data / "train-labels-idx1-ubyte", idx_labels(40));
  write_file(data / "t10k-images-idx3-ubyte", idx_images(20));
  write_file(data / "t10k-labels-idx1-ubyte", idx_labels(20));
  const fs::path config = dir.write("smnist_tiny.yaml",
                                    "dataset: smnist\n"
                                    "model: {num_blocks: 1, state_dim: 4, hidden_dim: 4}\n"
                                    "training: {num_steps: 2, batch_size: 4, eval_steps: 2}\n"
                                    "reduction: {mode: none}\nthreads: 1\ndevice: cpu\ncheckpoint_every: 0\n");
  {
    WorkingDirectory work(dir / "work");
    const CliResult r = run_cli({"train", "--config", config.string(), "--out", (dir / "run").string()});
    ASSERT_EQ(r.status, 0) << r.err;
  }
  EXPECT_EQ(config::load_config((dir / "run/config.yaml").string()).data_dir, data.lexically_normal().string());
  const CliResult eval = run_cli({"eval", "--checkpoint", (dir / "run").string(), "--json"});
  ASSERT_EQ(eval.status, 0) << eval.err;
  EXPECT_EQ(nlohmann::json::parse(eval.out)["n"].get<int>(), 20);
  // eval needs only the test files (it used to read, and require, the training pair too).
  fs::remove(data / "train-images-idx3-ubyte");
  fs::remove(data / "train-labels-idx1-ubyte");
  const CliResult test_only = run_cli({"eval", "--checkpoint", (dir / "run").string(), "--json"});
  ASSERT_EQ(test_only.status, 0) << test_only.err;
  EXPECT_EQ(nlohmann::json::parse(test_only.out), nlohmann::json::parse(eval.out));
}

// A scifar run normalises its inputs with the channel statistics of the
// training files it read; they are saved with every checkpoint and exported,
// so eval and classify from a folder whose training files differ still feed
// the model what it saw (they recomputed the statistics from those files).
TEST(TrainCliData, AScifarRunKeepsItsInputStatistics) {
  TempDir dir;
  write_cifar_dir(dir / "a", 10, 20);
  fs::create_directories(dir / "b");
  for (const auto& entry : fs::directory_iterator(dir / "a"))
    fs::copy(entry.path(), dir / "b" / entry.path().filename());
  std::string bright;  // other training files: every pixel 250
  for (int i = 0; i < 10; ++i) bright += static_cast<char>(i % 10) + std::string(3072, static_cast<char>(250));
  write_file(dir / "b/data_batch_1.bin", bright);
  const fs::path config = dir.write("scifar_tiny.yaml",
                                    "dataset: scifar\n"
                                    "model: {num_blocks: 1, state_dim: 4, hidden_dim: 4}\n"
                                    "training: {num_steps: 3, batch_size: 4, eval_steps: 3}\n"
                                    "reduction: {mode: none}\nthreads: 1\ndevice: cpu\ncheckpoint_every: 0\n");
  const CliResult r = run_cli({"train", "--config", config.string(), "--out", (dir / "run").string(), "--set",
                               "data_dir=" + (dir / "a").string()});
  ASSERT_EQ(r.status, 0) << r.err;
  const data::Splits a = data::load_dataset("scifar", (dir / "a").string(), 0);
  data::Splits b = data::load_dataset("scifar", (dir / "b").string(), 0);
  ASSERT_NE(a.train.channel_mean, b.train.channel_mean);
  const nlohmann::json saved = read_json(dir / "run/final/state.json")["input_scaling"];
  EXPECT_EQ(saved["mean"].get<std::vector<float>>(), a.train.channel_mean);
  EXPECT_EQ(saved["std"].get<std::vector<float>>(), a.train.channel_std);
  // The test split of b put back on a's statistics is a's test split.
  data::rescale_channels(b.test, a.train.channel_mean, a.train.channel_std);
  ASSERT_EQ(b.test.inputs.size(), a.test.inputs.size());
  for (size_t k = 0; k < a.test.inputs.size(); ++k) ASSERT_NEAR(b.test.inputs[k], a.test.inputs[k], 1e-5) << k;

  const CliResult eval_a = run_cli({"eval", "--checkpoint", (dir / "run").string(), "--json"});
  const CliResult eval_b = run_cli({"eval", "--checkpoint", (dir / "run").string(), "--data-dir", (dir / "b").string(),
                                    "--json"});
  ASSERT_EQ(eval_a.status, 0) << eval_a.err;
  ASSERT_EQ(eval_b.status, 0) << eval_b.err;
  // The test loss depends on every input (the tiny model's accuracy does not: it predicts one class);
  // b's test inputs are a's put back from b's statistics, equal up to float rounding.
  const nlohmann::json doc_a = nlohmann::json::parse(eval_a.out), doc_b = nlohmann::json::parse(eval_b.out);
  EXPECT_EQ(doc_a["accuracy"], doc_b["accuracy"]);
  EXPECT_NEAR(doc_b["loss"].get<double>(), doc_a["loss"].get<double>(), 1e-6 * doc_a["loss"].get<double>());
  // The export carries them: classify --dataset uses them, --input callers read them.
  const fs::path model = dir / "m.safetensors";
  ASSERT_EQ(run_cli({"export", "--checkpoint", (dir / "run").string(), "--out", model.string()}).status, 0);
  const std::string bytes = read_text(model);
  uint64_t header = 0;
  std::memcpy(&header, bytes.data(), 8);
  const nlohmann::json metadata = nlohmann::json::parse(bytes.substr(8, header))["__metadata__"];
  EXPECT_EQ(nlohmann::json::parse(metadata["input_scaling"].get<std::string>()), saved);
  const CliResult classify_b = run_cli({"classify", "--model", model.string(), "--dataset", "scifar", "--data-dir",
                                        (dir / "b").string(), "--json"});
  ASSERT_EQ(classify_b.status, 0) << classify_b.err;
  const nlohmann::json doc_c = nlohmann::json::parse(classify_b.out);
  EXPECT_EQ(doc_c["accuracy"], doc_a["accuracy"]);
  EXPECT_NEAR(doc_c["loss"].get<double>(), doc_a["loss"].get<double>(), 1e-5 * doc_a["loss"].get<double>());
  // A run resumed on b's files goes on with a's statistics (and saves them again).
  const fs::path run2 = dir / "run2";
  ASSERT_EQ(run_cli({"train", "--config", config.string(), "--out", run2.string(), "--set",
                     "data_dir=" + (dir / "a").string(), "--set", "checkpoint_every=2"})
                .status,
            0);
  ASSERT_TRUE(fs::exists(run2 / "checkpoints/step_000002"));
  fs::remove_all(run2 / "final");  // as if stopped after step 2
  fs::remove(run2 / "metrics.json");
  const CliResult resumed = run_cli({"train", "--resume", run2.string(), "--set", "data_dir=" + (dir / "b").string()});
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_EQ(read_json(run2 / "final/state.json")["input_scaling"], saved);
  // Malformed statistics in a model file or a checkpoint: exit 2 naming the file.
  nlohmann::json edited = nlohmann::json::parse(bytes.substr(8, header));
  edited["__metadata__"]["input_scaling"] = R"({"mean": [0, 0], "std": [1, 1]})";
  const std::string text = edited.dump();
  std::string length(8, '\0');
  const uint64_t n = text.size();
  std::memcpy(length.data(), &n, 8);
  const fs::path bad = dir.write("bad.safetensors", length + text + bytes.substr(8 + header));
  const CliResult refused = run_cli({"classify", "--model", bad.string(), "--dataset", "scifar", "--data-dir",
                                     (dir / "b").string()});
  EXPECT_EQ(refused.status, 2);
  EXPECT_NE(refused.err.find(bad.string() + ": __metadata__ input_scaling: saved input statistics for 2 channels"),
            std::string::npos) << refused.err;
}

// A pragmatic run resumed from a checkpoint taken while a reduction awaited
// its check (rollback.bin present) ends exactly as the uninterrupted run.
TEST_F(TrainCli, ResumedRunWithPragmaticReductionsEndsWithTheSameMetrics) {
  TempDir dir;
  const fs::path full = dir / "full";
  std::vector<std::string> args = train_args(full);
  for (const char* s : {"reduction.mode=pragmatic", "reduction.reduction_fraction=0.5", "reduction.red_start=0",
                        "reduction.red_end=200", "reduction.red_interval=50", "reduction.performance_tolerance=0.05"}) {
    args.push_back("--set");
    args.push_back(s);
  }
  const CliResult first = run_cli(args);
  ASSERT_EQ(first.status, 0) << first.err;
  EXPECT_NE(first.err.find("block 0 reduced 64 -> 32"), std::string::npos) << first.err;
  ASSERT_TRUE(fs::exists(full / "checkpoints/step_000075/rollback.bin"));
  const nlohmann::json a = metrics_without_timing(full / "metrics.json");
  ASSERT_FALSE(a["reduction_history"].empty());
  EXPECT_LT(a["final_state_dims"][0].get<int>(), 64);

  const fs::path resumed = dir / "resumed";
  fs::create_directories(resumed / "checkpoints");
  fs::copy(full / "config.yaml", resumed / "config.yaml");
  fs::copy(full / "checkpoints/step_000075", resumed / "checkpoints/step_000075", fs::copy_options::recursive);
  const CliResult second = run_cli({"train", "--resume", resumed.string()});
  ASSERT_EQ(second.status, 0) << second.err;
  EXPECT_EQ(a, metrics_without_timing(resumed / "metrics.json"));
  EXPECT_EQ(read_text(full / "final/model.bin"), read_text(resumed / "final/model.bin"));

  // The reduced model evaluates at its reduced size.
  const CliResult eval = run_cli({"eval", "--checkpoint", full.string(), "--json"});
  ASSERT_EQ(eval.status, 0) << eval.err;
  EXPECT_EQ(nlohmann::json::parse(eval.out)["accuracy"].get<double>(), a["final_test_accuracy"].get<double>());
}

TEST_F(TrainCli, CompressTruncatesATrainedModelThatEvalThenReads) {
  TempDir dir;
  const fs::path out = dir / "compressed";
  const CliResult compress = run_cli({"compress", "--checkpoint", run().string(), "--tol", "0.9", "--out",
                                      out.string(), "--json"});
  ASSERT_EQ(compress.status, 0) << compress.err;
  const nlohmann::json doc = nlohmann::json::parse(compress.out);
  const int n = doc["state_dims"][0].get<int>();
  EXPECT_LT(n, 64);
  EXPECT_GE(n, 1);
  const nlohmann::json& block = doc["blocks"][0];
  EXPECT_LE(block["hinf_error"].get<double>(), block["hinf_bound"].get<double>() * (1 + 1e-6));
  const CliResult eval = run_cli({"eval", "--checkpoint", out.string(), "--json"});
  ASSERT_EQ(eval.status, 0) << eval.err;
  const double accuracy = nlohmann::json::parse(eval.out)["accuracy"].get<double>();
  EXPECT_GT(accuracy, 0.3);  // tol 0.9 keeps most of what the model does (chance is 0.1)
  // The human summary: each block's H-inf error against its bound (within it here).
  const CliResult text = run_cli({"compress", "--checkpoint", run().string(), "--tol", "0.9", "--out",
                                  (dir / "compressed_text").string()});
  ASSERT_EQ(text.status, 0) << text.err;
  EXPECT_NE(text.out.find("block 0: N 64 -> "), std::string::npos) << text.out;
  EXPECT_NE(text.out.find(" <= bound "), std::string::npos) << text.out;
  EXPECT_EQ(text.out.find("above"), std::string::npos) << text.out;

  // Nothing is overwritten; a tolerance outside (0, 1] is a usage error.
  const CliResult again = run_cli({"compress", "--checkpoint", run().string(), "--tol", "0.9", "--out", out.string()});
  EXPECT_EQ(again.status, 2);
  EXPECT_TRUE(is_one_error_line(again.err)) << again.err;
  const CliResult bad_tol =
      run_cli({"compress", "--checkpoint", run().string(), "--tol", "1.5", "--out", (dir / "x").string()});
  EXPECT_EQ(bad_tol.status, 2);
  EXPECT_NE(bad_tol.err.find("--tol"), std::string::npos) << bad_tol.err;
  EXPECT_FALSE(fs::exists(dir / "x"));
  const CliResult neither = run_cli({"compress", "--checkpoint", run().string(), "--out", (dir / "x").string()});
  EXPECT_EQ(neither.status, 2);
  EXPECT_TRUE(is_one_error_line(neither.err)) << neither.err;

  // --rank R keeps R states per block.
  const CliResult by_rank = run_cli({"compress", "--checkpoint", run().string(), "--rank", "10", "--out",
                                     (dir / "rank10").string(), "--json"});
  ASSERT_EQ(by_rank.status, 0) << by_rank.err;
  EXPECT_EQ(nlohmann::json::parse(by_rank.out)["state_dims"], nlohmann::json({10}));
  // A rank not below N keeps the block whole, with a warning.
  const CliResult whole = run_cli({"compress", "--checkpoint", run().string(), "--rank", "100", "--out",
                                   (dir / "rank100").string(), "--json"});
  ASSERT_EQ(whole.status, 0) << whole.err;
  EXPECT_EQ(nlohmann::json::parse(whole.out)["state_dims"], nlohmann::json({64}));
  EXPECT_NE(whole.err.find("warning: --rank 100 is not below block 0's N = 64"), std::string::npos) << whole.err;
}

// Copies the run, lets `damage` break the copy, and expects `args` (with
// RUN replaced by the copy) to exit 2 with one line naming `file`.
CliResult expect_clear_error(const fs::path& source, const std::function<void(const fs::path&)>& damage,
                             const std::vector<std::string>& args, const std::string& file) {
  TempDir dir;
  const fs::path copy = dir / "copy";
  fs::copy(source, copy, fs::copy_options::recursive);
  damage(copy);
  std::vector<std::string> resolved;
  for (const auto& a : args) resolved.push_back(a == "RUN" ? copy.string() : a);
  const CliResult result = run_cli(resolved);
  EXPECT_EQ(result.status, 2) << result.err;
  EXPECT_TRUE(is_one_error_line(result.err)) << result.err;
  EXPECT_NE(result.err.find(file), std::string::npos) << result.err;
  EXPECT_TRUE(result.out.empty()) << result.out;
  return result;
}

void truncate_file(const fs::path& path) { fs::resize_file(path, fs::file_size(path) / 2); }

void flip_byte(const fs::path& path) {
  std::string bytes = read_text(path);
  bytes[bytes.size() / 2] ^= 0x40;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// A checkpoint whose weights are not finite (a diverged run, or an altered
// file with a valid manifest) is refused by eval and compress, naming the
// tensor; so is a negative BatchNorm variance.
TEST_F(TrainCli, CheckpointsWithNonFiniteWeightsAreRefused) {
  const training::CheckpointContents original = training::read_checkpoint(run() / "final");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"head.weight", "non-finite value"}, {"blocks.0.lru.nu_log", "non-finite value"},
      {"blocks.0.norm.running_var", "negative variance"}};
  for (const auto& [name, problem] : cases) {
    TempDir dir;
    training::CheckpointContents contents = original;
    bool found = false;
    for (auto& [key, tensor] : contents.model_tensors) {
      if (key != name) continue;
      tensor = tensor.clone();
      tensor.view({-1})[0] = problem == "negative variance" ? -1.0 : std::numeric_limits<double>::infinity();
      found = true;
    }
    ASSERT_TRUE(found) << name;
    training::write_checkpoint(contents, dir / "final");
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"eval", "--checkpoint", (dir / "final").string()},
          std::vector<std::string>{"compress", "--checkpoint", (dir / "final").string(), "--tol", "0.9", "--out",
                                   (dir / "c").string()}}) {
      const CliResult r = run_cli(args);
      EXPECT_EQ(r.status, 2) << args[0] << " " << name;
      EXPECT_TRUE(is_one_error_line(r.err)) << r.err;
      EXPECT_NE(r.err.find("tensor '" + name + "' has a " + problem), std::string::npos) << r.err;
      EXPECT_FALSE(fs::exists(dir / "c"));
    }
  }
}

TEST_F(TrainCli, DamagedCheckpointsAreBadInputNotCrashes) {
  const std::vector<std::string> eval = {"eval", "--checkpoint", "RUN", "--json"};
  expect_clear_error(run(), [](const fs::path& r) { truncate_file(r / "final/model.bin"); }, eval, "model.bin");
  expect_clear_error(run(), [](const fs::path& r) { flip_byte(r / "final/model.bin"); }, eval, "model.bin");
  expect_clear_error(run(), [](const fs::path& r) { fs::remove(r / "final/optimizer.bin"); }, eval, "optimizer.bin");
  expect_clear_error(run(), [](const fs::path& r) { fs::remove(r / "final/manifest.json"); }, eval, "manifest.json");
  expect_clear_error(run(), [](const fs::path& r) { truncate_file(r / "final/manifest.json"); }, eval,
                     "manifest.json");
  expect_clear_error(run(), [](const fs::path& r) { fs::remove_all(r / "final"); }, eval, "final");
  // A file where a checkpoint folder is expected.
  expect_clear_error(run(), [](const fs::path& r) { fs::remove_all(r), std::ofstream(r) << "x"; }, eval,
                     "not a folder (a checkpoint or run folder is expected)");

  // Resume picks the latest checkpoint (step 225 once final/ is gone) and checks it.
  const std::vector<std::string> resume = {"train", "--resume", "RUN"};
  const CliResult damaged = expect_clear_error(
      run(),
      [](const fs::path& r) {
        fs::remove_all(r / "final");
        flip_byte(r / "checkpoints/step_000225/state.json");
      },
      resume, "step_000225/state.json");
  // ... and names the checkpoint to fall back on.
  EXPECT_NE(damaged.err.find("the checkpoint before it is "), std::string::npos) << damaged.err;
  EXPECT_NE(damaged.err.find("step_000150: move "), std::string::npos) << damaged.err;
  expect_clear_error(
      run(),
      [](const fs::path& r) {
        fs::remove_all(r / "final");
        truncate_file(r / "checkpoints/step_000225/optimizer.bin");
      },
      resume, "step_000225/optimizer.bin");
  expect_clear_error(run(), [](const fs::path& r) { fs::remove_all(r / "checkpoints"), fs::remove_all(r / "final"); },
                     resume, "no checkpoint");
}

}  // namespace
}  // namespace compressm::testing
