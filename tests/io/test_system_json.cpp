// System file reader/writer (docs/design.md §4): exact round trip, golden files,
// and one precise InputError per kind of bad input.
#include "io/system_json.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>

#include "support/temp_dir.h"

namespace {

using compressm::io::InputError;
using compressm::linalg::DiagonalSystem;
using compressm::testing::read_text;
using compressm::testing::TempDir;
using nlohmann::json;
namespace fs = std::filesystem;

// Awkward doubles (subnormals, -0.0, huge and tiny exponents, 1/3) that a
// printf("%.15g") writer would corrupt.
DiagonalSystem awkward_system(int n, int h) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> unit(-1.0, 1.0);
  DiagonalSystem s;
  s.lambda.resize(n);
  for (int i = 0; i < n; ++i) s.lambda(i) = std::polar(0.999 * std::abs(unit(rng)), 3.0 * unit(rng));
  s.B = compressm::linalg::MatrixXc::NullaryExpr(n, h, [&] { return std::complex<double>(unit(rng), unit(rng) / 3.0); });
  s.C = compressm::linalg::MatrixXc::NullaryExpr(h, n, [&] { return std::complex<double>(unit(rng) * 1e300, unit(rng) * 1e-300); });
  s.D = compressm::linalg::VectorXd::NullaryExpr(h, [&] { return unit(rng); });
  s.B(0, 0) = {std::numeric_limits<double>::denorm_min(), -0.0};
  s.D(0) = 1.0 / 3.0;
  return s;
}

template <typename A, typename B>
bool bit_identical(const A& a, const B& b) {
  return a.size() == b.size() &&
         std::memcmp(a.derived().data(), b.derived().data(), sizeof(*a.derived().data()) * a.size()) == 0;
}

TEST(SystemJson, RoundTripIsBitIdentical) {
  TempDir dir;
  const DiagonalSystem original = awkward_system(5, 3);
  const fs::path file = dir / "system.json";
  compressm::io::write_system_json(original, file);
  const DiagonalSystem read = compressm::io::read_system_json(file);
  ASSERT_EQ(read.state_dim(), 5);
  ASSERT_EQ(read.input_dim(), 3);
  EXPECT_TRUE(bit_identical(read.lambda, original.lambda));
  EXPECT_TRUE(bit_identical(read.B, original.B));
  EXPECT_TRUE(bit_identical(read.C, original.C));
  EXPECT_TRUE(bit_identical(read.D, original.D));
  EXPECT_TRUE(std::signbit(read.B(0, 0).imag()));  // -0.0 survives
}

TEST(SystemJson, ReadsGoldenFile) {
  const fs::path golden = fs::path(COMPRESSM_SHARED_DIR) / "golden" / "lru_case_100.json";
  const json doc = json::parse(read_text(golden));
  const DiagonalSystem s = compressm::io::read_system_json(golden);  // extra keys ignored
  EXPECT_EQ(s.state_dim(), doc["N"].get<int>());
  EXPECT_EQ(s.input_dim(), doc["H"].get<int>());
  EXPECT_EQ(s.output_dim(), doc["H"].get<int>());
  EXPECT_EQ(s.lambda(1).real(), doc["lambda"][1][0].get<double>());
  EXPECT_EQ(s.lambda(1).imag(), doc["lambda"][1][1].get<double>());
  EXPECT_EQ(s.C(2, 5).imag(), doc["C"][2][5][1].get<double>());
  EXPECT_EQ(s.D(3), doc["D"][3].get<double>());
}

TEST(SystemJson, WriteReplacesAtomicallyAndLeavesNoTemporaryFile) {
  TempDir dir;
  const fs::path file = dir.write("out.json", "old contents");
  compressm::io::write_system_json(awkward_system(2, 2), file);
  EXPECT_NO_THROW(compressm::io::read_system_json(file));
  int entries = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(dir.path())) ++entries;
  EXPECT_EQ(entries, 1);
  // The replaced file keeps its permissions (the temporary file was created 0666 less the umask).
  fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  compressm::io::write_system_json(awkward_system(3, 2), file);
  EXPECT_EQ(compressm::io::read_system_json(file).state_dim(), 3);
  EXPECT_EQ(fs::status(file).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
}

