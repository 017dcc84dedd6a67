// Cross-check of the dense (general A) path against SLICOT, the reference
// Fortran library for model reduction (Debian libslicot, release 5.0):
//   AB13AD  Hankel singular values (square-root method, Tombs & Postlethwaite 1987)
//   AB09AD  square-root Balance & Truncate, JOB = 'B'
// on seeded random real, stable, non-normal discrete-time systems. SLICOT
// works in real arithmetic with Hammarling's Cholesky-factor Lyapunov solver,
// so agreement is an independent check of our complex Bartels–Stewart Gramians,
// factors and truncation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <iostream>
#include <random>
#include <vector>

#include <Eigen/Eigenvalues>

#include "linalg/balanced_truncation.h"
#include "linalg/dense_kernels.h"
#include "linalg/frequency_response.h"
#include "linalg/hankel.h"
#include "linalg/types.h"

// SLICOT has no C header: Fortran calling convention, every argument by
// reference, column-major arrays, and one hidden length (size_t with gfortran)
// per CHARACTER argument, appended after the regular arguments.
extern "C" {
// DOUBLE PRECISION FUNCTION AB13AD(DICO, EQUIL, N, M, P, ALPHA, A, LDA, B, LDB,
//                                  C, LDC, NS, HSV, DWORK, LDWORK, INFO)
double ab13ad_(const char* dico, const char* equil, const int* n, const int* m, const int* p,
               const double* alpha, double* a, const int* lda, double* b, const int* ldb,
               double* c, const int* ldc, int* ns, double* hsv, double* dwork,
               const int* ldwork, int* info, std::size_t dico_len, std::size_t equil_len);
// SUBROUTINE AB09AD(DICO, JOB, EQUIL, ORDSEL, N, M, P, NR, A, LDA, B, LDB, C, LDC,
//                   HSV, TOL, IWORK, DWORK, LDWORK, IWARN, INFO)
void ab09ad_(const char* dico, const char* job, const char* equil, const char* ordsel,
             const int* n, const int* m, const int* p, int* nr, double* a, const int* lda,
             double* b, const int* ldb, double* c, const int* ldc, double* hsv,
             const double* tol, int* iwork, double* dwork, const int* ldwork, int* iwarn,
             int* info, std::size_t dico_len, std::size_t job_len, std::size_t equil_len,
             std::size_t ordsel_len);
}

