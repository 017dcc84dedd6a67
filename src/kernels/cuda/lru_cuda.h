// CUDA kernels of the LRU's diagonal recurrence and of the fused LRU layer,
// float32 / complex64, forward and backward (DESIGN.md §1). Plain device
// pointers and a stream in, no tensors, no autograd (the wrappers are in
// src/nn/cuda_ops.h); no CUDA header needed to call them. The CPU kernels in
// src/kernels are the references they are tested against (tests/nn/
// test_cuda_parity.cpp, on a device). Every launcher throws std::runtime_error
// when the launch fails.
#pragma once

#include <cstdint>

#include "kernels/diagonal_scan.h"
#include "kernels/lru_layer_kernel.h"

struct CUstream_st;  // cudaStream_t is CUstream_st*

namespace compressm::kernels::cuda {

using Stream = CUstream_st*;

// Diagonal scan x_k = lambda .* x_{k-1} + u_k (x_{-1} = 0) on interleaved
// complex64 (re, im): lambda {N}, u and x {B, L, N}. One thread per (b, n),
// sequential in time: reads and writes are coalesced across n.
void diagonal_scan_forward(const float* lambda, const float* u, float* x, ScanShape shape, Stream stream);

// Its adjoint (diagonal_scan.h): g_k = grad_x_k + conj(lambda) g_{k+1},
// grad_u = g (may alias grad_x); grad_lambda_rows {B, N} complex gets each
// batch row's sum_k g_k conj(x_{k-1}), for the caller to sum over rows.
void diagonal_scan_backward(const float* lambda, const float* x, const float* grad_x, float* grad_u,
                            float* grad_lambda_rows, ScanShape shape, Stream stream);

// The fused layer keeps Bt's row and C's column of one state in registers:
// it serves H <= kFusedMaxHidden (wider layers use cuBLAS projections around
// the diagonal scan, src/nn/cuda_ops.cpp).
constexpr int64_t kFusedMaxHidden = 16;
// States per thread block (one per thread); N is cut into blocks of this size.
// Small blocks spread a small batch over more multiprocessors (sMNIST: B = 50,
// N = 256 gives 200 blocks for the H200's 132 SMs instead of 50).
constexpr int64_t kFusedStatesPerBlock = 64;
// Time steps per chunk: the forward pass keeps the state before each chunk.
constexpr int64_t kFusedChunk = 16;

int64_t fused_state_blocks(LruShape shape);  // ceil(N / kFusedStatesPerBlock)
int64_t fused_checkpoint_size(LruShape shape);  // floats: {B, chunks, N, 2}

// u {B, L, H} -> y_parts {state blocks, B, L, H}: each block of states'
// share of Re(C x_k) (the caller adds the parts and D .* u). `checkpoints`
// (fused_checkpoint_size floats) may be null when no backward pass follows.
// The {B, L, N} state is never written.
void lru_layer_forward(const LruWeights<float>& w, const float* u, float* y_parts, float* checkpoints,
                       LruShape shape, Stream stream);

// Per-row gradient parts of the fused layer (the caller sums them):
struct LruGradientParts {
  float* lambda_re;  // {B, N}
  float* lambda_im;  // {B, N}
  float* B_re;       // {B, N, H}
  float* B_im;       // {B, N, H}
  float* C_re;       // {B, H, N}
  float* C_im;       // {B, H, N}
  float* u;          // {state blocks, B, L, H}: sum over the blocks is dL/du minus D .* dL/dy
};

// Recomputes each chunk's states from its checkpoint and runs the adjoint
// scan backwards through it. dL/dD is left to the caller (sum of dL/dy .* u).
void lru_layer_backward(const LruWeights<float>& w, const float* u, const float* checkpoints, const float* grad_y,
                        const LruGradientParts& parts, LruShape shape, Stream stream);

}  // namespace compressm::kernels::cuda