TEST(SystemJson, WriteIntoMissingDirectoryNamesTheFile) {
  TempDir dir;
  const fs::path file = dir / "no_such_dir" / "out.json";
  try {
    compressm::io::write_system_json(awkward_system(2, 2), file);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(file));
}

TEST(SystemJson, RefusesToWriteNonFiniteSystemAndKeepsOldFile) {
  TempDir dir;
  const fs::path file = dir.write("out.json", "old contents");
  DiagonalSystem bad = awkward_system(2, 2);
  bad.C(1, 1) = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THROW(compressm::io::write_system_json(bad, file), std::logic_error);
  EXPECT_EQ(read_text(file), "old contents");
}

TEST(SystemJson, MissingFileAndDirectoryAreInputErrors) {
  TempDir dir;
  const fs::path missing = dir / "missing.json";
  EXPECT_THROW(compressm::io::read_system_json(missing), InputError);
  try {
    compressm::io::read_system_json(missing);
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(missing.string() + ": cannot open file", 0), 0u) << e.what();
  }
  try {
    compressm::io::read_system_json(dir.path());
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("is a directory"), std::string::npos) << e.what();
  }
}

// A valid N = 2, H = 1 system, mutated once per bad-input case.
json valid_document() {
  return json::parse(R"({"lambda": [[0.5, 0.1], [0.2, -0.3]],
                         "B": [[[1, 0]], [[0, 1]]],
                         "C": [[[1, 0], [0.5, 0.5]]],
                         "D": [0.7], "N": 2, "comment": "extra keys are ignored"})");
}

struct BadCase {
  std::string name;
  std::string text;
  std::string expected;  // substring of the message after "sys.json: "
};

BadCase mutated(std::string name, const std::function<void(json&)>& mutate, std::string expected) {
  json doc = valid_document();
  mutate(doc);
  return {std::move(name), doc.dump(), std::move(expected)};
}

// 1.5 MB of text that claims a 100,000 x 100,000 B (160 GB): the ragged
// second row is the error, found before anything that size is allocated.
BadCase huge_claim() {
  const int n = 100000;
  std::string zeros;
  for (int i = 0; i < n; ++i) zeros += i ? ",[0,0]" : "[0,0]";
  std::string rows = "[" + zeros + "]";
  for (int i = 1; i < n; ++i) rows += ",[]";
  return {"B_huge_claim", "{\"lambda\": [" + zeros + "], \"B\": [" + rows + "], \"C\": [], \"D\": []}",
          "\"B\"[1] has 0 entries but \"B\"[0] has 100000 (H)"};
}

