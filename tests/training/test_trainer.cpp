// The trainer learns: a small LRU reaches >= 90% test accuracy on digits.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include <torch/cuda.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>
#include <string>

#include "config/config.h"
#include "data/dataset.h"
#include "linalg/dense_kernels.h"
#include "support/temp_dir.h"
#include "training/runtime_setup.h"
#include "training/trained_model.h"
#include "training/trainer.h"

namespace compressm::training {
namespace {

const std::string kConfigPath = std::string(COMPRESSM_SOURCE_DIR) + "/tests/training/digits_train.yaml";

bool digits_available() {
  return std::filesystem::exists(data::default_data_dir("digits") + "/digits.csv.gz") ||
         std::filesystem::exists(data::default_data_dir("digits") + "/digits.csv");
}

// OpenBLAS reads OPENBLAS_NUM_THREADS only when it loads, so configure_runtime
// sets the count through the API: one thread unless the user chose.
TEST(RuntimeSetup, BlasCallsRunOnOneThreadUnlessTheUserChose) {
  const char* before = std::getenv("OPENBLAS_NUM_THREADS");
  const std::string saved = before ? before : "";
  const int threads_before = linalg::dense_kernel_threads();
  unsetenv("OPENBLAS_NUM_THREADS");
  linalg::set_dense_kernel_threads(2);
  configure_runtime(1);
  if (linalg::lapack_available()) {
    EXPECT_EQ(linalg::dense_kernel_threads(), 1);
  }
  setenv("OPENBLAS_NUM_THREADS", "2", 1);
  linalg::set_dense_kernel_threads(2);
  configure_runtime(1);
  if (linalg::lapack_available()) {
    EXPECT_EQ(linalg::dense_kernel_threads(), 2);
  }
  if (before) setenv("OPENBLAS_NUM_THREADS", saved.c_str(), 1); else unsetenv("OPENBLAS_NUM_THREADS");
  linalg::set_dense_kernel_threads(threads_before);
}

// training.block_ops and training.precision reach the model's options.
TEST(TrainedModel, ConfigPicksTheBlockOpsAndPrecision) {
  config::Config c;
  EXPECT_EQ(model_options(c, 1, 10).block_ops, nn::BlockOps::kAuto);
  c.training.block_ops = config::BlockOps::kFused;
  c.training.precision = config::Precision::kBf16;
  const nn::LruModelOptions o = model_options(c, 1, 10);
  EXPECT_EQ(o.block_ops, nn::BlockOps::kFused);
  EXPECT_EQ(o.precision, nn::Precision::kBf16);
  c.training.block_ops = config::BlockOps::kComposed;
  EXPECT_EQ(model_options(c, 1, 10).block_ops, nn::BlockOps::kComposed);
}

TEST(Trainer, ReachesNinetyPercentTestAccuracyOnDigits) {
  if (!digits_available()) GTEST_SKIP() << "scikit-learn's digits not installed (python3-sklearn)";
  const config::Config config = config::load_config(kConfigPath);
  configure_runtime(config.threads);
  const data::Splits splits = data::load_dataset("digits", "", static_cast<uint64_t>(config.seed));
  TrainerOptions options;
  options.log = nullptr;
  Trainer trainer(config, splits, options);
  const auto start = std::chrono::steady_clock::now();
  const RunTotals totals = trainer.run();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("digits: final test %.4f, best test %.4f (step %lld), %.1f steps/s\n", totals.final_test_accuracy,
              trainer.history().best_test_accuracy, static_cast<long long>(trainer.history().best_step),
              config.training.num_steps / seconds);
  EXPECT_GE(totals.final_test_accuracy, 0.90);
  EXPECT_GE(trainer.history().best_test_accuracy, 0.90);
  EXPECT_EQ(trainer.steps_done(), config.training.num_steps);
  ASSERT_EQ(trainer.history().evals.size(), 6u);
  EXPECT_EQ(trainer.history().evals.back().step, 600);
  EXPECT_EQ(totals.final_state_dims, std::vector<int64_t>{64});
  EXPECT_GE(totals.data_wait_fraction, 0.0);
  EXPECT_LT(totals.data_wait_fraction, 1.0);
}

// Taking step results in late (TrainerOptions::pipeline_steps, what the
// CUDA-graphed loop does with 1) changes nothing of the run: the same
// evaluations (their mean losses sum exactly the steps before them), HSV logs,
// pragmatic reductions, checkpoints and step counts per model size as taking
// each result in at once. Here with 3 steps of lag on the CPU, where each step
// is computed when submitted, so any difference is the loop's bookkeeping.
TEST(Trainer, ResultsTakenInLateGiveTheSameRun) {
  if (!digits_available()) GTEST_SKIP() << "scikit-learn's digits not installed (python3-sklearn)";
  config::Config config = config::load_config(kConfigPath);
  config.training.num_steps = 240;
  config.training.eval_steps = 80;
  config.checkpoint_every = 70;
  config.reduction.mode = config::ReductionMode::kPragmatic;
  config.reduction.red_start = 20;
  config.reduction.red_end = 120;
  config.reduction.red_interval = 30;
  config.reduction.reduction_fraction = 0.2;
  config.reduction.hsv_interval = 45;
  configure_runtime(config.threads);
  const data::Splits splits = data::load_dataset("digits", "", static_cast<uint64_t>(config.seed));
  const testing::TempDir root;
  struct Run {
    RunHistory history;
    RunTotals totals;
    std::string checkpoint;
  };
  auto run = [&](int pipeline_steps) {
    TrainerOptions options;
    options.log = nullptr;
    options.pipeline_steps = pipeline_steps;
    options.run_dir = root / std::to_string(pipeline_steps);
    std::filesystem::create_directories(options.run_dir);
    Trainer trainer(config, splits, options);
    Run r;
    r.totals = trainer.run();
    r.history = trainer.history();
    std::ifstream in(options.run_dir / "checkpoints" / "step_000140" / "model.bin", std::ios::binary);
    r.checkpoint.assign(std::istreambuf_iterator<char>(in), {});
    return r;
  };
  const Run now = run(0), late = run(3);
  ASSERT_EQ(now.history.evals.size(), 3u);
  ASSERT_EQ(late.history.evals.size(), now.history.evals.size());
  for (size_t k = 0; k < now.history.evals.size(); ++k) {
    const EvalRecord &a = now.history.evals[k], &b = late.history.evals[k];
    EXPECT_EQ(a.step, b.step);
    EXPECT_EQ(a.loss, b.loss) << "evaluation " << k;
    EXPECT_EQ(a.train_accuracy, b.train_accuracy) << "evaluation " << k;
    EXPECT_EQ(a.val_accuracy, b.val_accuracy) << "evaluation " << k;
    EXPECT_EQ(a.state_dims, b.state_dims) << "evaluation " << k;
  }
  ASSERT_FALSE(now.history.reductions.empty()) << "the run should reduce";
  ASSERT_EQ(late.history.reductions.size(), now.history.reductions.size());
  for (size_t k = 0; k < now.history.reductions.size(); ++k) {
    EXPECT_EQ(late.history.reductions[k].step, now.history.reductions[k].step);
    EXPECT_EQ(late.history.reductions[k].new_dim, now.history.reductions[k].new_dim);
  }
  ASSERT_EQ(late.history.hsv_log.size(), now.history.hsv_log.size());
  for (size_t k = 0; k < now.history.hsv_log.size(); ++k)
    EXPECT_EQ(late.history.hsv_log[k].hsv, now.history.hsv_log[k].hsv);
  EXPECT_EQ(late.history.pragmatic.check_step, now.history.pragmatic.check_step);
  ASSERT_EQ(late.history.step_seconds.size(), now.history.step_seconds.size());
  for (const auto& [dims, seconds_steps] : now.history.step_seconds)
    EXPECT_EQ(late.history.step_seconds.at(dims).second, seconds_steps.second) << "steps at N = " << dims;
  EXPECT_FALSE(now.checkpoint.empty());
  EXPECT_TRUE(late.checkpoint == now.checkpoint) << "the step-140 checkpoints differ";
  EXPECT_EQ(late.totals.final_test_accuracy, now.totals.final_test_accuracy);
  EXPECT_EQ(late.totals.final_state_dims, now.totals.final_state_dims);
}

// A step whose loss is not finite is never checkpointed, also when its result
// is taken in late and a stop request ends the loop before it is in (the stop
// would otherwise checkpoint the diverged model).
TEST(Trainer, ADivergedStepTakenInLateIsNeverCheckpointed) {
  if (!digits_available()) GTEST_SKIP() << "scikit-learn's digits not installed (python3-sklearn)";
  config::Config config = config::load_config(kConfigPath);
  configure_runtime(config.threads);
  const data::Splits splits = data::load_dataset("digits", "", static_cast<uint64_t>(config.seed));
  const testing::TempDir dir;
  const std::atomic<bool> stop{true};  // stop after the first step
  TrainerOptions options;
  options.log = nullptr;
  options.run_dir = dir.path();
  options.pipeline_steps = 1;
  options.stop = &stop;
  Trainer trainer(config, splits, options);
  {
    torch::NoGradGuard no_grad;
    trainer.model()->parameters().front().fill_(std::numeric_limits<double>::quiet_NaN());
  }
  EXPECT_THROW(trainer.run(), TrainingDiverged);
  EXPECT_FALSE(std::filesystem::exists(dir / "checkpoints"));
}

// curve.csv is a log: writes that fail (here a folder in its place all run
// long) are warnings, and the run still ends with final/ and metrics.json.
TEST(Trainer, AFailedCurveWriteIsAWarning) {
  if (!digits_available()) GTEST_SKIP() << "scikit-learn's digits not installed (python3-sklearn)";
  config::Config config = config::load_config(kConfigPath);
  config.training.num_steps = 100;
  config.training.eval_steps = 25;
  configure_runtime(config.threads);
  const data::Splits splits = data::load_dataset("digits", "", static_cast<uint64_t>(config.seed));
  const testing::TempDir dir;
  std::filesystem::create_directories(dir / "curve.csv" / "in_the_way");  // a folder: the rename onto it fails
  std::ostringstream log;
  TrainerOptions options;
  options.log = &log;
  options.run_dir = dir.path();
  Trainer trainer(config, splits, options);
  trainer.run();
  EXPECT_NE(log.str().find("compressm: warning: "), std::string::npos) << log.str();
  EXPECT_NE(log.str().find("curve.csv"), std::string::npos) << log.str();
  EXPECT_TRUE(std::filesystem::exists(dir / "final"));
  ASSERT_TRUE(std::filesystem::exists(dir / "metrics.json"));
  EXPECT_NE(testing::read_text(dir / "metrics.json").find("\"final_test_accuracy\""), std::string::npos);
  EXPECT_EQ(trainer.history().evals.size(), 4u);
}

// On a GPU (skipped without one): the same run on cuda and on the CPU, without
// dropout (the two devices draw from different generators), learn alike; and
// a run with in-training reductions on cuda keeps its model on the device,
// cuts states and still learns. Runs on the device machine (scripts/gpu_check.sh).
TEST(Trainer, CudaRunMatchesTheCpuRunAndReducesOnTheGpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  if (!digits_available()) GTEST_SKIP() << "scikit-learn's digits not installed (python3-sklearn)";
  config::Config config = config::load_config(kConfigPath);
  config.model.drop_rate = 0;
  config.training.num_steps = 200;
  config.training.eval_steps = 100;
  configure_runtime(config.threads);
  const data::Splits splits = data::load_dataset("digits", "", static_cast<uint64_t>(config.seed));
  TrainerOptions options;
  options.log = nullptr;

  Trainer on_cpu(config, splits, options);
  const RunTotals cpu = on_cpu.run();
  config.device = config::Device::kCuda;
  Trainer on_gpu(config, splits, options);
  const RunTotals gpu = on_gpu.run();
  EXPECT_EQ(gpu.device, "cuda");
  EXPECT_TRUE(on_gpu.model()->parameters().front().is_cuda());
  ASSERT_EQ(on_gpu.history().evals.size(), 2u);
  const double cpu_loss = on_cpu.history().evals[0].loss, gpu_loss = on_gpu.history().evals[0].loss;
  std::printf("cpu: loss %.6f test %.4f; cuda: loss %.6f test %.4f\n", cpu_loss, cpu.final_test_accuracy, gpu_loss,
              gpu.final_test_accuracy);
  EXPECT_NEAR(gpu_loss, cpu_loss, 1e-2 * cpu_loss);
  EXPECT_NEAR(gpu.final_test_accuracy, cpu.final_test_accuracy, 0.03);

  config.reduction.mode = config::ReductionMode::kTolerance;
  config.reduction.tol = 0.95;
  config.reduction.red_start = 0;
  config.reduction.red_end = 100;
  config.reduction.red_interval = 25;
  Trainer reducing(config, splits, options);
  const RunTotals reduced = reducing.run();
  ASSERT_FALSE(reducing.history().reductions.empty());
  EXPECT_LT(reduced.final_state_dims.at(0), 64);
  for (const auto& p : reducing.model()->parameters()) EXPECT_TRUE(p.is_cuda());
  std::printf("reduced on cuda: N %lld, test %.4f\n", static_cast<long long>(reduced.final_state_dims.at(0)),
              reduced.final_test_accuracy);
  EXPECT_GE(reduced.final_test_accuracy, 0.6);
}

}  // namespace
}  // namespace compressm::training
