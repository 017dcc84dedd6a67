// Parity with the official (JAX) reduction code on the golden LRU systems in
// ../shared/golden, and with exact (60-digit) HSVs from scripts/exact_hsv.py.
//
// What is compared and why:
//   * HSVs vs the exact oracle at 1e-8 relative: the golden HSVs are not exact
//     (see golden_hsv_tolerance), so only the oracle can check our square-root
//     method tightly.
//   * HSVs vs golden within the golden method's own error bound.
//   * Per tolerance: the rank (must be equal), the 64 real Markov parameters
//     Re(C' mu^k B') of the reduced system (basis-independent, unlike the raw
//     matrices), stability, and the balanced-truncation bound
//     ||G - G_r||_inf <= 2 * sum of discarded HSVs.
// Every check runs for each backend compiled in.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "linalg/dense_kernels.h"
#include "linalg/frequency_response.h"
#include "linalg/hankel.h"
#include "linalg/lru_reduction.h"
#include "linalg/types.h"

namespace {

namespace fs = std::filesystem;
using namespace compressm::linalg;
using nlohmann::json;

const fs::path kGoldenDir = fs::path(COMPRESSM_SHARED_DIR) / "golden";
const fs::path kExactDir = fs::path(COMPRESSM_SOURCE_DIR) / "tests" / "data" / "exact_hsv";
constexpr int kMarkovCount = 64;

// ---- a tiny loader, independent of src/io on purpose: the oracle must not
// share a parser with the code under test.

struct GoldenReduction {
  double tol = 0.0;
  Eigen::Index rank = 0;
  std::vector<MatrixXd> markov_full;     // {64} x {H, H}
  std::vector<MatrixXd> markov_reduced;  // {64} x {H, H}
  double max_abs_eig_reduced = 0.0;
};

struct GoldenCase {
  std::string name;
  DiagonalSystem system;
  VectorXd hsv;  // golden, descending
  std::vector<GoldenReduction> reductions;
};

json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  return json::parse(in);
}

Complex to_complex(const json& pair) { return {pair.at(0).get<double>(), pair.at(1).get<double>()}; }

VectorXd to_vector(const json& values) {
  VectorXd v(static_cast<Eigen::Index>(values.size()));
  for (Eigen::Index i = 0; i < v.size(); ++i) v(i) = values.at(i).get<double>();
  return v;
}

// [rows][cols][2] -> complex matrix
MatrixXc to_complex_matrix(const json& rows) {
  MatrixXc m(rows.size(), rows.at(0).size());
  for (Eigen::Index i = 0; i < m.rows(); ++i)
    for (Eigen::Index j = 0; j < m.cols(); ++j) m(i, j) = to_complex(rows.at(i).at(j));
  return m;
}

// [64][P][H] -> 64 real matrices
std::vector<MatrixXd> to_markov(const json& steps) {
  std::vector<MatrixXd> out;
  for (const json& step : steps) {
    MatrixXd m(step.size(), step.at(0).size());
    for (Eigen::Index i = 0; i < m.rows(); ++i)
      for (Eigen::Index j = 0; j < m.cols(); ++j) m(i, j) = step.at(i).at(j).get<double>();
    out.push_back(std::move(m));
  }
  return out;
}

GoldenCase load_case(const fs::path& path) {
  const json j = read_json(path);
  GoldenCase c;
  c.name = path.stem().string();
  const json& lambda = j.at("lambda");
  c.system.lambda.resize(static_cast<Eigen::Index>(lambda.size()));
  for (Eigen::Index i = 0; i < c.system.lambda.size(); ++i) c.system.lambda(i) = to_complex(lambda.at(i));
  c.system.B = to_complex_matrix(j.at("B"));
  c.system.C = to_complex_matrix(j.at("C"));
  c.system.D = to_vector(j.at("D"));
  c.hsv = to_vector(j.at("hsv_sorted_desc"));
  for (const json& r : j.at("reductions")) {
    GoldenReduction g;
    g.tol = r.at("tol").get<double>();
    g.rank = r.at("rank").get<Eigen::Index>();
    g.markov_full = to_markov(r.at("markov_full_real"));
    g.markov_reduced = to_markov(r.at("markov_reduced_real"));
    g.max_abs_eig_reduced = r.at("max_abs_eig_reduced").get<double>();
    c.reductions.push_back(std::move(g));
  }
  return c;
}

