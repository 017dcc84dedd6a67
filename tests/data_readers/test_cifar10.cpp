// CIFAR-10 binary reader: plane -> channel layout, per-channel normalisation
// with training-set statistics, the split, and bad-input errors.
#include "data/cifar10.h"

#include <gtest/gtest.h>

#include <cmath>

#include "data_readers/synthetic_files.h"
#include "support/temp_dir.h"

namespace {

using compressm::data::Dataset;
using compressm::data::load_cifar10;
using compressm::data::read_cifar10_batch;
using compressm::data::Splits;
using namespace compressm::testing;
namespace fs = std::filesystem;

// Mean and population std of pixel/255 in plane c over records 0..count-1.
void plane_stats(int64_t count, int c, double& mean, double& std) {
  double sum = 0, sum_sq = 0;
  for (int64_t i = 0; i < count; ++i) {
    for (int64_t t = 0; t < 1024; ++t) {
      const double x = synthetic_pixel(i, c * 1024 + t) / 255.0;
      sum += x, sum_sq += x * x;
    }
  }
  mean = sum / (count * 1024.0);
  std = std::sqrt(sum_sq / (count * 1024.0) - mean * mean);
}

TEST(Cifar10, PlanesBecomeChannelsNormalisedWithTrainingStatistics) {
  TempDir dir;
  write_cifar_dir(dir.path(), 4, 3);
  const Splits s = load_cifar10(dir.path(), 5);
  EXPECT_EQ(s.train.count(), 18);
  EXPECT_EQ(s.val.count(), 2);
  ASSERT_EQ(s.test.count(), 3);
  EXPECT_EQ(s.test.seq_len, 1024);
  EXPECT_EQ(s.test.channels, 3);
  EXPECT_EQ(s.test.num_classes, 10);
  for (int c = 0; c < 3; ++c) {
    double mean = 0, std = 0;
    plane_stats(20, c, mean, std);
    ASSERT_NEAR(s.test.channel_mean[c], mean, 1e-6);
    ASSERT_NEAR(s.test.channel_std[c], std, 1e-6);
    EXPECT_EQ(s.train.channel_mean, s.test.channel_mean);
    for (int64_t i = 0; i < 3; ++i) {
      EXPECT_EQ(s.test.labels[i], (1000 + i) % 10);
      for (int64_t t = 0; t < 1024; t += 101) {
        const double expected = (synthetic_pixel(1000 + i, c * 1024 + t) / 255.0 - mean) / std;
        EXPECT_NEAR(s.test.inputs[(i * 1024 + t) * 3 + c], expected, 1e-5);
      }
    }
  }
}

TEST(Cifar10, TrainingStatisticsMakeTheTrainingSetStandard) {
  TempDir dir;
  write_cifar_dir(dir.path(), 6, 1);
  const Splits s = load_cifar10(dir.path(), 0);
  for (int c = 0; c < 3; ++c) {
    double sum = 0, sum_sq = 0, n = 0;
    for (const Dataset* d : {&s.train, &s.val}) {
      for (int64_t k = c; k < static_cast<int64_t>(d->inputs.size()); k += 3) {
        sum += d->inputs[k], sum_sq += d->inputs[k] * double{d->inputs[k]}, n += 1;
      }
    }
    EXPECT_NEAR(sum / n, 0.0, 1e-5);
    EXPECT_NEAR(sum_sq / n, 1.0, 1e-4);
  }
}

TEST(Cifar10BadInput, EachProblemNamesTheFile) {
  TempDir dir;
  write_cifar_dir(dir.path(), 2, 2);
  fs::remove(dir / "data_batch_3.bin");
  expect_data_error([&] { load_cifar10(dir.path(), 0); }, {(dir / "data_batch_3.bin").string(), "no such file"});

  const std::string records = cifar_records(2);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {records.substr(0, records.size() - 5), "size 6141 is not a multiple of the 3073-byte record"},
      {records + "x", "is not a multiple of the 3073-byte record"},
      {"", "file is empty"},
      {std::string(1, '\x0a') + records.substr(1), "label 10 of record 0 is outside [0, 10)"},
      {gzipped(records).substr(0, 30), "truncated gzip"},
  };
  for (const auto& [bytes, problem] : cases) {
    SCOPED_TRACE(problem);
    write_file(dir / "test_batch.bin", bytes);
    expect_data_error([&] { read_cifar10_batch(dir / "test_batch.bin"); },
                      {(dir / "test_batch.bin").string(), problem});
  }
}

}  // namespace
