// CUDA kernels of the LRU's diagonal recurrence and of the fused LRU layer,
// float32 / complex64, forward and backward (docs/design.md §1). Plain device
// pointers and a stream in, no tensors, no autograd (the wrappers are in
// src/nn/cuda_ops.h); no CUDA header needed to call them. The CPU kernels in
// src/kernels are the references they are tested against (tests/nn/
// test_cuda_parity.cpp, on a device). Every launcher throws std::runtime_error
// when the launch fails.
#pragma once

#include <cstdint>

#include "kernels/diagonal_scan.h"
#include "kernels/diagonal_scan_bf16.h"
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

// The diagonal scan with bfloat16 input and output and a float32 state, for
// the wide layers in the bf16 precision mode (kernels/diagonal_scan_bf16.h,
// the CPU reference, has the arrays' layouts): one thread per (b, n),
// sequential in time, groups of steps (64 forward, 32 backward) loaded
// while the previous group runs. The backward recomputes each chunk's
// float32 states from the checkpoints and u; grad_lambda_rows {B, N}
// complex, for the caller to sum.
void diagonal_scan_bf16_forward(const float* lambda, const uint16_t* u, uint16_t* x, float* checkpoints,
                                ScanShape shape, Stream stream);
void diagonal_scan_bf16_backward(const float* lambda, const uint16_t* u, const float* checkpoints,
                                 const uint16_t* grad_x, uint16_t* grad_u, float* grad_lambda_rows, ScanShape shape,
                                 Stream stream);

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

// Time segments: with S > 1 a thread block runs S groups ("teams") of
// kFusedStatesPerBlock threads side by side, each over its own contiguous
// run of chunks. Each group first scans its run from a zero state (forward)
// or a zero adjoint (backward); the true state entering each run follows
// from those by x_in(s) = lambda^len(s-1) x_in(s-1) + x_end(s-1) (the
// adjoint likewise from the other end, with conj(lambda)); then every group
// runs the ordinary fused loop over its run. About 1.25x the work, but a
// sequence's latency chain is L / S steps long and S times as many warps
// hide each other's latencies: for small batches (sMNIST: B = 50, N = 256 is
// 400 warps for 528 schedulers of an H200) the fused kernels are latency-bound.
constexpr int64_t kFusedMaxSegments = 4;  // S in {1, 2, 4}
// The S the forward / backward launcher uses for `shape`: the largest in
// {4, 2, 1} that leaves at least 2 chunks per segment and whose grid (B x
// state blocks) still runs in one wave on this device (the occupancy of that
// kernel times the multiprocessors); or what set_fused_time_segments forced.
// The checkpoints do not depend on S: the two passes may differ.
int64_t fused_forward_segments(LruShape shape);
int64_t fused_backward_segments(LruShape shape);
// 0: automatic (the default); 1, 2 or 4: forced for both passes (benchmarks
// and tests compare). Process-wide; throws std::invalid_argument otherwise.
// The environment variable COMPRESSM_LRU_SEGMENTS sets the initial value
// (a launch throws std::invalid_argument naming it when it is not one of those).
void set_fused_time_segments(int64_t segments);
// Rows of LruGradientParts' per-row arrays: B x fused_backward_segments(shape).
int64_t fused_gradient_rows(LruShape shape);

// u {B, L, H} -> y_parts {state blocks, B, L, H}: each block of states'
// share of Re(C x_k) (the caller adds the parts and D .* u). `checkpoints`
// (fused_checkpoint_size floats) may be null when no backward pass follows.
// The {B, L, N} state is never written.
void lru_layer_forward(const LruWeights<float>& w, const float* u, float* y_parts, float* checkpoints,
                       LruShape shape, Stream stream);

// Per-row gradient parts of the fused layer (the caller sums them); R =
// fused_gradient_rows(shape) rows, one per batch row and time segment:
struct LruGradientParts {
  float* lambda_re;  // {R, N}
  float* lambda_im;  // {R, N}
  float* B_re;       // {R, N, H}
  float* B_im;       // {R, N, H}
  float* C_re;       // {R, H, N}
  float* C_im;       // {R, H, N}
  float* u;          // {state blocks, B, L, H}: sum over the blocks is dL/du minus D .* dL/dy
  // R: the caller's fused_gradient_rows(shape), which fixes the backward's
  // time segments (R / B) for this call (a later change of the setting
  // cannot make the kernel write rows the caller did not allocate).
  int64_t rows = 0;
};

// Recomputes each chunk's states from its checkpoint and runs the adjoint
// scan backwards through it. dL/dD is left to the caller (sum of dL/dy .* u).
// Throws std::invalid_argument when parts.rows is not B x 1, 2 or 4.
void lru_layer_backward(const LruWeights<float>& w, const float* u, const float* checkpoints, const float* grad_y,
                        const LruGradientParts& parts, LruShape shape, Stream stream);

}  // namespace compressm::kernels::cuda
