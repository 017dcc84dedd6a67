// The diagonal scan of the LRU's wide layers in the bf16 precision mode
// (lru_layer_bf16 in src/nn/lru_layer_function.cpp): its input (the B projection's output) and its
// output (the C projection's input) are bfloat16, as every GEMM operand of
// that mode is, while the recurrence itself runs in float32:
//   s_k = lambda .* s_{k-1} + float(u_k)   (complex float32, s_{-1} = 0)
//   x_k = bf16(s_k)                        (round to nearest even)
// The state is never stored in bfloat16: the forward pass keeps the float32
// state entering each chunk of kBf16ScanChunk steps, and the backward pass
// recomputes the states from those and u (the same float32 arithmetic, so
// dL/dlambda sees exactly the forward's states).
//
// Complex numbers are interleaved (re, im). bfloat16 values are raw bits
// (uint16_t: c10::BFloat16, __nv_bfloat16). Shapes: lambda {N} float32 pairs;
// u, x, grad_x, grad_u {B, L, N} bfloat16 pairs; checkpoints {B, C, N}
// float32 pairs with C = bf16_scan_chunks(L); grad_lambda_rows {B, N} float32
// pairs. No two arrays may overlap (unlike the float scan, x may not alias
// u). The CUDA kernels (kernels/cuda/lru_cuda.h) compute the same.
#pragma once

#include <cstdint>

#include "kernels/diagonal_scan.h"

namespace compressm::kernels {

constexpr int64_t kBf16ScanChunk = 16;
inline int64_t bf16_scan_chunks(int64_t length) { return (length + kBf16ScanChunk - 1) / kBf16ScanChunk; }

void diagonal_scan_bf16_forward(const float* lambda, const uint16_t* u, uint16_t* x, float* checkpoints,
                                ScanShape shape);

// g_k = float(grad_x_k) + conj(lambda) .* g_{k+1} (g_L = 0) in float32,
// grad_u_k = bf16(g_k), grad_lambda_rows[b] = sum_k g_k .* conj(s_{k-1}).
void diagonal_scan_bf16_backward(const float* lambda, const uint16_t* u, const float* checkpoints,
                                 const uint16_t* grad_x, uint16_t* grad_u, float* grad_lambda_rows, ScanShape shape);

}  // namespace compressm::kernels
