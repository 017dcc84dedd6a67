#include "linalg/balanced_truncation.h"

#include <cmath>
#include <iomanip>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "linalg/dense_kernels_internal.h"
#include "linalg/gramians.h"
#include "linalg/hankel.h"
#include "linalg/lru_parameters.h"
#include "linalg/rank_selection.h"
#include "linalg/stability.h"
#include "linalg/stopwatch.h"

namespace compressm::linalg {
namespace {

// HSVs at or below N * eps * sigma_1 are numerical zeros: balancing them would
// divide by sqrt(0). Such states carry no input-output energy.
Eigen::Index numerical_rank(const VectorXd& hsv) {
  if (hsv.size() == 0 || !(hsv[0] > 0.0)) return 0;
  const double floor = static_cast<double>(hsv.size()) *
                       std::numeric_limits<double>::epsilon() * hsv[0];
  Eigen::Index r = 0;
  while (r < hsv.size() && hsv[r] > floor) ++r;
  return r;
}

struct Projection {
  MatrixXc T;  // {N, r}: reduced -> full coordinates
  MatrixXc W;  // {N, r}: full -> reduced is W^H
};

// T_r = Lc V_r S_r^{-1/2},  W_r = Lo U_r S_r^{-1/2}  (W_r^H T_r = I_r), for the
// r balanced states starting at `first`.
Projection balancing_projection(const SquareRootBalancing& b, Eigen::Index first, Eigen::Index r,
                                Backend backend) {
  const VectorXc scale = b.hsv.segment(first, r).cwiseSqrt().cwiseInverse().cast<Complex>();
  return {factor_multiply(b.Lc, false, b.V.middleCols(first, r) * scale.asDiagonal(), backend),
          factor_multiply(b.Lo, false, b.U.middleCols(first, r) * scale.asDiagonal(), backend)};
}

// A system of one state that maps every input to zero: the truncation of a
// system whose HSVs are all zero (its transfer function is zero).
DenseSystem zero_system(Eigen::Index inputs, Eigen::Index outputs, Complex pole) {
  return {MatrixXc::Constant(1, 1, pole), MatrixXc::Zero(1, inputs), MatrixXc::Zero(outputs, 1)};
}

// Gramian factors, with the time of each stage for the benchmark breakdown.
std::pair<GramianFactor, GramianFactor> timed_factors(const DiagonalSystem& system,
                                                      Backend backend,
                                                      BalancedTruncation::Timing& timing) {
  Stopwatch watch;
  const MatrixXc p = controllability_gramian(system);
  const MatrixXc q = observability_gramian(system);
  require_finite(p, "controllability Gramian");
  require_finite(q, "observability Gramian");
  timing.gramians_ms = watch.lap_ms();
  std::pair<GramianFactor, GramianFactor> factors{psd_factor(p, backend), psd_factor(q, backend)};
  timing.factor_ms = watch.lap_ms();
  return factors;
}

std::pair<GramianFactor, GramianFactor> timed_factors(const DenseSystem& system, Backend backend,
                                                      BalancedTruncation::Timing& timing) {
  Stopwatch watch;
  auto factors = gramian_factors(system, backend);  // Hammarling: no Gramian is formed
  timing.factor_ms = watch.lap_ms();
  return factors;
}

template <class System, class ApplyA>
BalancedTruncation truncate(const System& system, const MatrixXc& b_in, const MatrixXc& c_out,
                            const RankRule& rule, ApplyA apply_a, Complex fallback_pole,
                            Backend backend, KeptStates kept) {
  BalancedTruncation out;
  auto [lc, lo] = timed_factors(system, backend, out.timing);
  Stopwatch watch;
  // The rule picks r from the HSVs inside the SVD, before any vector is formed.
  const SquareRootBalancing balancing = square_root_balancing(
      std::move(lc), std::move(lo),
      [&](const VectorXd& hsv) {
        out.requested_rank = select_rank(rule, hsv);
        if (rule.gated && !passes_reduction_gate(out.requested_rank, hsv.size())) {
          out.truncated = false;
          return Eigen::Index{0};
        }
        // The smallest states are the last nonzero ones: every vector is needed.
        return kept == KeptStates::kSmallest ? numerical_rank(hsv)
                                             : std::min(out.requested_rank, numerical_rank(hsv));
      },
      backend);
  watch.lap_ms();
  out.timing.product_ms = balancing.timing.product_ms;
  out.timing.svd_ms = balancing.timing.svd_ms;
  out.hsv = balancing.hsv;
  if (!out.truncated) {
    out.rank = out.hsv.size();
    return out;
  }
  const Eigen::Index nonzero = balancing.U.cols();
  out.rank = std::min(out.requested_rank, nonzero);
  out.first_kept = kept == KeptStates::kSmallest ? nonzero - out.rank : 0;
  if (out.rank == 0) {
    out.rank = 1;
    out.reduced = zero_system(b_in.cols(), c_out.rows(), fallback_pole);
    out.hinf_bound = 0.0;
    return out;
  }
  out.hinf_bound = 2.0 * (out.hsv.sum() - out.hsv.segment(out.first_kept, out.rank).sum());
  const Projection proj = balancing_projection(balancing, out.first_kept, out.rank, backend);
  out.reduced.A = multiply(proj.W, true, apply_a(proj.T), backend);
  out.reduced.B = multiply(proj.W, true, b_in, backend);
  out.reduced.C = multiply(c_out, false, proj.T, backend);
  out.timing.projection_ms = watch.lap_ms();
  return out;
}

}  // namespace

BalancedTruncation balanced_truncation(const DiagonalSystem& system, const RankRule& rule,
                                       Backend backend, KeptStates kept) {
  const VectorXc& lambda = system.lambda;
  return truncate(system, system.B, system.C, rule,
                  [&](const MatrixXc& t) -> MatrixXc { return lambda.asDiagonal() * t; },
                  lambda.size() ? lambda[0] : Complex(0.5), backend, kept);
}

BalancedTruncation balanced_truncation(const DenseSystem& system, const RankRule& rule,
                                       Backend backend, KeptStates kept) {
  return truncate(system, system.B, system.C, rule,
                  [&](const MatrixXc& t) { return multiply(system.A, false, t, backend); },
                  Complex(0.5), backend, kept);
}

namespace {

// Reciprocal condition estimate of the eigenvector matrix; tiny means A_r is
// (nearly) defective and V^{-1} B_r would be dominated by rounding.
constexpr double kMinEigenvectorRcond = 1e-12;

// Nearly-defective guard: shrink the Schur diagonal entries t_kk by distinct
// relative amounts delta * (k + 1) (inward, so stability is kept), which splits
// every cluster of eigenvalues; delta grows by 10x until the eigenvectors are
// well enough conditioned. The change of A_r is reported.
EigenDecomposition separate_eigenvalues(const MatrixXc& a, Backend backend,
                                        std::vector<GuardEvent>* guards) {
  const SchurForm schur = complex_schur(a);
  const double eps = std::numeric_limits<double>::epsilon();
  for (double delta = std::sqrt(eps); delta < 1e-2; delta *= 10.0) {
    MatrixXc t = schur.T;
    for (Eigen::Index k = 0; k < t.rows(); ++k) t(k, k) *= (1.0 - delta * static_cast<double>(k + 1) / t.rows());
    EigenDecomposition eig = eigen_decomposition(schur.Z * t * schur.Z.adjoint(), backend);
    Eigen::PartialPivLU<MatrixXc> lu(eig.vectors);
    if (lu.rcond() >= kMinEigenvectorRcond) {
      std::ostringstream s;
      s << "A_r nearly defective: eigenvalues separated by relative shifts up to " << delta;
      guards->push_back({"nearly_defective", s.str()});
      return eig;
    }
  }
  throw std::runtime_error("rediagonalise: could not separate a defective eigenvalue cluster");
}

}  // namespace

DiagonalReduction rediagonalise(const DenseSystem& reduced, const VectorXd& d, Backend backend) {
  DiagonalReduction out;
  EigenDecomposition eig = eigen_decomposition(reduced.A, backend);
  Eigen::PartialPivLU<MatrixXc> lu(eig.vectors);
  if (!(lu.rcond() >= kMinEigenvectorRcond)) {
    eig = separate_eigenvalues(reduced.A, backend, &out.guards);
    lu.compute(eig.vectors);
  }
  out.system.lambda = eig.values;
  out.system.B = lu.solve(reduced.B);
  out.system.C = reduced.C * eig.vectors;
  out.system.D = d;
  // Balanced truncation of a stable system is stable in exact arithmetic: an
  // eigenvalue on or outside the unit circle is rounding, and a large one
  // means the reduction went wrong (callers that write the result refuse it).
  // Poles inside the circle stay where they are, however close to it; the
  // LRU's own limits (lru_parameters.h) are system_to_lru's business.
  const double max_radius = LruGuardLimits{}.max_radius;
  for (Eigen::Index i = 0; i < out.system.lambda.size(); ++i) {
    const double radius = std::abs(out.system.lambda[i]);
    if (!std::isfinite(radius))
      throw std::runtime_error("rediagonalise: eigenvalue " + std::to_string(i) + " is not finite");
    if (radius < 1.0) continue;
    std::ostringstream s;
    s.precision(17);
    s << "eigenvalue " << i << ": |mu| = " << radius << " >= 1 (unstable; rounding or an ill-conditioned system), "
      << "clamped to 1 - " << std::setprecision(3) << 1.0 - max_radius;
    out.guards.push_back({"unstable", s.str()});
    out.system.lambda[i] *= max_radius / radius;
  }
  return out;
}

}  // namespace compressm::linalg
