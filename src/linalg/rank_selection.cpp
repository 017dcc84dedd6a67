#include "linalg/rank_selection.h"

#include <cmath>
#include <stdexcept>

namespace compressm::linalg {

Eigen::Index rank_for_energy(const VectorXd& hsv, double energy_kept) {
  if (!(energy_kept > 0.0 && energy_kept <= 1.0))
    throw std::invalid_argument("energy tolerance must be in (0, 1], got " +
                                std::to_string(energy_kept));
  const Eigen::Index n = hsv.size();
  const double total = hsv.sum();
  if (!(total > 0.0)) return n;
  double cumulative = 0.0;
  for (Eigen::Index k = 0; k < n; ++k) {
    cumulative += hsv[k];
    if (cumulative / total >= energy_kept) return k + 1;
  }
  return n;  // rounding kept the ratio just below 1
}

Eigen::Index rank_for_fraction(Eigen::Index state_dim, double fraction) {
  if (!(fraction >= 0.0 && fraction < 1.0))
    throw std::invalid_argument("reduction fraction must be in [0, 1), got " +
                                std::to_string(fraction));
  // floor, as the reference's int(N * (1 - f))
  const auto r = static_cast<Eigen::Index>(std::floor(state_dim * (1.0 - fraction)));
  return std::max<Eigen::Index>(1, std::min(r, state_dim));
}

Eigen::Index select_rank(const RankRule& rule, const VectorXd& hsv) {
  if (rule.kind == RankRule::Kind::EnergyKept) return rank_for_energy(hsv, rule.energy_kept);
  if (rule.rank < 1 || rule.rank > hsv.size())
    throw std::invalid_argument("rank " + std::to_string(rule.rank) + " outside [1, " +
                                std::to_string(hsv.size()) + "]");
  return rule.rank;
}

bool passes_reduction_gate(Eigen::Index rank, Eigen::Index state_dim) {
  return static_cast<double>(rank) < 0.95 * static_cast<double>(state_dim);
}

double kept_energy(const VectorXd& hsv, Eigen::Index rank) { return hsv.head(rank).sum(); }

double discarded_energy(const VectorXd& hsv, Eigen::Index rank) {
  return hsv.tail(hsv.size() - rank).sum();
}

}  // namespace compressm::linalg
