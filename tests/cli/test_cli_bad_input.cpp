// Every kind of bad input makes `compressm` exit 2 with exactly one stderr line
// that names the file or flag at fault, print nothing on stdout, and leave
// --out untouched.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "cli_runner.h"

namespace {

using compressm::testing::golden_path;
using compressm::testing::read_text;
using compressm::testing::run_cli;
using compressm::testing::TempDir;
namespace fs = std::filesystem;

const char* const kValid =
    R"({"lambda": [[0.5, 0.1], [0.2, -0.3]], "B": [[[1, 0]], [[0, 1]]],
        "C": [[[1, 0], [0.5, 0.5]]], "D": [0.7]})";

void expect_bad_input(const std::vector<std::string>& args, const std::string& names) {
  const auto result = run_cli(args);
  std::string command;
  for (const auto& arg : args) command += arg + " ";
  SCOPED_TRACE(command);
  EXPECT_EQ(result.status, 2);
  EXPECT_TRUE(result.out.empty()) << result.out;
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
  EXPECT_EQ(result.err.rfind("compressm: error: ", 0), 0u) << result.err;
  EXPECT_NE(result.err.find(names), std::string::npos) << "stderr should name " << names << ": " << result.err;
}

class CliBadInput : public ::testing::Test {
 protected:
  TempDir dir;
  std::string out = (dir / "out.json").string();
  std::string golden = golden_path("lru_case_100.json");  // N = 8

  std::vector<std::string> reduce(std::vector<std::string> flags) const {
    std::vector<std::string> args = {"reduce", "--system", golden, "--out", out};
    args.insert(args.end(), flags.begin(), flags.end());
    return args;
  }
  void TearDown() override { EXPECT_FALSE(fs::exists(out)) << "--out was created on bad input"; }
};

TEST_F(CliBadInput, BadSystemFiles) {
  const std::string missing = (dir / "missing.json").string();
  const std::vector<std::pair<std::string, std::string>> files = {
      {dir.write("malformed.json", "{\"lambda\": [[0.5, 0.1]").string(), "malformed JSON"},
      {dir.write("shape.json", R"({"lambda": [[0.5, 0]], "B": [[[1, 0]], [[1, 0]]], "C": [[[1, 0]]], "D": [1]})")
           .string(), "\"B\" has 2 rows but \"lambda\" has 1 entries"},
      {dir.write("inf.json", R"({"lambda": [[0.5, 0]], "B": [[[1, 0]]], "C": [[[1e999, 0]]], "D": [1]})")
           .string(), "1e999"},
      {dir.write("null.json", R"({"lambda": [[0.5, 0]], "B": [[[1, 0]]], "C": [[[1, null]]], "D": [1]})")
           .string(), "\"C\"[0][0] imaginary part is not a finite number"},
      {dir.write("unstable.json", R"({"lambda": [[0.6, 0.8]], "B": [[[1, 0]]], "C": [[[1, 0]]], "D": [1]})")
           .string(), "\"lambda\"[0] has modulus 1.000000 >= 1 (unstable)"},
      {dir.write("empty.json", R"({"lambda": [], "B": [], "C": [], "D": []})").string(), "N = 0"},
      // Finite values whose Gramian overflows: no NaN HSVs, no LAPACK message on stdout.
      {dir.write("huge.json", R"({"lambda": [[0.5, 0.1], [0.2, -0.3]], "B": [[[1, 0]], [[0, 1]]],
                                  "C": [[[1e308, 1e308], [0.5, 0.5]]], "D": [0.7]})")
           .string(), "Gramian"},
      {dir.write("hugeB.json", R"({"lambda": [[0.5, 0.1], [0.2, -0.3]], "B": [[[1e308, 1e308]], [[0, 1]]],
                                  "C": [[[1, 0], [0.5, 0.5]]], "D": [0.7]})")
           .string(), "controllability Gramian has non-finite entries: the system's values are too large (overflow)"},
      {missing, "cannot open file"},
      {dir.path().string(), "is a directory"},
  };
  for (const auto& [file, problem] : files) {
    for (const auto& names : {file + ": ", problem}) {
      expect_bad_input({"hsv", "--system", file, "--json"}, names);
      expect_bad_input({"reduce", "--system", file, "--tol", "0.9", "--out", out}, names);
    }
  }
}

