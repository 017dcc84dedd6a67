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

// Finite entries can still overflow once squared (|B| or |C| near 1e154 and
// up): LAPACK must not see the infinities (it prints to stdout and fails),
// so the caller gets an error that says what overflowed.
inline void require_finite(const MatrixXc& m, const char* what) {
  if (!m.allFinite())
    throw std::invalid_argument(std::string("the ") + what +
                                " has non-finite entries: the system's values are too large (overflow)");
}

}  // namespace compressm::linalg
