// How many balanced states to keep.
#pragma once

#include "linalg/types.h"

namespace compressm::linalg {

// Smallest r with sum_{i<=r} s_i / sum_i s_i >= energy_kept, for HSVs sorted in
// descending order. Plain sum of HSVs, not squares, as the reference code.
// energy_kept in (0, 1] (configs store tol = 1 - tau). Returns N for an
// all-zero spectrum. Throws std::invalid_argument on a bad tolerance.
Eigen::Index rank_for_energy(const VectorXd& hsv_descending, double energy_kept);

// Rank after shrinking by `fraction` of the current dimension (mode `fixed`):
// r = max(1, floor(N * (1 - fraction))), as the reference.
Eigen::Index rank_for_fraction(Eigen::Index state_dim, double fraction);

// The 5% gate: a block is reduced only if r < 0.95 * N.
bool passes_reduction_gate(Eigen::Index rank, Eigen::Index state_dim);

// How the kept order r is chosen.
struct RankRule {
  enum class Kind { EnergyKept, FixedRank };
  Kind kind = Kind::EnergyKept;
  double energy_kept = 0.99;  // fraction of plain HSV energy kept, in (0, 1]
  Eigen::Index rank = 0;      // for FixedRank, 1 <= rank <= N
  // With the 5% gate (the trainer's rule): a rank that fails
  // passes_reduction_gate leaves the system as it is, and no balancing
  // vectors are formed for it.
  bool gated = false;

  static RankRule energy(double kept) { return {Kind::EnergyKept, kept, 0, false}; }
  static RankRule fixed(Eigen::Index r) { return {Kind::FixedRank, 0.0, r, false}; }
  RankRule with_gate() const {
    RankRule r = *this;
    r.gated = true;
    return r;
  }
};

// r for the rule (validated: throws std::invalid_argument when out of range).
Eigen::Index select_rank(const RankRule& rule, const VectorXd& hsv_descending);

// Energy (plain HSV sum) kept by the first `rank` HSVs, and discarded.
double kept_energy(const VectorXd& hsv_descending, Eigen::Index rank);
double discarded_energy(const VectorXd& hsv_descending, Eigen::Index rank);

}  // namespace compressm::linalg
