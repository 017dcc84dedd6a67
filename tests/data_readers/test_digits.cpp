// scikit-learn digits reader: values, the last-360-rows test split, the real
// file, and bad rows.
#include "data/digits.h"

#include <gtest/gtest.h>

#include "data_readers/synthetic_files.h"
#include "support/temp_dir.h"

namespace {

using compressm::data::load_digits;
using compressm::data::read_digits_csv;
using compressm::data::Splits;
using namespace compressm::testing;
namespace fs = std::filesystem;

const fs::path kSklearnData = "/usr/lib/python3/dist-packages/sklearn/datasets/data";

TEST(Digits, LastThreeHundredSixtyRowsAreTheTestSet) {
  TempDir dir;
  write_file(dir / "digits.csv", digits_csv(400));
  const Splits s = load_digits(dir.path(), 2);
  EXPECT_EQ(s.train.count(), 36);
  EXPECT_EQ(s.val.count(), 4);
  ASSERT_EQ(s.test.count(), 360);
  EXPECT_EQ(s.test.seq_len, 64);
  EXPECT_EQ(s.test.channels, 1);
  EXPECT_EQ(s.test.num_classes, 10);
  for (int64_t r = 0; r < 360; ++r) {
    const int64_t i = 40 + r;  // file row
    EXPECT_EQ(s.test.labels[r], i % 10);
    for (int64_t k = 0; k < 64; ++k) EXPECT_EQ(s.test.inputs[r * 64 + k], ((i + k) % 17) / 16.0f);
  }
  for (int64_t r = 0; r < s.train.count(); ++r) {
    const int64_t i = static_cast<int64_t>(s.train.inputs[r * 64] * 16.0f + 0.5f);  // (i + 0) % 17
    EXPECT_LT(i, 17);
    EXPECT_EQ(s.train.inputs[r * 64 + 5], ((i + 5) % 17) / 16.0f);
  }
}

TEST(Digits, GzipAndCrLfLinesReadTheSame) {
  TempDir dir;
  std::string crlf;
  for (int64_t i = 0; i < 5; ++i) {
    std::string row = digits_row(i);
    crlf += row.substr(0, row.size() - 1) + "\r\n";
  }
  write_file(dir / "a.csv", digits_csv(5));
  write_file(dir / "b.csv.gz", gzipped(crlf));
  write_file(dir / "c.csv", "\xEF\xBB\xBF" + digits_csv(5));  // a UTF-8 byte-order mark is skipped
  const auto a = read_digits_csv(dir / "a.csv"), b = read_digits_csv(dir / "b.csv.gz");
  const auto c = read_digits_csv(dir / "c.csv");
  EXPECT_EQ(a.inputs, b.inputs);
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_EQ(a.count(), 5);
  EXPECT_EQ(c.inputs, a.inputs);
  EXPECT_EQ(c.labels, a.labels);
}

TEST(Digits, RealScikitLearnFileLoads) {
  if (!fs::exists(kSklearnData / "digits.csv.gz")) GTEST_SKIP() << "python3-sklearn is not installed";
  const Splits s = load_digits(kSklearnData, 0);
  EXPECT_EQ(s.test.count(), 360);
  EXPECT_EQ(s.train.count() + s.val.count(), 1437);
  EXPECT_EQ(s.val.count(), 143);
  int counts[10] = {};
  for (const auto* d : {&s.train, &s.val, &s.test}) {
    for (int32_t label : d->labels) ++counts[label];
    for (float x : d->inputs) ASSERT_TRUE(x >= 0.0f && x <= 1.0f);
  }
  for (int c : counts) EXPECT_GT(c, 170);  // ~180 of each digit
}

TEST(DigitsBadInput, EachProblemNamesTheFileAndLine) {
  TempDir dir;
  const std::string good = digits_row(0);
  const std::string fields64 = good.substr(0, good.rfind(','));  // pixels only
  const std::vector<std::pair<std::string, std::string>> cases = {
      {good + fields64 + "\n", "line 2: expected 65 comma-separated fields (64 pixels and a label), found 64"},
      {good + fields64 + ",1,2\n", "line 2: expected 65"},
      {good + "\n" + good, "line 2: expected 65"},
      {"3.5" + good.substr(1), "line 1: field 0 \"3.5\" is not an integer"},
      {"x" + good.substr(1), "line 1: field 0 \"x\" is not an integer"},
      {good.substr(1), "line 1: field 0 \"\" is not an integer"},
      {"17" + good.substr(1), "line 1: pixel 0 is 17, outside [0, 16]"},
      {"-1" + good.substr(1), "line 1: pixel 0 is -1, outside [0, 16]"},
      {fields64 + ",10\n", "line 1: label 10 is outside [0, 10)"},
      {fields64 + ",99999999999\n", "line 1: field 64 \"99999999999\" is not an integer"},
      {"", "file has no rows"},
  };
  for (const auto& [text, problem] : cases) {
    SCOPED_TRACE(problem);
    write_file(dir / "digits.csv", text);
    expect_data_error([&] { read_digits_csv(dir / "digits.csv"); }, {(dir / "digits.csv").string(), problem});
  }
  write_file(dir / "digits.csv", digits_csv(360));
  expect_data_error([&] { load_digits(dir.path(), 0); }, {(dir / "digits.csv").string(), "has 360 rows"});
  fs::remove(dir / "digits.csv");
  expect_data_error([&] { load_digits(dir.path(), 0); }, {(dir / "digits.csv.gz").string(), "no such file"});
}

}  // namespace
