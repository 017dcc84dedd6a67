// Square-root balanced truncation and its conversion back to an LRU layer.
#pragma once

#include "linalg/dense_kernels.h"
#include "linalg/rank_selection.h"
#include "linalg/types.h"

namespace compressm::linalg {

// Which balanced states survive: the r with the largest HSVs (the method) or
// the r with the smallest nonzero ones (an ablation). The H-inf bound
// 2 * (sum of discarded HSVs) holds for either split (Enns; Pernebo and
// Silverman) as long as no HSV value is shared by kept and discarded states.
enum class KeptStates { kLargest, kSmallest };

struct BalancedTruncation {
  DenseSystem reduced;      // A_r {r, r}, B_r {r, H}, C_r {H, r}
  VectorXd hsv;             // all HSVs of the full system, descending
  Eigen::Index rank = 0;           // order kept (may be below the rule's)
  Eigen::Index requested_rank = 0; // order the rule asked for
  bool truncated = true;           // false: the gate kept the system (no vectors, `reduced` empty)
  Eigen::Index first_kept = 0;     // kept states are hsv[first_kept, first_kept + rank)
  double hinf_bound = 0.0;  // 2 * sum of discarded HSVs
  struct Timing {
    double gramians_ms = 0.0;
    double factor_ms = 0.0;
    double product_ms = 0.0;
    double svd_ms = 0.0;
    double projection_ms = 0.0;  // T_r, W_r and A_r, B_r, C_r
  } timing;
};

// Square-root balanced truncation to order `rank` (1 <= rank <= N):
//   Lo^H Lc = U S V^H,  T_r = Lc V_r S_r^{-1/2},  W_r = Lo U_r S_r^{-1/2},
//   A_r = W_r^H A T_r,  B_r = W_r^H B,  C_r = C T_r.
// If the requested rank exceeds the number of nonzero HSVs it is lowered to
// that number (states with zero HSV carry no input-output energy).
// With a RankRule the order is chosen from the HSVs computed on the way, so an
// energy tolerance costs no second factorisation.
// `kept` = kSmallest needs every singular vector (a full SVD).
BalancedTruncation balanced_truncation(const DiagonalSystem& system, const RankRule& rule,
                                       Backend backend = default_backend(),
                                       KeptStates kept = KeptStates::kLargest);
BalancedTruncation balanced_truncation(const DenseSystem& system, const RankRule& rule,
                                       Backend backend = default_backend(),
                                       KeptStates kept = KeptStates::kLargest);
inline BalancedTruncation balanced_truncation(const DiagonalSystem& system, Eigen::Index rank,
                                              Backend backend = default_backend()) {
  return balanced_truncation(system, RankRule::fixed(rank), backend);
}
inline BalancedTruncation balanced_truncation(const DenseSystem& system, Eigen::Index rank,
                                              Backend backend = default_backend()) {
  return balanced_truncation(system, RankRule::fixed(rank), backend);
}

// The reduced system brought back to diagonal (LRU) form, with a record of
// every guard that fired. See lru_parameters.h for the guards.
struct DiagonalReduction {
  DiagonalSystem system;
  std::vector<GuardEvent> guards;
};

// A_r = V diag(mu) V^{-1};  B' = V^{-1} B_r,  C' = C_r V.  D is copied.
DiagonalReduction rediagonalise(const DenseSystem& reduced, const VectorXd& d,
                                Backend backend = default_backend());

}  // namespace compressm::linalg
