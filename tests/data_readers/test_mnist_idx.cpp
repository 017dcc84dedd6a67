// MNIST idx reader: values, labels, the 90/10 split, gzip = raw, and one
// DataError naming the file per kind of bad input.
#include "data/mnist_idx.h"
#include "data/file_bytes.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "data_readers/synthetic_files.h"
#include "support/temp_dir.h"

namespace {

using compressm::data::DataError;
using compressm::data::Dataset;
using compressm::data::load_mnist;
using compressm::data::read_file_bytes;
using compressm::data::read_mnist_pair;
using compressm::data::SizeBound;
using compressm::data::Splits;
using namespace compressm::testing;
namespace fs = std::filesystem;

// The synthetic example index behind an example (its first pixel is i % 256).
int64_t example_id(const Dataset& d, int64_t row) {
  return static_cast<int64_t>(d.inputs[row * d.example_size()] * 255.0f + 0.5f);
}

TEST(MnistIdx, ReadsPixelsOverTwoFiftyFiveAndLabels) {
  TempDir dir;
  write_mnist_dir(dir.path(), 30, 12, /*gzip=*/false);
  const Splits s = load_mnist(dir.path(), 1);
  EXPECT_EQ(s.train.count(), 27);
  EXPECT_EQ(s.val.count(), 3);
  ASSERT_EQ(s.test.count(), 12);
  EXPECT_EQ(s.test.seq_len, 784);
  EXPECT_EQ(s.test.channels, 1);
  EXPECT_EQ(s.test.num_classes, 10);
  ASSERT_EQ(s.test.inputs.size(), 12u * 784u);
  for (int64_t i = 0; i < 12; ++i) {
    EXPECT_EQ(s.test.labels[i], i % 10);
    for (int64_t k = 0; k < 784; k += 97) EXPECT_EQ(s.test.inputs[i * 784 + k], synthetic_pixel(i, k) / 255.0f);
  }
}

TEST(MnistIdx, TrainAndValPartitionTheTrainFileInFileOrder) {
  TempDir dir;
  write_mnist_dir(dir.path(), 50, 2, false);
  const Splits s = load_mnist(dir.path(), 7);
  std::vector<int64_t> ids;
  for (const Dataset* d : {&s.train, &s.val}) {
    std::vector<int64_t> part;
    for (int64_t r = 0; r < d->count(); ++r) {
      part.push_back(example_id(*d, r));
      EXPECT_EQ(d->labels[r], part.back() % 10);
      EXPECT_EQ(d->inputs[r * 784 + 300], synthetic_pixel(part.back(), 300) / 255.0f);
    }
    EXPECT_TRUE(std::is_sorted(part.begin(), part.end()));
    ids.insert(ids.end(), part.begin(), part.end());
  }
  EXPECT_EQ(s.val.count(), 5);
  std::sort(ids.begin(), ids.end());
  for (int64_t i = 0; i < 50; ++i) EXPECT_EQ(ids[i], i);
}

TEST(MnistIdx, GzipAndRawReadIdentically) {
  TempDir dir;
  write_mnist_dir(dir / "raw", 40, 10, false);
  write_mnist_dir(dir / "gz", 40, 10, true);
  const Splits raw = load_mnist(dir / "raw", 3), gz = load_mnist(dir / "gz", 3);
  for (auto part : {&Splits::train, &Splits::val, &Splits::test}) {
    EXPECT_EQ((raw.*part).inputs, (gz.*part).inputs);
    EXPECT_EQ((raw.*part).labels, (gz.*part).labels);
  }
}

TEST(MnistIdx, ConcatenatedGzipMembersAreReadInFull) {
  TempDir dir;
  const std::string bytes = idx_images(3);
  write_file(dir / "images.gz", gzipped(bytes.substr(0, 1000)) + gzipped(bytes.substr(1000)));
  write_file(dir / "labels", idx_labels(3));
  const Dataset d = read_mnist_pair(dir / "images.gz", dir / "labels");
  EXPECT_EQ(d.inputs[2 * 784 + 783], synthetic_pixel(2, 783) / 255.0f);
}

// One bad file at a time next to a good partner file.
struct BadPair {
  std::string images, labels, bad_file, problem;
};

void expect_bad_pair(const BadPair& c) {
  TempDir dir;
  write_file(dir / "images", c.images);
  write_file(dir / "labels", c.labels);
  expect_data_error([&] { read_mnist_pair(dir / "images", dir / "labels"); },
                    {(dir / c.bad_file).string(), c.problem});
}

TEST(MnistIdxBadInput, EachProblemNamesTheFile) {
  const std::string images = idx_images(4), labels = idx_labels(4);
  std::string gz = gzipped(images);
  std::string corrupt = gz;
  for (size_t k = 20; k < 60; ++k) corrupt[k] = static_cast<char>(corrupt[k] ^ 0x5a);
  const std::vector<BadPair> cases = {
      {idx_images(4, 28, 28, 0x801), labels, "images", "bad idx magic 0x00000801, expected 0x00000803"},
      {images, idx_labels(4, 0x803), "labels", "bad idx magic"},
      {idx_images(4, 32, 32), labels, "images", "images are 32x32, expected 28x28"},
      {images.substr(0, images.size() - 1), labels, "images", "truncated"},
      {images.substr(0, 10), labels, "images", "truncated idx header"},
      {images + "x", labels, "images", "more data than the 3136 bytes the header promises"},
      {gzipped(images + std::string(100000, '\0')), labels, "images", "more data than the 3136 bytes"},
      {gzipped(idx_images(4, 28, 28, 0x801) + std::string(100000, '\0')), labels, "images", "bad idx magic"},
      {images, labels.substr(0, labels.size() - 2), "labels", "truncated"},
      {gz.substr(0, gz.size() / 2), labels, "images", "truncated gzip"},
      {corrupt, labels, "images", "corrupt gzip"},
      {gz + "junk", labels, "images", "unexpected bytes after the gzip stream"},
      {images, idx_labels(5), "labels", "has 5 labels but images has 4 images"},
      {idx_images(0), idx_labels(0), "images", "no images"},
      {"", labels, "images", "truncated idx header"},
  };
  for (const BadPair& c : cases) {
    SCOPED_TRACE(c.problem);
    expect_bad_pair(c);
  }
}

// A gzip file is inflated only a little past the size its header gives: a
// small file that decompresses to far more (a gzip bomb) costs no memory.
TEST(ReadFileBytes, AHeaderBoundStopsInflating) {
  TempDir dir;
  const fs::path path = dir / "big.gz";
  write_file(path, gzipped(std::string(1 << 20, 'a')));
  expect_data_error([&] { read_file_bytes(path, 100000); }, {path.string(), "decompresses to more than 100000 bytes"});
  const SizeBound header_says_100{16, [](const uint8_t*) { return uint64_t{100}; }};
  const std::vector<uint8_t> start = read_file_bytes(path, 100000, header_says_100);
  EXPECT_GT(start.size(), 100u);  // longer than the header says: the reader reports it
  EXPECT_LT(start.size(), 100000u);
  EXPECT_EQ(start[0], 'a');
  // Within the bound: the whole file.
  const SizeBound header_says_more{16, [](const uint8_t*) { return uint64_t{2} << 20; }};
  EXPECT_EQ(read_file_bytes(path, uint64_t{4} << 20, header_says_more).size(), size_t{1} << 20);
  // The cap applies to raw files too.
  const fs::path raw = dir / "raw";
  write_file(raw, std::string(1000, 'b'));
  expect_data_error([&] { read_file_bytes(raw, 999); }, {raw.string(), "file is larger than 999 bytes"});
}

TEST(MnistIdxBadInput, LabelOutsideTheClasses) {
  std::string labels = idx_labels(4);
  labels[8 + 2] = 10;
  expect_bad_pair({idx_images(4), labels, "labels", "label 10 of example 2 is outside [0, 10)"});
}

TEST(MnistIdxBadInput, MissingFilesAreNamed) {
  TempDir dir;
  expect_data_error([&] { load_mnist(dir.path(), 0); },
                    {(dir / "train-images-idx3-ubyte.gz").string(), (dir / "train-images-idx3-ubyte").string(),
                     "no such file"});
  write_file(dir / "images", idx_images(2));
  expect_data_error([&] { read_mnist_pair(dir / "images", dir / "nolabels"); },
                    {(dir / "nolabels").string(), "no such file"});
  fs::create_directory(dir / "adir");
  expect_data_error([&] { read_mnist_pair(dir / "adir", dir / "nolabels"); },
                    {(dir / "adir").string(), "not a regular file"});
}

// Random truncations and byte flips of a gzipped and a raw pair: each read
// either succeeds with consistent shapes or throws DataError, never anything else.
TEST(MnistIdxBadInput, MutatedFilesLoadOrThrowDataError) {
  TempDir dir;
  const std::string raw = idx_images(3), gz = gzipped(raw), labels = idx_labels(3);
  std::mt19937 rng(5);
  for (int trial = 0; trial < 200; ++trial) {
    std::string bytes = trial % 2 ? gz : raw;
    if (trial % 3 == 0) {
      bytes.resize(rng() % bytes.size());
    } else {
      const size_t at = rng() % std::min<size_t>(bytes.size(), 64);  // header and deflate start
      bytes[at] = static_cast<char>(bytes[at] ^ (1 + rng() % 255));
    }
    write_file(dir / "images", bytes);
    write_file(dir / "labels", labels);
    try {
      const Dataset d = read_mnist_pair(dir / "images", dir / "labels");
      EXPECT_EQ(d.inputs.size(), static_cast<size_t>(d.count() * 784));
    } catch (const DataError& error) {
      EXPECT_NE(std::string(error.what()).find((dir / "images").string()), std::string::npos) << error.what();
    }
  }
}

}  // namespace
