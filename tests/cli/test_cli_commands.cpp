// `compressm hsv` and `compressm reduce` on golden systems: the happy paths.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "io/system_json.h"
#include "linalg/dense_kernels.h"
#include "support/random_systems.h"

namespace {

using compressm::testing::golden_path;
using compressm::testing::read_text;
using compressm::testing::run_cli;
using compressm::testing::TempDir;
using nlohmann::json;

json golden(const std::string& name) { return json::parse(read_text(golden_path(name))); }

TEST(CliHsv, JsonMatchesGoldenHsv) {
  const auto result = run_cli({"hsv", "--system", golden_path("lru_case_100.json"), "--json"});
  ASSERT_EQ(result.status, 0) << result.err;
  const json doc = json::parse(result.out);  // exactly one document, nothing else
  const json expected = golden("lru_case_100.json")["hsv_sorted_desc"];
  ASSERT_EQ(doc["n"].get<int>(), 8);
  ASSERT_EQ(doc["hsv"].size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    const double want = expected[i].get<double>();
    EXPECT_NEAR(doc["hsv"][i].get<double>(), want, 1e-8 * std::abs(want)) << "hsv[" << i << "]";
  }
}

TEST(CliHsv, HumanTableHasOneRowPerState) {
  const auto result = run_cli({"hsv", "--system", golden_path("lru_case_100.json")});
  ASSERT_EQ(result.status, 0) << result.err;
  EXPECT_NE(result.out.find("N = 8"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("cumulative energy"), std::string::npos) << result.out;
  // title + header + 8 rows; the last row holds all the energy.
  EXPECT_EQ(std::count(result.out.begin(), result.out.end(), '\n'), 10) << result.out;
  EXPECT_NE(result.out.find("1.000000000000\n"), std::string::npos) << result.out;
}

TEST(CliReduce, EnergyToleranceOnGoldenCase) {
  TempDir dir;
  const std::string system = golden_path("lru_case_100.json");
  const std::string out = (dir / "reduced.json").string();
  const auto result = run_cli({"reduce", "--system", system, "--tol", "0.9", "--out", out, "--json"});
  ASSERT_EQ(result.status, 0) << result.err;
  const json doc = json::parse(result.out);
  EXPECT_EQ(doc["rank"].get<int>(), 7);
  EXPECT_EQ(doc["n"].get<int>(), 8);
  const double error = doc["hinf_error"].get<double>();
  const double bound = doc["hinf_bound"].get<double>();
  EXPECT_GT(error, 0.0);
  EXPECT_LE(error, bound * (1.0 + 1e-6));
  EXPECT_LT(doc["max_abs_eig"].get<double>(), 1.0);
  // Eigenvalues do not depend on the basis, so they match the reference's.
  const json reference = golden("lru_case_100.json")["reductions"][0];
  EXPECT_NEAR(doc["max_abs_eig"].get<double>(), reference["max_abs_eig_reduced"].get<double>(), 1e-6);

  const auto full = compressm::io::read_system_json(system);
  const auto reduced = compressm::io::read_system_json(out);
  EXPECT_EQ(reduced.state_dim(), 7);
  EXPECT_EQ(reduced.input_dim(), full.input_dim());
  EXPECT_EQ(reduced.output_dim(), full.output_dim());
  EXPECT_EQ(reduced.D, full.D);  // feed-through copied, never reduced
  EXPECT_EQ(reduced.lambda.cwiseAbs().maxCoeff(), doc["max_abs_eig"].get<double>());
}

TEST(CliReduce, FixedRankAndHumanSummary) {
  TempDir dir;
  const std::string out = (dir / "reduced.json").string();
  const auto result = run_cli({"reduce", "--system", golden_path("lru_case_101.json"), "--rank", "3",
                               "--out", out, "--hinf-grid", "512"});
  ASSERT_EQ(result.status, 0) << result.err;
  EXPECT_NE(result.out.find("16 -> 3"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("H-inf error"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("guards"), std::string::npos) << result.out;
  EXPECT_EQ(compressm::io::read_system_json(out).state_dim(), 3);
}

// An existing --out is replaced only when it is a system file (an earlier
// reduction); any other file there is refused and left as it was.
TEST(CliReduce, ReplacesAnEarlierReductionButNoOtherFile) {
  TempDir dir;
  const std::string system = golden_path("lru_case_100.json");
  const auto out = dir / "reduced.json";
  ASSERT_EQ(run_cli({"reduce", "--system", system, "--rank", "2", "--out", out.string()}).status, 0);
  const auto result = run_cli({"reduce", "--system", system, "--rank", "4", "--out", out.string(), "--json"});
  ASSERT_EQ(result.status, 0) << result.err;
  EXPECT_EQ(compressm::io::read_system_json(out).state_dim(), 4);

  const auto notes = dir.write("notes.json", "previous run");
  const auto refused = run_cli({"reduce", "--system", system, "--rank", "4", "--out", notes.string()});
  EXPECT_EQ(refused.status, 2);
  EXPECT_NE(refused.err.find(notes.string() + ": exists and is not a system file; refusing to replace it"),
            std::string::npos) << refused.err;
  EXPECT_EQ(read_text(notes), "previous run");
}

// States that cancel each other (1 / (z^6 - eps^6) as six poles with residues
// ~1e8 whose sum is small) make the HSVs rounding noise. The tool says so:
// either the reduction is refused (a reduced pole came out unstable, nothing
// written) or it succeeds with the ill_conditioned guard; never silently.
TEST(CliReduce, CancellingStatesAreFlaggedOrRefused) {
  TempDir dir;
  const int k = 6;
  const auto system = dir / "cancelling.json";
  compressm::io::write_system_json(compressm::testing::cancelling_system(k, 0.017), system);
  const auto hsv = run_cli({"hsv", "--system", system.string()});
  EXPECT_EQ(hsv.status, 0) << hsv.err;
  EXPECT_NE(hsv.err.find(system.string() + ": the HSVs are unreliable"), std::string::npos) << hsv.err;
  for (int rank = 1; rank < k; ++rank) {
    SCOPED_TRACE("rank " + std::to_string(rank));
    const auto out = dir / ("out" + std::to_string(rank) + ".json");
    const auto r = run_cli({"reduce", "--system", system.string(), "--rank", std::to_string(rank), "--out",
                            out.string()});
    if (r.status == 0) {
      EXPECT_NE(r.out.find("ill_conditioned"), std::string::npos) << r.out;
    } else {
      EXPECT_EQ(r.status, 2);
      EXPECT_NE(r.err.find(system.string() + ": the reduction is unreliable in double precision: "),
                std::string::npos) << r.err;
      EXPECT_FALSE(std::filesystem::exists(out));
    }
  }
}

// Real poles within a few eps of 1 are kept at their place only to eps
// absolute, which moves the gain near them by eps / (1 - |mu|) relative: an
// H-inf error of 7.9e14 against a bound of 2.75 (confirmed at 50 digits by a
// review). Refused, nothing written; the same system cut elsewhere is fine.
TEST(CliReduce, AResultFarAboveTheBoundIsRefused) {
  TempDir dir;
  compressm::linalg::DiagonalSystem s{compressm::linalg::VectorXc(6), compressm::linalg::MatrixXc(6, 1),
                                      compressm::linalg::MatrixXc(1, 6), compressm::linalg::VectorXd::Zero(1)};
  s.lambda << 1.0 - std::ldexp(1.0, -52), 1.0 - std::ldexp(1.0, -51), 1.0 - std::ldexp(1.0, -50), 0.5, 0.2, -0.3;
  s.B << 0.22463852364937692, 2.550034636307906, 1.498654758135483, 1.4967371655185107, -2.0395038375946424,
      -0.3403166247023773;
  s.C << -0.6086106159129299, 0.5327215998890392, -2.279026489055327, 1.1744986790091876, 1.0669833108953142,
      -1.3020708582457947;
  const auto system = dir / "near_one.json";
  compressm::io::write_system_json(s, system);
  const auto out = dir / "out.json";
  const auto r = run_cli({"reduce", "--system", system.string(), "--rank", "3", "--out", out.string()});
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_NE(r.err.find(system.string() + ": the reduction is unreliable in double precision: its H-inf error"),
            std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(out));
}

// The edge cases of docs/design.md §2 (|mu| near 1, zero phases, repeated
// eigenvalues, states with no energy) end to end: the tool must succeed and
// write a stable system that reads back, within the H-inf bound.
TEST(CliReduce, HardSystemsGiveStableReadableOutput) {
  TempDir dir;
  std::mt19937_64 rng(2024);
  for (int k = 0; k < compressm::testing::kSystemKindCount; ++k) {
    const auto kind = static_cast<compressm::testing::SystemKind>(k);
    SCOPED_TRACE(compressm::testing::kind_name(kind));
    const auto system = dir / (std::string(compressm::testing::kind_name(kind)) + ".json");
    const auto out = dir / "reduced.json";
    compressm::io::write_system_json(compressm::testing::random_system(rng, 24, 3, kind), system);
    const auto result = run_cli({"reduce", "--system", system.string(), "--tol", "0.95", "--out",
                                 out.string(), "--hinf-grid", "256", "--json"});
    ASSERT_EQ(result.status, 0) << result.err;
    EXPECT_EQ(result.err.find("exceeds"), std::string::npos) << result.err;
    const json doc = json::parse(result.out);
    EXPECT_LT(doc["max_abs_eig"].get<double>(), 1.0);
    EXPECT_LE(doc["hinf_error"].get<double>(), doc["hinf_bound"].get<double>() * (1.0 + 1e-6) + 1e-9);
    EXPECT_EQ(compressm::io::read_system_json(out).state_dim(), doc["rank"].get<int>());
  }
}

TEST(CliHelp, EverySubcommandHasHelp) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--help"}, {"hsv", "--help"}, {"reduce", "--help"}}) {
    const auto result = run_cli(args);
    EXPECT_EQ(result.status, 0) << args[0];
    EXPECT_NE(result.out.find("--"), std::string::npos) << result.out;
    EXPECT_TRUE(result.err.empty()) << result.err;
  }
  EXPECT_NE(run_cli({"reduce", "--help"}).out.find("--tol"), std::string::npos);
  EXPECT_NE(run_cli({"hsv", "--help"}).out.find("--system"), std::string::npos);
}

TEST(CliHelp, Version) {
  const auto result = run_cli({"--version"});
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(result.out.rfind("compressm ", 0), 0u) << result.out;
  // Which BLAS kernels run (src/linalg/blas_runtime.cpp), when the BLAS is OpenBLAS.
  if (compressm::linalg::lapack_available()) {
    EXPECT_NE(result.out.find("BLAS: OpenBLAS, kernels "), std::string::npos) << result.out;
  }
}

}  // namespace