std::vector<fs::path> golden_files() {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(kGoldenDir, ec))
    if (entry.path().extension() == ".json") files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<Backend> backends() {
  std::vector<Backend> b{Backend::Reference};
  if (lapack_available()) b.push_back(Backend::Lapack);
  return b;
}

double max_abs(const std::vector<MatrixXd>& ms) {
  double m = 0.0;
  for (const MatrixXd& x : ms) m = std::max(m, x.cwiseAbs().maxCoeff());
  return m;
}

// max_k max_ij |a_k - b_k|
double max_abs_difference(const std::vector<MatrixXd>& a, const std::vector<MatrixXd>& b) {
  double m = 0.0;
  for (size_t k = 0; k < a.size(); ++k) m = std::max(m, (a[k] - b[k]).cwiseAbs().maxCoeff());
  return m;
}

// Tolerance for our HSVs against the golden ones. The golden code takes
// sqrt(eig(P Q)); the eigenvalue sigma_k^2 of P Q is computed with a forward
// error of about c * eps * ||P|| ||Q|| ~ c * eps * sigma_1^2, hence
//   |delta sigma_k| ~ |delta sigma_k^2| / (2 sigma_k) <= c * eps * sigma_1^2 / sigma_k,
// i.e. a relative error of c * eps * (sigma_1 / sigma_k)^2: up to 2.1e-4 on the
// '_weak' cases (sigma_k ~ 1e-7 sigma_1), as measured against the exact oracle.
// There the golden errors follow this 1/sigma_k law with c <= 0.1; c = 64
// leaves room for other seeds. The 1e-8 relative floor covers the large HSVs,
// where plain rounding (up to 180 eps sigma_1, lru_case_102) exceeds the bound.
double golden_hsv_tolerance(double sigma_k, double sigma_1) {
  constexpr double c = 64.0;
  const double eps = std::numeric_limits<double>::epsilon();
  return std::max(1e-8 * sigma_k, c * eps * sigma_1 * sigma_1 / sigma_k);
}

class GoldenCaseTest : public ::testing::TestWithParam<fs::path> {};

