// Guards on the eigenvalues of a reduced layer. Internal to src/linalg.
#pragma once

#include "linalg/lru_parameters.h"

namespace compressm::linalg {

// arg(z) mapped to [0, 2 pi).
double phase_in_zero_two_pi(Complex z);

// Clamps |mu| into [min_radius, max_radius] and raises arg(mu) to min_phase,
// reporting each change. See LruGuardLimits for why each guard exists.
void apply_eigenvalue_guards(VectorXc& mu, const LruGuardLimits& limits,
                             std::vector<GuardEvent>* guards);

}  // namespace compressm::linalg
