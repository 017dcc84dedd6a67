// load_dataset / default_data_dir: names, errors, and the real Debian
// Fashion-MNIST and scikit-learn digits files.
#include "data/dataset.h"

#include <gtest/gtest.h>

#include "data_readers/synthetic_files.h"
#include "support/temp_dir.h"

namespace {

using compressm::data::Dataset;
using compressm::data::DataError;
using compressm::data::default_data_dir;
using compressm::data::load_dataset;
using compressm::data::load_test_split;
using compressm::data::sequence_length;
using compressm::data::Splits;
using namespace compressm::testing;
namespace fs = std::filesystem;

TEST(DatasetRegistry, UnknownNameListsTheValidOnes) {
  expect_data_error([] { load_dataset("cifar100", "", 0); },
                    {"unknown dataset \"cifar100\"",
                     "smnist, sfmnist, scifar, digits, listops, imdb, aan, pathfinder"});
  expect_data_error([] { default_data_dir("nope"); }, {"unknown dataset \"nope\""});
}

TEST(DatasetRegistry, LraNamesAreNotSupportedYet) {
  for (const char* name : {"listops", "imdb", "aan", "pathfinder"}) {
    expect_data_error([&] { load_dataset(name, "", 0); }, {name, "not supported yet"});
  }
}

TEST(DatasetRegistry, DefaultDataDirs) {
  EXPECT_EQ(default_data_dir("sfmnist"), "/usr/share/datasets/fashion-mnist");
  EXPECT_EQ(default_data_dir("digits"), "/usr/lib/python3/dist-packages/sklearn/datasets/data");
  EXPECT_FALSE(default_data_dir("smnist").empty());
  EXPECT_FALSE(default_data_dir("scifar").empty());
}

TEST(DatasetRegistry, DispatchesByName) {
  TempDir dir;
  write_mnist_dir(dir / "mnist", 20, 3, true);
  write_cifar_dir(dir / "cifar", 2, 3);
  for (const char* name : {"smnist", "sfmnist"}) {
    const Splits s = load_dataset(name, (dir / "mnist").string(), 0);
    EXPECT_EQ(s.test.count(), 3);
    EXPECT_EQ(s.train.seq_len, 784);
    EXPECT_EQ(sequence_length(name), s.test.seq_len);
    const Dataset test = load_test_split(name, (dir / "mnist").string(), 0);
    EXPECT_EQ(test.inputs, s.test.inputs);
    EXPECT_EQ(test.labels, s.test.labels);
  }
  const Splits cifar = load_dataset("scifar", (dir / "cifar").string(), 0);
  EXPECT_EQ(cifar.train.count() + cifar.val.count(), 10);
  EXPECT_EQ(cifar.test.channels, 3);
  EXPECT_EQ(sequence_length("scifar"), cifar.test.seq_len);
  EXPECT_EQ(load_test_split("scifar", (dir / "cifar").string(), 0).inputs, cifar.test.inputs);
  EXPECT_EQ(sequence_length("listops"), 0);
  expect_data_error([&] { load_dataset("smnist", (dir / "none").string(), 0); }, {(dir / "none").string()});
  // Fewer than 10 training examples leave no validation split: refused, not trained on blind.
  write_mnist_dir(dir / "tiny", 9, 3, true);
  expect_data_error([&] { load_dataset("smnist", (dir / "tiny").string(), 0); },
                    {(dir / "tiny").string(), "9 training examples leave none for validation"});
  // A data folder that is a file: named as such, not as missing files.
  write_file(dir / "afile", "");
  expect_data_error([&] { load_dataset("smnist", (dir / "afile").string(), 0); },
                    {(dir / "afile").string() + ": not a folder"});
}

TEST(DatasetRegistry, DigitsFromTheDefaultDirIsDeterministicPerSeed) {
  if (!fs::exists(default_data_dir("digits") + "/digits.csv.gz")) GTEST_SKIP() << "python3-sklearn is not installed";
  const Splits a = load_dataset("digits", "", 11), b = load_dataset("digits", "", 11);
  const Splits c = load_dataset("digits", "", 12);
  EXPECT_EQ(a.val.labels, b.val.labels);
  EXPECT_EQ(a.val.inputs, b.val.inputs);
  EXPECT_EQ(a.train.inputs, b.train.inputs);
  EXPECT_NE(a.val.inputs, c.val.inputs);
  EXPECT_EQ(a.test.inputs, c.test.inputs);  // the test rows do not depend on the seed
}

// The Debian package dataset-fashion-mnist (scripts/setup.sh installs it).
TEST(DatasetRegistry, RealFashionMnistLoads) {
  const fs::path dir = default_data_dir("sfmnist");
  if (!fs::exists(dir / "train-images-idx3-ubyte.gz") && !fs::exists(dir / "train-images-idx3-ubyte")) {
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  }
  const Splits s = load_dataset("sfmnist", "", 0);
  EXPECT_EQ(s.train.count(), 54000);
  EXPECT_EQ(s.val.count(), 6000);
  EXPECT_EQ(s.test.count(), 10000);
  EXPECT_EQ(s.train.seq_len, 784);
  EXPECT_EQ(s.train.channels, 1);
  int64_t train_counts[10] = {}, test_counts[10] = {};
  for (const auto* d : {&s.train, &s.val}) {
    for (int32_t label : d->labels) ++train_counts[label];
  }
  for (int32_t label : s.test.labels) ++test_counts[label];
  for (int c = 0; c < 10; ++c) {
    EXPECT_EQ(train_counts[c], 6000);
    EXPECT_EQ(test_counts[c], 1000);
  }
  float low = 1, high = 0;
  double sum = 0;
  for (float x : s.test.inputs) low = std::min(low, x), high = std::max(high, x), sum += x;
  EXPECT_EQ(low, 0.0f);
  EXPECT_EQ(high, 1.0f);
  EXPECT_NEAR(sum / s.test.inputs.size(), 0.286, 0.01);  // the known Fashion-MNIST pixel mean
}

}  // namespace
