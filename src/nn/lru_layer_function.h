// The LRU layer as one differentiable op: a thin torch::autograd::Function over
// the fused CPU kernel in src/kernels/lru_layer_kernel.h, and the unfused
// LibTorch composition (GEMM, diagonal scan, GEMM) it is tested against; and
// the layer of the bf16 precision mode for wide layers.
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

// The same map with bfloat16 projections (the bf16 precision mode of wide
// layers, precision.h), float32 inputs, CPU or CUDA:
//   Bu = bf16(u) bf16(Bt)^T            bfloat16 GEMM (float32 accumulation), bf16 out
//   s_k = lambda s_{k-1} + Bu_k        float32 complex state (diagonal_scan_bf16.h)
//   y = float(bf16(s) bf16(C)^T) + D .* u
// Differentiable in every input: the backward pass runs the same GEMMs in
// bfloat16, recomputes the float32 states from the state kept every 16 steps,
// and adds both paths into dL/du in one pass. The state is never rounded
// inside the recurrence; it enters the C GEMM rounded, as every GEMM operand
// in that mode. Kept for the backward pass: u, bf16(u), Bu, bf16(s) and the
// float32 state every 16 steps (8.5 bytes per complex state element, about
// what the float32 composition's complex64 state takes).
torch::Tensor lru_layer_bf16(const LruLayerInputs& in);

// The bf16 layers' states are padded with zero states (lambda, B and C 0) to
// a multiple of this (4 by default: 16-byte rows of Bu, s and W_out in
// bfloat16, which cuBLAS's tensor-core GEMM kernels need; a compressed
// layer's N = 93 otherwise takes its unaligned ones). 1: no padding, the
// baseline `bench_train_step --state-align 1` times. Process-wide; 4 or 1,
// anything else is an error.
void set_bf16_state_alignment(int64_t alignment);
int64_t bf16_state_alignment();  // the alignment in force

// lru_layer_bf16 followed by the block's dropout(GELU(.)) (fused_ops.h,
// gelu_dropout with a bfloat16 output) as one op: the skip term and the
// activation in one pass each way, y never written; returns bfloat16 g.
// `keep`: gelu_dropout's mask (uint8 of u's shape, or undefined), p its rate.
torch::Tensor lru_layer_bf16_gelu_dropout(const LruLayerInputs& in, const torch::Tensor& keep, double p);

// The front of a wide bf16 block in training, as one op: the block's
// BatchNorm (batch statistics, no affine; `in.u` is the block input x, not
// yet normalised) followed by lru_layer_bf16_gelu_dropout. The normalised
// input is never written in float32 (the cast for the B GEMM reads x, the
// skip term normalises x on the fly), and the backward pass adds the
// residual's gradient of x (the gradient reaching `x`) to the norm's in its
// last pass. Returns g (bfloat16); x, the same values as the input, for the
// residual; the batch mean and biased variance {H} (not differentiable).
// `running`: BatchNorm1d's running statistics {H} (float32, on x's device),
// updated in place by the kernel that merges the moments as BatchNorm1d
// updates them (momentum; unbiased variance); undefined tensors: none.
// CPU or CUDA; float32.
struct LruBlockFront {
  torch::Tensor g, x, mean, var;
};
struct BatchNormRunning {
  torch::Tensor mean, var;
  double momentum = 0.1;
};
LruBlockFront lru_block_bf16_front(const LruLayerInputs& in, const torch::Tensor& keep, double p, double eps,
                                   const BatchNormRunning& running = {});
// The same with its mask drawn at rate p: on the CPU by dropout_keep_mask;
// on CUDA inside the kernels (the bits draw_keep_mask would write under the
// CUDA generator's state at this point; no mask tensor, no mask kernel).
LruBlockFront lru_block_bf16_front_dropout(const LruLayerInputs& in, double p, double eps,
                                           const BatchNormRunning& running = {});

// The same rounding points from LibTorch ops (casts, bfloat16 matmuls, the
// complex64 diagonal scan, addcmul): the reference lru_layer_bf16's values and
// gradients are tested against.
torch::Tensor lru_layer_bf16_composed(const LruLayerInputs& in);

}  // namespace compressm::nn