TEST_F(CliBadInput, ToleranceOutsideUnitInterval) {
  for (const char* tol : {"0", "1.5", "-0.1", "nan", "abc", "inf"}) {
    expect_bad_input(reduce({"--tol", tol}), "--tol");
  }
}

TEST_F(CliBadInput, RankOutsideRange) {
  for (const char* rank : {"0", "8", "9", "-3", "2.5", "x"}) expect_bad_input(reduce({"--rank", rank}), "--rank");
  expect_bad_input(reduce({"--rank", "8"}), "N = 8");
  const std::string one = dir.write("one.json", R"({"lambda": [[0.5, 0]], "B": [[[1, 0]]], "C": [[[1, 0]]], "D": [1]})")
                              .string();
  expect_bad_input({"reduce", "--system", one, "--rank", "1", "--out", out}, one + " has one state (N = 1)");
}

TEST_F(CliBadInput, ExactlyOneOfTolAndRank) {
  expect_bad_input(reduce({}), "exactly one of --tol or --rank");
  expect_bad_input(reduce({"--tol", "0.9", "--rank", "3"}), "--tol and --rank cannot be combined");
}

TEST_F(CliBadInput, MissingAndUnknownFlags) {
  expect_bad_input({"reduce", "--tol", "0.9", "--out", out}, "--system");
  expect_bad_input({"reduce", "--system", golden, "--tol", "0.9"}, "--out");
  expect_bad_input({"hsv"}, "--system");
  expect_bad_input({"hsv", "--system", golden, "--bogus"}, "--bogus");
  expect_bad_input(reduce({"--tol", "0.9", "--frobnicate", "3"}), "--frobnicate");
  expect_bad_input(reduce({"--tol", "0.9", "--hinf-grid", "0"}), "--hinf-grid");
  expect_bad_input({"frobnicate"}, "frobnicate");
  expect_bad_input({}, "subcommand");
}

TEST_F(CliBadInput, OutputPathProblems) {
  const auto system = dir.write("system.json", kValid);
  const std::string same = (dir.path() / "." / "system.json").string();  // another spelling
  expect_bad_input({"reduce", "--system", system.string(), "--rank", "1", "--out", same}, "--out");
  EXPECT_EQ(read_text(system), kValid);

  const std::string no_dir = (dir / "no_such_dir" / "out.json").string();
  expect_bad_input({"reduce", "--system", system.string(), "--rank", "1", "--out", no_dir}, no_dir);
  EXPECT_FALSE(fs::exists(no_dir));

  fs::create_directory(dir / "a_directory");
  const std::string directory = (dir / "a_directory").string();
  expect_bad_input({"reduce", "--system", system.string(), "--rank", "1", "--out", directory}, directory);
}

TEST_F(CliBadInput, ExistingOutputIsLeftUntouched) {
  const auto previous = dir.write("previous.json", "previous contents");
  const std::string unstable =
      dir.write("unstable.json", R"({"lambda": [[1.5, 0]], "B": [[[1, 0]]], "C": [[[1, 0]]], "D": [1]})").string();
  expect_bad_input({"reduce", "--system", golden, "--tol", "1.5", "--out", previous.string()}, "--tol");
  expect_bad_input({"reduce", "--system", golden, "--rank", "8", "--out", previous.string()}, "--rank");
  expect_bad_input({"reduce", "--system", unstable, "--rank", "1", "--out", previous.string()}, unstable);
  expect_bad_input({"reduce", "--system", golden, "--rank", "3", "--out", previous.string()},
                   "exists and is not a system file");
  EXPECT_EQ(read_text(previous), "previous contents");
}

}  // namespace
