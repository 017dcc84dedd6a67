// Diagonal scan forward with bfloat16 input and output and a float32 state
// (lru_cuda.h; the CPU reference is kernels/diagonal_scan_bf16.h).
#include <cuda_bf16.h>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/lru_cuda.h"

namespace compressm::kernels::cuda {
namespace {

// 64 threads per block: B x N threads (sCIFAR: 50 x 384) spread over more
// multiprocessors than with 256 (300 blocks instead of 75 for 132 SMs).
constexpr int kThreads = 64;
// The checkpoint interval (the backward kernel's chunk).
constexpr int kChunk = static_cast<int>(kBf16ScanChunk);
// Steps loaded per round trip to memory: four chunks. Its loads are
// independent of the recurrence, so a thread keeps one group in flight
// while it runs the previous one. With B x N threads only (19,200 at
// sCIFAR's sizes: ~4.5 warps per SM of an H200) the bytes in flight, not
// the bandwidth, set the pace: one chunk ahead (16 loads per thread) the
// kernel moved 1.24 TB/s (run 6, ncu), about what 1.2 MB in flight and
// the memory latency allow.
constexpr int kGroup = 4 * kChunk;

// Steps in group g (kGroup but for the last).
__device__ __forceinline__ int group_steps(long long length, long long g) {
  const long long left = length - g * kGroup;
  return left < kGroup ? static_cast<int>(left) : kGroup;
}

// A group's m inputs, step k at up[k * state]. A whole group (all but the
// last) is one run of loads with no branch between them.
__device__ __forceinline__ void load_group(const __nv_bfloat162* __restrict__ up, long long state, int m,
                                           __nv_bfloat162 (&out)[kGroup]) {
  if (m == kGroup) {
#pragma unroll
    for (int k = 0; k < kGroup; ++k) out[k] = up[k * state];
    return;
  }
#pragma unroll
  for (int k = 0; k < kGroup; ++k)
    if (k < m) out[k] = up[k * state];
}

// Runs m steps of a group from state s: writes each step's rounded state
// (xp[k * state]) and the state entering each chunk that starts in the
// group (cp[c * state], c its chunk within the group).
__device__ __forceinline__ void run_group(const __nv_bfloat162 (&in)[kGroup], int m, float2 l, float2& s,
                                          __nv_bfloat162* __restrict__ xp, float2* __restrict__ cp,
                                          long long state) {
  const auto step = [&](int k) {
    if (k % kChunk == 0) cp[(k / kChunk) * state] = s;
    s = detail::complex_add(detail::complex_mul(l, s), __bfloat1622float2(in[k]));
    xp[k * state] = __float22bfloat162_rn(s);
  };
  if (m == kGroup) {
#pragma unroll
    for (int k = 0; k < kGroup; ++k) step(k);
    return;
  }
#pragma unroll
  for (int k = 0; k < kGroup; ++k)
    if (k < m) step(k);
}

// One thread per (b, n); consecutive threads take consecutive n (coalesced).
// Two register buffers in turn: the next group's loads are issued before
// this group's arithmetic and stores (all indices are compile-time after
// unrolling, so both buffers stay in registers).
__global__ void __launch_bounds__(kThreads)
    scan_bf16_forward_kernel(const float2* __restrict__ lambda, const __nv_bfloat162* __restrict__ u,
                             __nv_bfloat162* __restrict__ x, float2* __restrict__ checkpoints, long long batch,
                             long long length, long long state) {
  const long long index = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= batch * state) return;
  const long long b = index / state, n = index % state;
  const long long chunks = (length + kChunk - 1) / kChunk;
  const long long groups = (length + kGroup - 1) / kGroup;
  const float2 l = lambda[n];
  const __nv_bfloat162* up = u + b * length * state + n;
  __nv_bfloat162* xp = x + b * length * state + n;
  float2* cp = checkpoints + b * chunks * state + n;
  const long long stride = kGroup * state;                 // from one group's steps to the next
  const long long cp_stride = (kGroup / kChunk) * state;  // and checkpoints
  __nv_bfloat162 even[kGroup], odd[kGroup];
  load_group(up, state, group_steps(length, 0), even);
  float2 s = make_float2(0.f, 0.f);
  for (long long g = 0; g < groups; g += 2) {
    const bool has_odd = g + 1 < groups;
    if (has_odd) load_group(up + (g + 1) * stride, state, group_steps(length, g + 1), odd);
    run_group(even, group_steps(length, g), l, s, xp + g * stride, cp + g * cp_stride, state);
    if (!has_odd) break;
    if (g + 2 < groups) load_group(up + (g + 2) * stride, state, group_steps(length, g + 2), even);
    run_group(odd, group_steps(length, g + 1), l, s, xp + (g + 1) * stride, cp + (g + 1) * cp_stride, state);
  }
}

}  // namespace

void diagonal_scan_bf16_forward(const float* lambda, const uint16_t* u, uint16_t* x, float* checkpoints,
                                ScanShape shape, Stream stream) {
  const long long rows = shape.batch * shape.state;
  if (rows == 0 || shape.length == 0) return;
  COMPRESSM_LAUNCH(scan_bf16_forward_kernel, detail::blocks_for(rows, kThreads), kThreads, stream)(
      reinterpret_cast<const float2*>(lambda), reinterpret_cast<const __nv_bfloat162*>(u),
      reinterpret_cast<__nv_bfloat162*>(x), reinterpret_cast<float2*>(checkpoints), shape.batch, shape.length,
      shape.state);
  detail::check_launch("diagonal_scan_bf16_forward (CUDA)");
}

}  // namespace compressm::kernels::cuda
