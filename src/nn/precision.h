// Compute precision of the dense layers (encoder, GLU, head, and the LRU's B
// and C projections of layers wider than 16 channels): training.precision.
// Parameters, BatchNorm, the LRU recurrence and its state stay float32 always.
//   fp32  float32 everywhere.
//   tf32  float32 tensors; on CUDA, cuBLAS may round GEMM inputs to TF32
//         (LibTorch's process-wide allow_tf32 flag, set by enable_tf32). On the
//         CPU there is no TF32: the same as fp32.
//   bf16  the dense layers' input, weight and bias are rounded to bfloat16 and
//         the product computed in bfloat16 with float32 accumulation (what
//         autocast does for linear), its output returned as float32; the
//         backward pass of those layers runs in bfloat16 the same way, and the
//         gradients reach the float32 parameters through the casts. An LRU
//         layer wider than 16 channels takes its projections the same way
//         (nn/lru_layer_function.h, lru_layer_bf16: the recurrence runs in
//         float32 on the bfloat16 B u and hands its states to the C GEMM
//         rounded); narrower layers keep float32 projections (on CUDA they
//         are the fused kernel's register arithmetic, not GEMMs). Also sets
//         tf32 for the float32 GEMMs that remain.
#pragma once

#include <torch/nn/modules/linear.h>
#include <torch/types.h>

#include <string_view>

namespace compressm::nn {

enum class Precision { kFp32, kTf32, kBf16 };

// "fp32" | "tf32" | "bf16".
std::string_view to_string(Precision precision);

// layer(x) computed in `precision`; float32 in, float32 out. fp32 and tf32
// take nn::linear (fused_ops.h: one kernel each way for at most 16 inputs).
torch::Tensor dense(const torch::nn::Linear& layer, const torch::Tensor& x, Precision precision);

// The same by LibTorch's linear alone, in every precision: the GLU layers
// of blocks that run LibTorch's composition (BlockOps::kComposed, and
// kAuto on the CPU where the narrow mix stage does not apply).
torch::Tensor dense_libtorch(const torch::nn::Linear& layer, const torch::Tensor& x, Precision precision);

// [W_a x | W_b x] along the last dimension by one GEMM on the concatenated
// weights (x is read once): the GLU's value and gate for glu_residual
// (fused_ops.h), which adds the biases. In `precision`; bf16 returns
// bfloat16 (x may already be bfloat16), fp32 and tf32 return x's dtype.
torch::Tensor dense_pair(const torch::nn::Linear& a, const torch::nn::Linear& b, const torch::Tensor& x,
                         Precision precision);

// Sets LibTorch's process-wide flags that let cuBLAS and cuDNN use TF32 for
// float32 GEMMs and convolutions (torch.backends.cuda.matmul.allow_tf32);
// no effect on CPU computations.
void enable_tf32(bool enabled);

// Makes cuBLAS sum the split-K partial results of bfloat16 GEMMs in float32
// (LibTorch >= 2.0 lets it use bfloat16 there by default:
// torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction), so
// that the bf16 mode's GEMMs accumulate in float32 as stated above; the
// weight gradients of the wide layers sum over B x L = 51,200 rows at
// sCIFAR's sizes. Process-wide; LibTorch 1.13 has no such setting (its
// cuBLAS calls accumulate bfloat16 in float32) and nothing changes there.
void require_float32_bf16_reductions();

}  // namespace compressm::nn
