// The trainer learns: a small LRU reaches >= 90% test accuracy on digits.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include "config/config.h"
#include "data/dataset.h"
#include "training/runtime_setup.h"
#include "training/trainer.h"

namespace compressm::training {
namespace {

const std::string kConfigPath = std::string(COMPRESSM_SOURCE_DIR) + "/tests/training/digits_train.yaml";

bool digits_available() {
  return std::filesystem::exists(data::default_data_dir("digits") + "/digits.csv.gz") ||
         std::filesystem::exists(data::default_data_dir("digits") + "/digits.csv");
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

}  // namespace
}  // namespace compressm::training
