// The "--name value" flags of the bench programs (bench/bench_flags.h): a
// value that is not wholly a number in range, a flag without a value and a
// flag nobody reads are errors that name the flag.
#include <gtest/gtest.h>

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_flags.h"

namespace compressm::bench {
namespace {

Flags flags_of(std::vector<std::string> words) {
  static std::vector<std::string> storage;
  storage = std::move(words);
  storage.insert(storage.begin(), "bench");
  static std::vector<char*> argv;
  argv.clear();
  for (std::string& w : storage) argv.push_back(w.data());
  return Flags(static_cast<int>(argv.size()), argv.data());
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(BenchFlags, ReadsNumbersAndStrings) {
  Flags f = flags_of({"--steps", "30", "--scale", "0.5", "--device", "cuda", "--threads", "-1"});
  int64_t steps = 0;
  double scale = 0;
  int threads = 0;
  std::string device = "cpu", unused = "keep";
  f.read("--steps", steps);
  f.read("--scale", scale);
  f.read("--threads", threads);
  f.read("--device", device);
  f.read("--absent", unused);
  f.check_all_read();
  EXPECT_EQ(steps, 30);
  EXPECT_EQ(scale, 0.5);
  EXPECT_EQ(threads, -1);
  EXPECT_EQ(device, "cuda");
  EXPECT_EQ(unused, "keep");
}

TEST(BenchFlags, BadValuesAndFlagsAreErrorsNamingTheFlag) {
  int64_t n = 0;
  int k = 0;
  double x = 0;
  EXPECT_EQ(error_of([&] { flags_of({"--steps", "3x"}).read("--steps", n); }), "--steps: not a number in range: '3x'");
  EXPECT_EQ(error_of([&] { flags_of({"--steps", ""}).read("--steps", n); }), "--steps: not a number in range: ''");
  EXPECT_NE(error_of([&] { flags_of({"--threads", "99999999999"}).read("--threads", k); }).find("--threads"),
            std::string::npos);
  EXPECT_NE(error_of([&] { flags_of({"--scale", "half"}).read("--scale", x); }).find("--scale"), std::string::npos);
  EXPECT_EQ(error_of([&] { flags_of({"--steps"}); }), "option --steps needs a value");
  EXPECT_EQ(error_of([&] { flags_of({"--stpes", "3"}).check_all_read(); }), "unknown option --stpes");
}

}  // namespace
}  // namespace compressm::bench
