// The LRU layer as one differentiable op: a thin torch::autograd::Function over
// the fused CPU kernel in src/kernels/lru_layer_kernel.h, and the unfused
// LibTorch composition (GEMM, diagonal scan, GEMM) it is tested against.
#pragma once

#include <torch/types.h>

namespace compressm::nn {

// The layer's inputs with the parameterisation already applied (real tensors,
// all float32 or all float64):
//   lambda = lambda_re + i lambda_im {N};  Bt = B_re + i B_im {N, H}
//   C = C_re + i C_im {H, N};  D {H};  u {B, L, H}
struct LruLayerInputs {
  torch::Tensor lambda_re, lambda_im, B_re, B_im, C_re, C_im, D, u;
};

// y_k = Re(C x_k) + D .* u_k with x_k = lambda .* x_{k-1} + Bt u_k, x_{-1} = 0.
// Returns y {B, L, H}; differentiable in every input. The {B, L, N} state is
// never materialised (the backward pass recomputes it chunk by chunk).
torch::Tensor lru_layer(const LruLayerInputs& in);

// The same map from LibTorch ops: input projection as a real GEMM, the
// diagonal-scan op on the materialised complex state, output projection as a
// real GEMM. The reference for lru_layer's values and gradients.
torch::Tensor lru_layer_unfused(const LruLayerInputs& in);

}  // namespace compressm::nn