std::vector<BadCase> bad_cases() {
  return {
      {"truncated", R"({"lambda": [[0.5, 0.1)", "malformed JSON: parse error at line 1, column"},
      {"nan_literal", R"({"lambda": [[NaN, 0]]})", "malformed JSON"},
      {"empty_file", "", "malformed JSON"},
      {"top_level_array", "[1, 2]", "top level must be a JSON object, got an array of 2 entries"},
      mutated("missing_B", [](json& d) { d.erase("B"); }, "missing key \"B\""),
      mutated("missing_D", [](json& d) { d.erase("D"); }, "missing key \"D\""),
      mutated("lambda_object", [](json& d) { d["lambda"] = json::object(); },
              "\"lambda\" must be an array, got object"),
      mutated("lambda_empty", [](json& d) { d["lambda"] = json::array(); }, "\"lambda\" is empty (N = 0)"),
      mutated("lambda_triple", [](json& d) { d["lambda"][1] = {0.1, 0.2, 0.3}; },
              "\"lambda\"[1] must be a [re, im] pair, got an array of 3 entries"),
      mutated("lambda_on_circle", [](json& d) { d["lambda"][1] = {0.0, 1.0}; },
              "\"lambda\"[1] has modulus 1.000000 >= 1 (unstable)"),
      mutated("lambda_outside", [](json& d) { d["lambda"][0] = {1.2, -0.9}; },
              "\"lambda\"[0] has modulus 1.500000 >= 1 (unstable)"),
      mutated("lambda_string", [](json& d) { d["lambda"][0][1] = "nan"; },
              "\"lambda\"[0] imaginary part is not a finite number (got string)"),
      mutated("B_rows", [](json& d) { d["B"].erase(1); }, "\"B\" has 1 rows but \"lambda\" has 2 entries"),
      mutated("B_no_columns", [](json& d) { d["B"] = {json::array(), json::array()}; },
              "\"B\"[0] is empty (H = 0)"),
      mutated("B_ragged", [](json& d) { d["B"][1].push_back({0, 0}); },
              "\"B\"[1] has 2 entries but \"B\"[0] has 1 (H)"),
      mutated("B_scalar_entry", [](json& d) { d["B"][1][0] = 3.0; },
              "\"B\"[1][0] must be a [re, im] pair, got number"),
      mutated("C_rows", [](json& d) { d["C"].push_back(d["C"][0]); },
              "\"C\" has 2 rows but \"B\" has 1 columns (H)"),
      mutated("C_short_row", [](json& d) { d["C"][0].erase(1); },
              "\"C\"[0] has 1 entries but \"lambda\" has 2 (N)"),
      mutated("C_null", [](json& d) { d["C"][0][1][1] = nullptr; },
              "\"C\"[0][1] imaginary part is not a finite number (got null)"),
      mutated("C_bool", [](json& d) { d["C"][0][0][0] = true; },
              "\"C\"[0][0] real part is not a finite number (got boolean)"),
      mutated("D_length", [](json& d) { d["D"].push_back(1.0); },
              "\"D\" has 2 entries but \"B\" has 1 columns (H)"),
      mutated("D_not_array", [](json& d) { d["D"] = 0.7; }, "\"D\" must be an array, got number"),
      {"D_overflow", R"({"lambda": [[0.5, 0]], "B": [[[1, 0]]], "C": [[[1, 0]]], "D": [1e999]})",
       "invalid JSON: number overflow parsing '1e999'"},
      {"B_negative_overflow", R"({"lambda": [[0.5, 0]], "B": [[[1, -1e400]]], "C": [[[1, 0]]], "D": [1]})",
       "invalid JSON: number overflow parsing '-1e400'"},
      huge_claim(),
  };
}

TEST(SystemJson, ValidDocumentParses) {
  const DiagonalSystem s = compressm::io::parse_system_json(valid_document().dump(), "sys.json");
  EXPECT_EQ(s.state_dim(), 2);
  EXPECT_EQ(s.input_dim(), 1);
  EXPECT_EQ(s.C(0, 1), std::complex<double>(0.5, 0.5));
}

TEST(SystemJson, EachBadInputThrowsPreciseInputError) {
  for (const BadCase& bad : bad_cases()) {
    SCOPED_TRACE(bad.name);
    try {
      compressm::io::parse_system_json(bad.text, "sys.json");
      ADD_FAILURE() << "no error for " << bad.name;
    } catch (const InputError& e) {
      const std::string message = e.what();
      EXPECT_EQ(message.rfind("sys.json: ", 0), 0u) << message;
      EXPECT_NE(message.find(bad.expected), std::string::npos) << message;
      EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    }
  }
}

TEST(SystemJson, BadFileOnDiskNamesThePath) {
  TempDir dir;
  const fs::path file = dir.write("broken.json", "{\n  \"lambda\": [[0.5, 0.1]],\n  oops\n}");
  try {
    compressm::io::read_system_json(file);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind(file.string() + ": malformed JSON", 0), 0u) << message;
    EXPECT_NE(message.find("line 3"), std::string::npos) << message;
  }
}

}  // namespace
