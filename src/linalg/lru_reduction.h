// One whole reduction of one LRU layer: HSVs -> rank -> balanced truncation ->
// re-diagonalisation. This is what `compressm reduce` and the trainer call.
#pragma once

#include <optional>

#include "linalg/balanced_truncation.h"
#include "linalg/dense_kernels.h"
#include "linalg/rank_selection.h"
#include "linalg/types.h"

namespace compressm::linalg {

struct LruReduction {
  VectorXd hsv;                    // {N}, descending
  Eigen::Index old_dim = 0;
  Eigen::Index requested_rank = 0; // what the rule asked for
  Eigen::Index rank = 0;           // new state dimension (lower if HSVs were zero)
  double kept_energy = 0.0;        // sum of kept HSVs
  double discarded_energy = 0.0;   // sum of discarded HSVs
  double hinf_bound = 0.0;         // 2 * discarded_energy
  DiagonalSystem reduced;          // re-diagonalised, D copied
  std::vector<GuardEvent> guards;  // every numerical guard that fired
  BalancedTruncation::Timing balance_timing;  // Gramians, factors, SVD, projection
  double diagonalise_ms = 0.0;  // eigen-decomposition of A_r and change of basis
};

// Validates the system (finite, |lambda| < 1, consistent shapes; throws
// std::invalid_argument naming the problem), selects the rank by `rule`, and
// reduces. A rank equal to N returns the system unchanged.
// `kept` = kSmallest keeps the weakest balanced states (an ablation).
LruReduction reduce_diagonal_system(const DiagonalSystem& system, const RankRule& rule,
                                    Backend backend = default_backend(),
                                    KeptStates kept = KeptStates::kLargest);

// Throws std::invalid_argument with a message naming the first problem found.
void validate_diagonal_system(const DiagonalSystem& system);

// How much rounding the HSVs of `system` can carry: sum_ij |P_ij| |Q_ij| /
// sigma_1^2 (>= 1; P and Q bounded entrywise from B's rows and C's columns).
// Forming P and Q costs eps |P_ij| absolute per entry, so sigma_1^2 is good to
// about eps times this, relative. It stays near 1 for poles near the unit
// circle (P, Q and sigma_1 grow together) and becomes huge when states cancel
// each other (clustered poles with large B and C whose sum is small): then
// the HSVs are rounding noise.
double hsv_condition(const DiagonalSystem& system, double sigma1);
// eps * hsv_condition above this makes the guard "ill_conditioned".
inline constexpr double kIllConditionedHsvError = 1e-6;  // sigma_1 wrong from the 7th digit on
// That guard for `system` with HSVs `hsv` (descending), or none. reduce_diagonal_system
// reports it; `compressm hsv` warns with its detail.
std::optional<GuardEvent> ill_conditioned_guard(const DiagonalSystem& system, const VectorXd& hsv);

// Whether an H-inf error measured on the frequency grid is above `factor`
// times the bound 2 * (discarded HSVs), beyond rounding, which scales with the
// system (||G||_inf <= 2 * the sum of all HSVs, `hsv_energy`). The bound holds
// in exact arithmetic. A NaN error counts as above (it is not known to be within).
bool hinf_error_exceeds(double error, double bound, double hsv_energy, double factor);

}  // namespace compressm::linalg
