// Fused, differentiable ops of the training step (kernels/fused_ops.h: CPU
// loops, and CUDA kernels for float32). Each reads its inputs and writes its
// outputs once, forward and backward, where LibTorch's composition makes a
// pass (and, on a GPU, a kernel launch) per op. docs/gpu.md, "Fused ops".
//
// The block's element-wise work:
//   gelu_dropout(y, keep, p, out)   dropout(GELU(y)), returned as `out` dtype
//                                   (bfloat16 in the bf16 precision mode: the
//                                   GLU GEMM reads it without a cast pass)
//   glu_residual(vg, x, keep, p)    x + dropout(v .* sigmoid(g)), vg = [v | g]
//                                   the {.., 2H} output of one GEMM (float32,
//                                   float64 or bfloat16), x float32 / float64
// `keep` is a uint8 mask of y's (x's) shape from dropout_keep_mask, or
// undefined for no dropout. Then the LRU's parameterisation and the loss.
#pragma once

#include <torch/types.h>

#include <array>
#include <utility>

namespace compressm::nn {

// Whether the fused ops compute in t's dtype on t's device: float32
// anywhere, float64 on the CPU. Callers fall back to LibTorch's ops otherwise.
bool fused_ops_support(const torch::Tensor& t);

// Bernoulli(1 - p) keep mask (uint8, 1 = kept) of `sizes` on `device`,
// undefined when p == 0. Drawn by Philox (kernels/philox.h): on the CPU
// under one 64-bit seed taken from the default CPU generator (~20x faster
// than bernoulli_ there, and a checkpoint's generator state still fixes
// every later mask); on CUDA by kernels::cuda::draw_keep_mask under the
// CUDA generator's state, a new mask on each replay of a CUDA graph (where
// LibTorch's bernoulli_ took 59 us for a sCIFAR block's mask on an H200);
// elsewhere by bernoulli_.
torch::Tensor dropout_keep_mask(c10::IntArrayRef sizes, double p, const torch::Device& device);

torch::Tensor gelu_dropout(const torch::Tensor& y, const torch::Tensor& keep, double p, torch::ScalarType out_dtype);

// bias {2H} in x's dtype (differentiable), added to [v | g] inside the op
// (a pass over the {.., 2H} GEMM output fewer than the GEMM adding it), or
// undefined for none.
torch::Tensor glu_residual(const torch::Tensor& vg, const torch::Tensor& x, const torch::Tensor& keep, double p,
                           const torch::Tensor& bias = {});
// The same with its mask drawn at rate p: on the CPU by dropout_keep_mask;
// on CUDA inside the kernels (the bits draw_keep_mask would write under the
// CUDA generator's state at this point, new on each replay of a CUDA graph;
// no mask tensor, no mask kernel).
torch::Tensor glu_residual_dropout(const torch::Tensor& vg, const torch::Tensor& x, double p,
                                   const torch::Tensor& bias = {});

// The mix stage of a narrow block (kernels/narrow_mix.h on the CPU,
// kernels/cuda/narrow_mix_cuda.h on CUDA) as one op:
//   out = x + dropout(GLU(dropout(GELU(y)))),  GLU(g) = (g W_v^T + b_v) .* sigmoid(g W_g^T + b_g)
// weight {2H, H} = [W_v; W_g] and bias {2H} = [b_v; b_g] (differentiable);
// keep_gelu, keep_glu as above (the GELU's mask, then the GLU's). y and x
// {.., H}, H <= 16, everything on one device in one dtype: float32 or
// float64 on the CPU, float32 on CUDA.
bool narrow_mix_support(const torch::Tensor& y);
torch::Tensor narrow_mix(const torch::Tensor& y, const torch::Tensor& x, const torch::Tensor& weight,
                         const torch::Tensor& bias, const torch::Tensor& keep_gelu, const torch::Tensor& keep_glu,
                         double p);
// The same with its masks drawn at rate p: on the CPU by dropout_keep_mask
// (the GELU's, then the GLU's); on CUDA inside the kernels (Philox under the
// CUDA generator's state, new masks on each replay of a CUDA graph; no mask
// tensor, no draw kernel).
torch::Tensor narrow_mix_dropout(const torch::Tensor& y, const torch::Tensor& x, const torch::Tensor& weight,
                                 const torch::Tensor& bias, double p);

// The LRU's parameterisation as one differentiable op (one kernel each way
// on CUDA): {lambda_re, lambda_im, Bt_re, Bt_im} with
//   lambda = exp(-exp(nu_log)) (cos + i sin)(exp(theta_log)),  Bt = exp(gamma_log) .* B
// nu_log, theta_log, gamma_log {N}; B_re, B_im {N, H}; float32 (or float64
// on the CPU), all on one device.
std::array<torch::Tensor, 4> lru_parameterize(const torch::Tensor& nu_log, const torch::Tensor& theta_log,
                                              const torch::Tensor& gamma_log, const torch::Tensor& B_re,
                                              const torch::Tensor& B_im);

// Mean cross-entropy of logits {B, C} (float32, or float64 on the CPU) with
// int64 labels {B}, as one op (one kernel each way on CUDA, where LibTorch's
// loss and the metrics take ~11): returns {loss, stats}, loss a
// differentiable 0-dim tensor, stats {2} float64 on the logits' device =
// {loss, correct count} (first maximal logit at the label), for the step to
// read back in one transfer. Labels outside [0, C) are an error on the CPU
// and give a NaN loss on CUDA.
std::pair<torch::Tensor, torch::Tensor> classification_loss(const torch::Tensor& logits, const torch::Tensor& labels);

// x W^T + b (torch::nn::functional::linear), differentiable. With a bias,
// float32 on CUDA: for K <= 16 inputs (the encoder of 1-3 channels,
// sMNIST's head) one kernel forward, and the weight and bias gradients by
// one column-parts kernel and a sum_rows (kernels::cuda::narrow_linear_*;
// LibTorch ran a GEMM of inner size K and a bias add forward, a split-K GEMM,
// its reduction and a bias sum backward: ~50 us of sMNIST's 0.54 ms step,
// H200, run 6); wider, LibTorch's GEMMs with the bias gradient by
// kernels::cuda::column_sums (LibTorch's sums over {39200, 8} ran a few
// thread blocks, 9-12 us each). On the CPU, K <= 16 runs LibTorch's GEMMs
// under the CUDA path's scopes (for bench_op_count); elsewhere LibTorch's
// linear.
torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias);

// The mean over time of h {B, L, H} (the model's pooling), differentiable.
// Float32 on CUDA: forward with H < 32 one kernel (kernels::cuda::
// mean_over_time: 13.8 us at sMNIST's {50, 784, 8}, where LibTorch's
// reduction ran 4 thread blocks for 38 us of a 0.55 ms step; H200, ncu),
// wider LibTorch's mean; backward one kernel of stores (dL/dmean / L).
// Elsewhere h.mean(1).
torch::Tensor mean_over_time(const torch::Tensor& h);

}  // namespace compressm::nn
