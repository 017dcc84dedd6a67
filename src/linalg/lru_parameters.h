// Conversion between a diagonal system and the LRU's trainable parameters.
#pragma once

#include "linalg/types.h"

namespace compressm::linalg {

// The LRU parameterisation (docs/design.md §1):
//   lambda = exp(-exp(nu_log) + i exp(theta_log)),  gamma = exp(gamma_log),
//   B = diag(gamma) (B_re + i B_im),  C = C_re + i C_im.
struct LruParameters {
  VectorXd nu_log, theta_log, gamma_log;  // {N}
  MatrixXd B_re, B_im;                    // {N, H}
  MatrixXd C_re, C_im;                    // {H, N}
  VectorXd D;                             // {H}
};

// Limits applied by the guards below; see docs/reduction.md.
struct LruGuardLimits {
  // |mu| is clamped to at most this radius (|mu| >= 1 would make the layer
  // unstable and nu_log = log(-log|mu|) undefined).
  double max_radius = 1.0 - 1e-7;
  // |mu| is raised to at least this radius (log|mu| = -inf at mu = 0).
  double min_radius = 1e-12;
  // arg(mu) is raised to at least this phase (theta_log = log(0) = -inf for a
  // real positive eigenvalue). Phases are taken mod 2 pi into [min_phase, 2 pi).
  double min_phase = 1e-12;
};

// Maps a diagonal system to LRU parameters:
//   nu_log = log(-log|mu|), theta_log = log(arg(mu) mod 2 pi),
//   gamma = sqrt(1 - |mu|^2), B_re + i B_im = B / gamma.
// Guards (each reported in `guards`, never a silent NaN/Inf): unit_circle,
// zero_radius, zero_phase. The output's lambda (after guards) is what the LRU
// will compute; call lru_to_system to see it. Throws std::invalid_argument on
// non-finite input.
LruParameters system_to_lru(const DiagonalSystem& system, std::vector<GuardEvent>* guards,
                            const LruGuardLimits& limits = {});

// The inverse map, exactly the LRU's forward computation of lambda and Bt.
DiagonalSystem lru_to_system(const LruParameters& parameters);

// True when every entry of every parameter is finite.
bool all_finite(const LruParameters& parameters);

}  // namespace compressm::linalg
