// Autograd for the LRU's diagonal recurrence: a thin torch::autograd::Function
// over the CPU kernel in src/kernels, plus the plain-loop reference it is
// tested against.
#pragma once

#include <torch/types.h>

namespace compressm::nn {

// x_k = lambda .* x_{k-1} + u_k, x_{-1} = 0.
// lambda {N} complex, u {B, L, N} complex (same dtype: complex64 or complex128).
// Returns x {B, L, N}. Differentiable in lambda and u.
torch::Tensor diagonal_scan(const torch::Tensor& lambda, const torch::Tensor& u);

// The same recurrence as a loop over time in LibTorch ops (autograd through
// every step). Slow; the oracle for values and gradients.
torch::Tensor diagonal_scan_reference(const torch::Tensor& lambda, const torch::Tensor& u);

}  // namespace compressm::nn
