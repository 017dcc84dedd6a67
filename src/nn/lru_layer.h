// The LRU layer (docs/design.md §1), parameters named as the reference so that a
// reduction can replace them:
//   lambda = exp(-exp(nu_log) + i exp(theta_log))
//   x_k = lambda .* x_{k-1} + diag(exp(gamma_log)) (B_re + i B_im) u_k
//   y_k = Re((C_re + i C_im) x_k) + D .* u_k
#pragma once

#include <torch/nn/module.h>
#include <torch/types.h>

#include "linalg/lru_parameters.h"
#include "linalg/types.h"
#include "nn/lru_layer_function.h"
#include "nn/precision.h"

namespace compressm::nn {

struct LruInit {
  double r_min = 0.9, r_max = 0.999, max_phase = 6.28;
};

class LruLayerImpl : public torch::nn::Module {
 public:
  LruLayerImpl(int64_t state_dim, int64_t hidden_dim, LruInit init = {});

  // u {B, L, H} -> y {B, L, H} (the parameters' dtype), by the fused kernel;
  // in the bf16 precision mode a float32 layer wider than 16 channels runs
  // lru_layer_bf16 instead (bf16_projections).
  torch::Tensor forward(const torch::Tensor& u, Precision precision = Precision::kFp32);
  // Whether forward(u, precision) computes the B and C projections in
  // bfloat16: bf16 mode and H > kernels::cuda::kFusedMaxHidden, on every
  // device. There the projections are GEMMs (on CUDA, cuBLAS around the
  // scan); narrower layers keep them in float32 (on CUDA in the fused
  // kernel's registers, where bfloat16 would save nothing).
  static bool bf16_projections(Precision precision, int64_t hidden);
  // The same through LibTorch GEMMs and the diagonal-scan op: the reference.
  torch::Tensor forward_unfused(const torch::Tensor& u);
  // lambda = exp(-exp(nu_log)) (cos + i sin)(exp(theta_log)),
  // Bt = exp(gamma_log) (B_re + i B_im): the parameterisation, through autograd.
  LruLayerInputs inputs(const torch::Tensor& u) const;

  int64_t state_dim() const { return nu_log.size(0); }
  int64_t hidden_dim() const { return D.size(0); }

  // The layer as a complex diagonal system in double precision (for HSVs).
  linalg::DiagonalSystem to_system() const;
  // Replaces every state parameter (nu_log .. C_im) by `p` (new state
  // dimension allowed); those tensors are new, so optimiser state must be
  // re-attached by the caller. D's values are copied into the same tensor.
  void load_parameters(const linalg::LruParameters& p);
  // Keeps only the diagonal modes `modes` (int64 indices, in this order).
  void keep_modes(const torch::Tensor& modes);

  torch::Tensor nu_log, theta_log, gamma_log;  // {N}
  torch::Tensor B_re, B_im;                    // {N, H}
  torch::Tensor C_re, C_im;                    // {H, N}
  torch::Tensor D;                             // {H}
};
TORCH_MODULE(LruLayer);

}  // namespace compressm::nn
