// The --input text format: one step per line, commas and/or spaces, comments.
#include <gtest/gtest.h>

#include "runtime/sequence_file.h"

namespace compressm::testing {
namespace {

using runtime::SequenceFileError;

void expect_rejected(const std::string& text, int64_t channels, const std::string& what) {
  try {
    runtime::parse_sequence_text(text, channels, "in.csv");
    ADD_FAILURE() << "accepted; expected: " << what;
  } catch (const SequenceFileError& e) {
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
}

TEST(SequenceFile, ReadsStepsWithCommasSpacesAndComments) {
  const runtime::Sequence s =
      runtime::parse_sequence_text("# header\n1, 2.5,-3\n\n  4 5\t6\r\n# end\n7,8 ,9", 3, "in.csv");
  EXPECT_EQ(s.length, 3);
  EXPECT_EQ(s.channels, 3);
  EXPECT_EQ(s.values, (std::vector<float>{1, 2.5f, -3, 4, 5, 6, 7, 8, 9}));
}

// Values too small for a normal float (strtof's ERANGE) are valid floats.
TEST(SequenceFile, AcceptsValuesThatUnderflow) {
  const runtime::Sequence s = runtime::parse_sequence_text("1e-40\n-1e-50\n", 1, "in.csv");
  ASSERT_EQ(s.length, 2);
  EXPECT_GT(s.values[0], 0.0f);
  EXPECT_LT(s.values[0], 1e-39f);
  EXPECT_EQ(s.values[1], 0.0f);
}

TEST(SequenceFile, RejectsBadLinesNamingTheLine) {
  expect_rejected("1,2\n3\n", 2, "in.csv:2: has 1 values, the model takes 2");
  expect_rejected("1\nabc\n", 1, "in.csv:2: 'abc' is not a number");
  expect_rejected("1.5x\n", 1, "in.csv:1: '1.5x' is not a number");
  expect_rejected("nan\n", 1, "in.csv:1: value 'nan' is not a finite float");
  expect_rejected("1e99\n", 1, "not a finite float");
  expect_rejected(std::string("0.5\0junk\n", 10), 1, "in.csv:1: '0.5?junk' is not a number");  // an embedded NUL byte
  expect_rejected("# only a comment\n\n", 1, "in.csv: no time steps");
  // An empty field is an error, not skipped: it would shift the values after it.
  expect_rejected("0.1,0.2,0.3\n0.1,,0.2,0.3\n", 3, "in.csv:2: field 2 is empty");
  expect_rejected("0.1, ,0.2\n", 3, "in.csv:1: field 2 is empty");
  expect_rejected(",0.1,0.2,0.3\n", 3, "in.csv:1: field 1 is empty");
  expect_rejected("0.1,0.2,\n", 2, "in.csv:1: field 3 is empty");
  EXPECT_THROW(runtime::read_sequence_file("/nonexistent/in.csv", 1), SequenceFileError);
  try {
    runtime::read_sequence_file("/dev/null", 1);
    ADD_FAILURE() << "/dev/null accepted";
  } catch (const SequenceFileError& e) {
    EXPECT_NE(std::string(e.what()).find("/dev/null: not a regular file"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace compressm::testing