TEST_P(GoldenCaseTest, MatchesOfficialCodeAndExactOracle) {
  const GoldenCase c = load_case(GetParam());
  const Eigen::Index n = c.system.state_dim();
  ASSERT_EQ(c.hsv.size(), n);

  const fs::path exact_path = kExactDir / (c.name + ".json");
  ASSERT_TRUE(fs::exists(exact_path))
      << "no exact oracle for " << c.name << ": run scripts/exact_hsv.py";
  const VectorXd exact = to_vector(read_json(exact_path).at("hsv_desc"));
  ASSERT_EQ(exact.size(), n);
  const double sigma_1 = exact(0);

  // Our loader and our Markov parameters agree with the golden full system:
  // guards the layout ([k][output][input]) before anything is compared.
  const auto ours_full = real_markov_parameters(c.system, kMarkovCount);
  for (const GoldenReduction& g : c.reductions) {
    ASSERT_EQ(ours_full.size(), g.markov_full.size());
    EXPECT_LE(max_abs_difference(ours_full, g.markov_full), 1e-10 * max_abs(g.markov_full));
  }

  for (Backend backend : backends()) {
    SCOPED_TRACE(std::string("backend ") + backend_name(backend));
    const VectorXd hsv = hankel_singular_values(c.system, backend);
    ASSERT_EQ(hsv.size(), n);

    // (a) exact oracle: 1e-8 relative for HSVs above 1e-12 sigma_1.
    double worst_exact = 0.0;  // max relative error
    for (Eigen::Index k = 0; k < n; ++k) {
      const double scale = std::max(exact(k), 1e-12 * sigma_1);
      const double rel = std::abs(hsv(k) - exact(k)) / scale;
      worst_exact = std::max(worst_exact, rel);
      EXPECT_LE(rel, 1e-8) << "HSV " << k << ": ours " << hsv(k) << ", exact " << exact(k);
    }

    // (b) golden HSVs within the golden method's error bound.
    double worst_golden = 0.0;  // max |error| / tolerance
    for (Eigen::Index k = 0; k < n; ++k) {
      const double tol = golden_hsv_tolerance(exact(k), sigma_1);
      const double diff = std::abs(hsv(k) - c.hsv(k));
      worst_golden = std::max(worst_golden, diff / tol);
      EXPECT_LE(diff, tol) << "HSV " << k << ": ours " << hsv(k) << ", golden " << c.hsv(k);
    }
    std::cout << "[ measured ] " << c.name << " " << backend_name(backend)
              << ": hsv max rel err vs exact " << worst_exact
              << ", hsv vs golden max |err|/tol " << worst_golden << "\n";

    for (const GoldenReduction& g : c.reductions) {
      SCOPED_TRACE("tol " + std::to_string(g.tol));
      const LruReduction r = reduce_diagonal_system(c.system, RankRule::energy(g.tol), backend);
      ASSERT_EQ(r.rank, g.rank);
      ASSERT_EQ(r.reduced.state_dim(), g.rank);

      const auto markov = real_markov_parameters(r.reduced, kMarkovCount);
      const double scale = max_abs(g.markov_reduced);
      const double markov_err = max_abs_difference(markov, g.markov_reduced) / scale;
      EXPECT_LE(markov_err, 1e-6) << "reduced Markov parameters, relative to max |entry| " << scale;

      const double radius = r.reduced.lambda.cwiseAbs().maxCoeff();
      EXPECT_LT(radius, 1.0);
      for (const GuardEvent& e : r.guards) EXPECT_NE(e.guard, "unstable") << e.detail;  // stable, not clamped

      const double hinf = hinf_error(c.system, r.reduced);
      EXPECT_LE(hinf, r.hinf_bound * (1.0 + 1e-6)) << "H-inf error above 2 * discarded HSVs";
      std::cout << "[ measured ]   tol " << g.tol << " rank " << r.rank
                << ": markov rel err " << markov_err << ", max|mu| " << radius
                << " (golden " << g.max_abs_eig_reduced << "), hinf/bound "
                << hinf / r.hinf_bound << ", guards " << r.guards.size() << "\n";
      // Guards are logged, not asserted: firing one is legitimate behaviour.
      for (const GuardEvent& e : r.guards) std::cout << "    guard " << e.guard << ": " << e.detail << "\n";
    }
  }
}

std::string case_name(const ::testing::TestParamInfo<fs::path>& info) {
  std::string name = info.param.stem().string();
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return name;
}

INSTANTIATE_TEST_SUITE_P(Golden, GoldenCaseTest, ::testing::ValuesIn(golden_files()), case_name);

// A missing or empty golden directory must fail, never silently test nothing.
TEST(GoldenFiles, DirectoryHoldsCases) {
  ASSERT_TRUE(fs::is_directory(kGoldenDir)) << kGoldenDir << " is missing";
  EXPECT_FALSE(golden_files().empty()) << "no *.json in " << kGoldenDir;
}

// Every golden case has an exact oracle (scripts/exact_hsv.py).
TEST(GoldenFiles, EveryCaseHasExactOracle) {
  for (const fs::path& p : golden_files())
    EXPECT_TRUE(fs::exists(kExactDir / p.filename())) << "run scripts/exact_hsv.py for " << p;
}

}  // namespace