namespace {

using namespace compressm::linalg;

constexpr int kSystems = 50;
constexpr int kMarkovCount = 64;

struct RealSystem {
  MatrixXd A, B, C;  // {N, N}, {N, M}, {P, N}
};

// A = Q (S + E) Q^T: S block diagonal with 2x2 rotation blocks r [cos -sin; sin cos]
// (complex pairs) and 1x1 blocks +-r, radii r in (0.3, 0.99); E strictly upper
// block-triangular (non-normal part). S + E is block upper triangular, so its
// eigenvalues are exactly those of S whatever the size of E: the spectral
// radius stays < 0.99 while the Gramians become non-normal. Q is a random
// orthogonal matrix (QR of a Gaussian matrix).
RealSystem random_stable_system(unsigned seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> pick_n(2, 30), pick_io(1, 4);
  std::uniform_real_distribution<double> radius(0.3, 0.99), angle(0.05, 3.09), unit(0.0, 1.0);
  std::normal_distribution<double> gauss(0.0, 1.0);
  const int n = pick_n(rng), m = pick_io(rng), p = pick_io(rng);

  MatrixXd s = MatrixXd::Zero(n, n);
  std::vector<int> block_start;
  for (int i = 0; i < n;) {
    block_start.push_back(i);
    const double r = radius(rng);
    if (i + 1 < n && unit(rng) < 0.7) {
      const double t = angle(rng);
      s(i, i) = s(i + 1, i + 1) = r * std::cos(t);
      s(i, i + 1) = -r * std::sin(t);
      s(i + 1, i) = r * std::sin(t);
      i += 2;
    } else {
      s(i, i) = unit(rng) < 0.5 ? r : -r;
      i += 1;
    }
  }
  const double nonnormal = 1.5 * unit(rng) / std::sqrt(static_cast<double>(n));
  for (size_t b = 0; b < block_start.size(); ++b) {
    const int next = b + 1 < block_start.size() ? block_start[b + 1] : n;
    for (int i = block_start[b]; i < next; ++i)
      for (int j = next; j < n; ++j) s(i, j) = nonnormal * gauss(rng);
  }
  auto gaussian_matrix = [&](int rows, int cols) {
    MatrixXd x(rows, cols);
    for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = gauss(rng);
    return x;
  };
  const MatrixXd q = Eigen::HouseholderQR<MatrixXd>(gaussian_matrix(n, n)).householderQ();

  RealSystem sys;
  sys.A = q * s * q.transpose();
  sys.B = gaussian_matrix(n, m);
  sys.C = gaussian_matrix(p, n);
  return sys;
}

DenseSystem to_dense(const RealSystem& s) {
  return {s.A.cast<Complex>(), s.B.cast<Complex>(), s.C.cast<Complex>()};
}

double spectral_radius(const MatrixXd& a) {
  return Eigen::EigenSolver<MatrixXd>(a, false).eigenvalues().cwiseAbs().maxCoeff();
}

// HSVs of the stable part by AB13AD (all of it: ALPHA = 1, DICO = 'D').
VectorXd slicot_hsv(RealSystem s) {
  const int n = s.A.rows(), m = s.B.cols(), p = s.C.rows();
  const double alpha = 1.0;
  // LDWORK >= MAX(1, N*(MAX(N,M,P)+5) + N*(N+1)/2); more only helps blocking.
  const int ldwork = 2 * (n * (std::max({n, m, p}) + 5) + n * (n + 1) / 2) + 64;
  std::vector<double> dwork(ldwork);
  VectorXd hsv(n);
  int ns = 0, info = 0;
  ab13ad_("D", "N", &n, &m, &p, &alpha, s.A.data(), &n, s.B.data(), &n, s.C.data(), &p, &ns,
          hsv.data(), dwork.data(), &ldwork, &info, 1, 1);
  EXPECT_EQ(info, 0) << "AB13AD";
  EXPECT_EQ(ns, n) << "AB13AD: stable part smaller than the system";
  return hsv.head(ns);
}

// Square-root Balance & Truncate to fixed order nr by AB09AD.
RealSystem slicot_truncate(RealSystem s, int nr) {
  const int n = s.A.rows(), m = s.B.cols(), p = s.C.rows();
  // LDWORK >= MAX(1, N*(2*N + MAX(N,M,P) + 5) + N*(N+1)/2).
  const int ldwork = 2 * (n * (2 * n + std::max({n, m, p}) + 5) + n * (n + 1) / 2) + 64;
  std::vector<double> dwork(ldwork);
  std::vector<int> iwork(n);  // LIWORK = 0 for JOB = 'B'; sized N to be safe
  VectorXd hsv(n);
  const double tol = 0.0;  // ignored with ORDSEL = 'F'
  int order = nr, iwarn = 0, info = 0;
  ab09ad_("D", "B", "N", "F", &n, &m, &p, &order, s.A.data(), &n, s.B.data(), &n, s.C.data(),
          &p, hsv.data(), &tol, iwork.data(), dwork.data(), &ldwork, &iwarn, &info, 1, 1, 1, 1);
  EXPECT_EQ(info, 0) << "AB09AD";
  EXPECT_EQ(iwarn, 0) << "AB09AD lowered the order";
  EXPECT_EQ(order, nr);
  return {s.A.topLeftCorner(order, order), s.B.topRows(order), s.C.leftCols(order)};
}

// C A^k B, k < count, in plain real arithmetic (independent of the core).
std::vector<MatrixXd> markov(const RealSystem& s, int count) {
  std::vector<MatrixXd> out;
  MatrixXd akb = s.B;
  for (int k = 0; k < count; ++k) {
    out.push_back(s.C * akb);
    akb = s.A * akb;
  }
  return out;
}

// A truncation order with a clear gap (sigma_r > 1.01 sigma_{r+1}, else the
// kept subspace is ill-determined and two correct codes may disagree) and
// sigma_r well above rounding (1e-6 sigma_1); the one nearest N/2. 0 if none.
int well_posed_order(const VectorXd& hsv) {
  const int n = hsv.size();
  int best = 0;
  for (int r = 1; r < n; ++r) {
    if (hsv(r - 1) <= 1.01 * hsv(r) || hsv(r - 1) <= 1e-6 * hsv(0)) continue;
    if (best == 0 || std::abs(2 * r - n) < std::abs(2 * best - n)) best = r;
  }
  return best;
}

std::vector<Backend> backends() {
  std::vector<Backend> b{Backend::Reference};
  if (lapack_available()) b.push_back(Backend::Lapack);
  return b;
}

TEST(SlicotOracle, RandomSystemsAreStable) {
  for (int seed = 0; seed < kSystems; ++seed) {
    const RealSystem s = random_stable_system(seed);
    EXPECT_LT(spectral_radius(s.A), 0.99 + 1e-9) << "seed " << seed;
  }
}

// Compares our HSVs with AB13AD's on every system and backend, allowing
// |ours_k - slicot_k| <= tolerance(sigma_k, sigma_1); prints the worst cases.
template <typename Tolerance>
void compare_hsv_with_ab13ad(Tolerance tolerance) {
  for (Backend backend : backends()) {
    double worst_ratio = 0.0, worst_rel = 0.0, worst_rel_at = 1.0, worst_abs = 0.0;
    for (int seed = 0; seed < kSystems; ++seed) {
      SCOPED_TRACE("seed " + std::to_string(seed) + ", backend " + backend_name(backend));
      const RealSystem s = random_stable_system(seed);
      const VectorXd expected = slicot_hsv(s);
      const VectorXd ours = hankel_singular_values(to_dense(s), backend);
      ASSERT_EQ(ours.size(), expected.size());
      const double sigma_1 = expected(0);
      for (Eigen::Index k = 0; k < ours.size(); ++k) {
        const double diff = std::abs(ours(k) - expected(k));
        const double tol = tolerance(expected(k), sigma_1);
        worst_ratio = std::max(worst_ratio, diff / tol);
        worst_abs = std::max(worst_abs, diff / sigma_1);
        if (expected(k) >= 1e-10 * sigma_1 && diff / expected(k) > worst_rel) {
          worst_rel = diff / expected(k);
          worst_rel_at = expected(k) / sigma_1;
        }
        EXPECT_LE(diff, tol) << "HSV " << k << ": ours " << ours(k) << ", SLICOT " << expected(k)
                             << " (sigma_k / sigma_1 = " << expected(k) / sigma_1 << ")";
      }
    }
    std::cout << "[ measured ] " << backend_name(backend) << ": HSVs vs AB13AD max |err|/tol "
              << worst_ratio << ", max |err|/sigma_1 " << worst_abs << ", max rel err "
              << worst_rel << " (at sigma_k/sigma_1 = " << worst_rel_at << ")\n";
  }
}

// Both sides compute Cholesky factors of the Gramians directly (Hammarling's
// method; ours in src/linalg/stein_factor.cpp), which keeps small HSVs
// relatively accurate: 1e-9 relative for every sigma_k >= 1e-10 sigma_1. The
// 1e-17 sigma_1 term (0.05 eps sigma_1) only matters at the bottom of that
// range, where AB13AD's own error against an exact computation is ~1e-9
// relative and depends on the BLAS kernels OpenBLAS picks for the CPU: the
// Eigen reference SVD is 2.0e-9 off at 3.3e-10 sigma_1 on an AMD EPYC, 4.4e-9
// (5.2e-16 absolute, 1.4e-18 sigma_1) on an Intel Xeon; the LAPACK path 1.8e-10
// at worst. HSVs below 1e-10 sigma_1 are compared
// absolutely, at 1e-14 sigma_1 (~45 eps sigma_1): any backward-stable SVD's
// error. (Forming P and Q first, as an earlier version did, was off by up to
// 5e4 eps sigma_1 absolute: 1.3e-4 relative at 1e-7 sigma_1.)
TEST(SlicotOracle, HankelSingularValuesMatchAB13AD) {
  compare_hsv_with_ab13ad([](double sigma_k, double sigma_1) {
    return sigma_k >= 1e-10 * sigma_1 ? 1e-9 * sigma_k + 1e-17 * sigma_1 : 1e-14 * sigma_1;
  });
}

TEST(SlicotOracle, BalancedTruncationMatchesAB09AD) {
  for (Backend backend : backends()) {
    double worst_markov = 0.0, worst_hinf_ratio = 0.0;
    int compared = 0, worst_seed = -1;
    for (int seed = 0; seed < kSystems; ++seed) {
      SCOPED_TRACE("seed " + std::to_string(seed) + ", backend " + backend_name(backend));
      const RealSystem s = random_stable_system(seed);
      const int r = well_posed_order(slicot_hsv(s));
      if (r == 0) continue;
      ++compared;
      const RealSystem theirs = slicot_truncate(s, r);
      const DenseSystem full = to_dense(s);
      const BalancedTruncation ours = balanced_truncation(full, r, backend);
      ASSERT_EQ(ours.rank, r);
      ASSERT_EQ(ours.reduced.state_dim(), r);

      const std::vector<MatrixXd> expected = markov(theirs, kMarkovCount);
      const std::vector<MatrixXd> got = real_markov_parameters(ours.reduced, kMarkovCount);
      ASSERT_EQ(got.size(), expected.size());
      double scale = 0.0, err = 0.0;
      for (size_t k = 0; k < got.size(); ++k) {
        scale = std::max(scale, expected[k].cwiseAbs().maxCoeff());
        err = std::max(err, (got[k] - expected[k]).cwiseAbs().maxCoeff());
      }
      EXPECT_LE(err, 1e-8 * scale) << "order " << r << " of " << s.A.rows();
      if (err / scale > worst_markov) {
        worst_markov = err / scale;
        worst_seed = seed;
      }

      // The reduced model inherits stability and meets the a-priori bound.
      EXPECT_LT(Eigen::ComplexEigenSolver<MatrixXc>(ours.reduced.A, false).eigenvalues().cwiseAbs().maxCoeff(), 1.0);
      const double hinf = hinf_error(full, ours.reduced);
      EXPECT_LE(hinf, ours.hinf_bound * (1.0 + 1e-6));
      worst_hinf_ratio = std::max(worst_hinf_ratio, hinf / ours.hinf_bound);
    }
    EXPECT_GE(compared, kSystems / 2) << "too few systems with a well-posed truncation order";
    std::cout << "[ measured ] " << backend_name(backend) << ": " << compared
              << " truncations, Markov max rel err vs AB09AD " << worst_markov << " (seed "
              << worst_seed << "), max hinf/bound " << worst_hinf_ratio << "\n";
  }
}

}  // namespace
