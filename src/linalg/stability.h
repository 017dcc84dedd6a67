// The precondition every Gramian computation shares. Internal to src/linalg.
#pragma once

#include <stdexcept>
#include <string>

#include "linalg/types.h"

namespace compressm::linalg {

// Throws std::invalid_argument unless every |eigenvalue| < 1 (for a Schur form,
// pass its diagonal): the Stein equation has no bounded solution otherwise.
inline void require_stable(const VectorXc& eigenvalues, const char* what) {
  for (Eigen::Index i = 0; i < eigenvalues.size(); ++i)
    if (!(std::abs(eigenvalues[i]) < 1.0))
      throw std::invalid_argument(std::string(what) + ": eigenvalue " + std::to_string(i) +
                                  " has modulus " + std::to_string(std::abs(eigenvalues[i])) +
                                  " >= 1, the Gramian does not exist");
}

}  // namespace compressm::linalg
