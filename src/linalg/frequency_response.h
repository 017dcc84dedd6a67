// Markov parameters and the H-infinity norm of the reduction error.
#pragma once

#include "linalg/types.h"

namespace compressm::linalg {

// Real Markov parameters Re(C A^k B), k = 0..count-1 (the LRU output is Re(C x)).
// Returns count matrices of shape {P, H}.
std::vector<MatrixXd> real_markov_parameters(const DiagonalSystem& system, int count);
std::vector<MatrixXd> real_markov_parameters(const DenseSystem& system, int count);

// Frequencies on [0, 2 pi) at which the error is evaluated: a uniform grid of
// `uniform_points` plus every eigenvalue angle of both systems (peaks of a
// lightly damped system sit there), each with two close neighbours.
std::vector<double> hinf_frequency_grid(const VectorXc& full_eigenvalues,
                                        const VectorXc& reduced_eigenvalues,
                                        int uniform_points);

// max over the grid of sigma_max(G(e^{iw}) - G_r(e^{iw})) for the complex
// transfer functions G(z) = C (zI - A)^{-1} B (D cancels).
double hinf_error(const DiagonalSystem& full, const DiagonalSystem& reduced,
                  int uniform_points = 2048);
double hinf_error(const DenseSystem& full, const DenseSystem& reduced,
                  int uniform_points = 2048);

}  // namespace compressm::linalg
