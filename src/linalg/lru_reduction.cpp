#include "linalg/lru_reduction.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>

#include "linalg/balanced_truncation.h"
#include "linalg/gramians.h"
#include "linalg/hankel.h"
#include "linalg/rank_selection.h"
#include "linalg/stopwatch.h"

namespace compressm::linalg {
namespace {

void fail(const std::string& message) { throw std::invalid_argument(message); }

}  // namespace

void validate_diagonal_system(const DiagonalSystem& s) {
  const Eigen::Index n = s.lambda.size(), h = s.B.cols();
  if (n == 0) fail("the system has no states (N = 0)");
  if (h == 0) fail("the system has no inputs (H = 0)");
  if (s.B.rows() != n)
    fail("B has " + std::to_string(s.B.rows()) + " rows but lambda has " + std::to_string(n) +
         " entries");
  if (s.C.cols() != n)
    fail("C has " + std::to_string(s.C.cols()) + " columns but lambda has " + std::to_string(n) +
         " entries");
  if (s.D.size() != 0 && s.D.size() != s.C.rows())
    fail("D has " + std::to_string(s.D.size()) + " entries but C has " +
         std::to_string(s.C.rows()) + " rows");
  if (!s.lambda.allFinite()) fail("lambda has non-finite entries");
  if (!s.B.allFinite()) fail("B has non-finite entries");
  if (!s.C.allFinite()) fail("C has non-finite entries");
  if (!s.D.allFinite()) fail("D has non-finite entries");
  for (Eigen::Index i = 0; i < n; ++i)
    if (!(std::abs(s.lambda[i]) < 1.0))
      fail("lambda[" + std::to_string(i) + "] has modulus " + std::to_string(std::abs(s.lambda[i])) +
           " >= 1 (unstable)");
}

double hsv_condition(const DiagonalSystem& system, double sigma1) {
  const Eigen::Index n = system.state_dim();
  VectorXd weight(n), gap(n);  // |B_i| |C_i| and 1 - |lambda_i|^2
  for (Eigen::Index i = 0; i < n; ++i) {
    const double r = std::abs(system.lambda[i]);
    weight[i] = system.B.row(i).norm() * system.C.col(i).norm();
    gap[i] = (1.0 - r) * (1.0 + r);
  }
  // sum_ij |P_ij| |Q_ij| bounded entrywise: |P_ij| <= |B_i| |B_j| / |1 - lambda_i conj(lambda_j)|, whose
  // denominator is at least sqrt(gap_i gap_j) (P is semidefinite), which also keeps rounding from dividing by 0.
  double sum = 0.0;
  for (Eigen::Index j = 0; j < n; ++j) {
    if (weight[j] == 0.0) continue;
    for (Eigen::Index i = 0; i < n; ++i) {
      const double d = std::max(std::abs(1.0 - system.lambda[i] * std::conj(system.lambda[j])),
                                std::sqrt(gap[i] * gap[j]));
      sum += weight[i] * weight[j] / (d * d);
    }
  }
  if (sum == 0.0) return 1.0;  // no state both reachable and observable: every HSV is exactly 0
  return std::max(1.0, sum / (sigma1 * sigma1));
}

std::optional<GuardEvent> ill_conditioned_guard(const DiagonalSystem& system, const VectorXd& hsv) {
  const double rounding = std::numeric_limits<double>::epsilon() * hsv_condition(system, hsv.size() ? hsv[0] : 0.0);
  if (!(rounding > kIllConditionedHsvError)) return std::nullopt;
  std::ostringstream s;
  s.precision(3);
  s << "sum |P_ij| |Q_ij| / sigma_1^2 = " << rounding / std::numeric_limits<double>::epsilon()
    << ": the states cancel each other; rounding of about " << rounding << " sigma_1";
  return GuardEvent{"ill_conditioned", s.str()};
}

bool hinf_error_exceeds(double error, double bound, double hsv_energy, double factor) {
  return !(error <= factor * bound + 1e-9 * hsv_energy);
}

LruReduction reduce_diagonal_system(const DiagonalSystem& system, const RankRule& rule,
                                    Backend backend, KeptStates kept) {
  validate_diagonal_system(system);
  const Eigen::Index n = system.state_dim();
  if (rule.kind == RankRule::Kind::FixedRank && (rule.rank < 1 || rule.rank > n))
    fail("rank " + std::to_string(rule.rank) + " outside [1, " + std::to_string(n) + "]");

  LruReduction out;
  out.old_dim = n;
  BalancedTruncation truncation = balanced_truncation(system, rule, backend, kept);
  out.balance_timing = truncation.timing;
  out.hsv = truncation.hsv;
  out.requested_rank = truncation.requested_rank;
  if (std::optional<GuardEvent> guard = ill_conditioned_guard(system, out.hsv)) out.guards.push_back(*guard);
  if (!truncation.truncated || truncation.requested_rank == n) {  // nothing to truncate: keep the layer
    out.rank = n;
    out.reduced = system;
    out.kept_energy = out.hsv.sum();
    return out;
  }
  if (truncation.rank != truncation.requested_rank)
    out.guards.push_back({"rank_lowered", "requested rank " +
                                              std::to_string(truncation.requested_rank) +
                                              " exceeds the numerical rank; kept " +
                                              std::to_string(truncation.rank)});
  out.rank = truncation.rank;
  out.kept_energy = out.hsv.segment(truncation.first_kept, out.rank).sum();
  out.discarded_energy = out.hsv.sum() - out.kept_energy;
  out.hinf_bound = truncation.hinf_bound;

  Stopwatch watch;
  DiagonalReduction diagonal = rediagonalise(truncation.reduced, system.D, backend);
  out.reduced = std::move(diagonal.system);
  out.guards.insert(out.guards.end(), diagonal.guards.begin(), diagonal.guards.end());
  out.diagonalise_ms = watch.lap_ms();
  return out;
}

}  // namespace compressm::linalg
