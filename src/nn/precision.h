// Compute precision of the dense layers (encoder, GLU, head): training.precision.
// Parameters, BatchNorm, the LRU recurrence and its state stay float32 always.
//   fp32  float32 everywhere.
//   tf32  float32 tensors; on CUDA, cuBLAS may round GEMM inputs to TF32
//         (LibTorch's process-wide allow_tf32 flag, set by enable_tf32). On the
//         CPU there is no TF32: the same as fp32.
//   bf16  (includes tf32 for the remaining float32 GEMMs, i.e. the LRU's
//         B and C projections on CUDA)
//         the dense layers' input, weight and bias are rounded to bfloat16 and
//         the product computed in bfloat16 with float32 accumulation (what
//         autocast does for linear), its output returned as float32; the
//         backward pass of those layers runs in bfloat16 the same way, and the
//         gradients reach the float32 parameters through the casts.
#pragma once

#include <torch/nn/modules/linear.h>
#include <torch/types.h>

#include <string_view>

namespace compressm::nn {

enum class Precision { kFp32, kTf32, kBf16 };

// "fp32" | "tf32" | "bf16".
std::string_view to_string(Precision precision);

// layer(x) computed in `precision`; float32 in, float32 out.
torch::Tensor dense(const torch::nn::Linear& layer, const torch::Tensor& x, Precision precision);

// [a(x) | b(x)] along the last dimension by one GEMM on the concatenated
// weights (x is read once): the GLU's value and gate for glu_residual
// (fused_ops.h). In `precision`; bf16 returns bfloat16 (x may already be
// bfloat16), fp32 and tf32 return x's dtype.
torch::Tensor dense_pair(const torch::nn::Linear& a, const torch::nn::Linear& b, const torch::Tensor& x,
                         Precision precision);

// Sets LibTorch's process-wide flags that let cuBLAS and cuDNN use TF32 for
// float32 GEMMs and convolutions (torch.backends.cuda.matmul.allow_tf32);
// no effect on CPU computations.
void enable_tf32(bool enabled);

}  // namespace compressm::nn
