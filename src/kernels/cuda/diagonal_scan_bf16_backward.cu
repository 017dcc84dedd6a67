// Diagonal scan backward with bfloat16 gradients and a float32 state
// (lru_cuda.h; the CPU reference is kernels/diagonal_scan_bf16.h): per chunk,
// backwards, the chunk's float32 states are recomputed from its checkpoint
// and u into registers, then the adjoint runs back through them.
#include <cuda_bf16.h>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/lru_cuda.h"

namespace compressm::kernels::cuda {
namespace {

constexpr int kThreads = 64;  // see the forward kernel
constexpr int kChunk = static_cast<int>(kBf16ScanChunk);
// Chunks loaded per round trip to memory (u, grad_x and their checkpoints),
// for the forward kernel's reason: one chunk ahead (32 loads per thread)
// this kernel moved 2.1 TB/s (run 6, ncu). Two groups in registers (the one
// running and the one loading) plus a chunk's float32 states: 243 registers
// at two chunks per group (ptxas, sm_90; no spills, no stack frame).
constexpr int kGroupChunks = 2;
constexpr int kGroup = kGroupChunks * kChunk;

// Steps in group g (kGroup but for the last).
__device__ __forceinline__ int group_steps(long long length, long long g) {
  const long long left = length - g * kGroup;
  return left < kGroup ? static_cast<int>(left) : kGroup;
}

struct Group {
  __nv_bfloat162 u[kGroup], g[kGroup];
  float2 entering[kGroupChunks];  // the float32 state entering each chunk
};

// Group g's m steps of u and grad_x (offset: its first step's) and the
// checkpoints of its chunks (cp: its first chunk's). A whole group is one
// run of loads with no branch between them.
__device__ __forceinline__ void load_group(const __nv_bfloat162* __restrict__ u,
                                           const __nv_bfloat162* __restrict__ grad_x, const float2* __restrict__ cp,
                                           long long offset, long long state, int m, Group& out) {
  if (m == kGroup) {
#pragma unroll
    for (int k = 0; k < kGroup; ++k) {
      out.u[k] = u[offset + k * state];
      out.g[k] = grad_x[offset + k * state];
    }
#pragma unroll
    for (int c = 0; c < kGroupChunks; ++c) out.entering[c] = cp[c * state];
    return;
  }
#pragma unroll
  for (int k = 0; k < kGroup; ++k)
    if (k < m) {
      out.u[k] = u[offset + k * state];
      out.g[k] = grad_x[offset + k * state];
    }
#pragma unroll
  for (int c = 0; c < kGroupChunks; ++c)
    if (c * kChunk < m) out.entering[c] = cp[c * state];
}

// The adjoint back through a group's m steps, chunk by chunk from its last:
// the chunk's states recomputed from its checkpoint, then g_k = grad_x_k +
// conj(lambda) g_{k+1} written rounded to gup[k * state] (gup: the group's
// first step), and conj(state before step k) g_k added to sum (dL/dlambda).
__device__ __forceinline__ void run_group(const Group& in, int m, float2 l, float2& g, float2& sum,
                                          __nv_bfloat162* __restrict__ gup, long long state) {
#pragma unroll
  for (int c = kGroupChunks - 1; c >= 0; --c) {
    if (c * kChunk >= m) continue;
    const int steps = m - c * kChunk < kChunk ? m - c * kChunk : kChunk;
    const float2 entering = in.entering[c];
    float2 states[kChunk];
    float2 s = entering;
#pragma unroll
    for (int k = 0; k < kChunk; ++k)
      if (k < steps) {
        s = detail::complex_add(detail::complex_mul(l, s), __bfloat1622float2(in.u[c * kChunk + k]));
        states[k] = s;
      }
#pragma unroll
    for (int k = kChunk - 1; k >= 0; --k)
      if (k < steps) {
        g = detail::complex_add(__bfloat1622float2(in.g[c * kChunk + k]), detail::conj_mul(l, g));
        gup[(c * kChunk + k) * state] = __float22bfloat162_rn(g);
        sum = detail::complex_add(sum, detail::conj_mul(k > 0 ? states[k - 1] : entering, g));
      }
  }
}

// Groups backwards in two register buffers in turn: the previous group's
// loads are issued before this group's arithmetic, as in the forward kernel.
__global__ void __launch_bounds__(kThreads)
    scan_bf16_backward_kernel(const float2* __restrict__ lambda, const __nv_bfloat162* __restrict__ u,
                              const float2* __restrict__ checkpoints, const __nv_bfloat162* __restrict__ grad_x,
                              __nv_bfloat162* __restrict__ grad_u, float2* __restrict__ grad_lambda_rows,
                              long long batch, long long length, long long state) {
  const long long index = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= batch * state) return;
  const long long b = index / state, n = index % state;
  const long long chunks = (length + kChunk - 1) / kChunk;
  const long long groups = (length + kGroup - 1) / kGroup;
  const float2 l = lambda[n];
  const long long base = b * length * state + n;
  const __nv_bfloat162* up = u + base;
  const __nv_bfloat162* gxp = grad_x + base;
  __nv_bfloat162* gup = grad_u + base;
  const float2* cp = checkpoints + b * chunks * state + n;
  const long long stride = kGroup * state, cp_stride = kGroupChunks * state;
  const auto load = [&](long long group, Group& out) {
    load_group(up, gxp, cp + group * cp_stride, group * stride, state, group_steps(length, group), out);
  };
  Group even, odd;  // by the parity of the count from the last group
  load(groups - 1, even);
  float2 g = make_float2(0.f, 0.f), sum = make_float2(0.f, 0.f);
  for (long long group = groups - 1; group >= 0; group -= 2) {
    const bool has_odd = group > 0;
    if (has_odd) load(group - 1, odd);
    // Every group but the first one run (the last in time) is whole: no predicates.
    const int m = group_steps(length, group);
    if (m == kGroup)
      run_group(even, kGroup, l, g, sum, gup + group * stride, state);
    else
      run_group(even, m, l, g, sum, gup + group * stride, state);
    if (!has_odd) break;
    if (group > 1) load(group - 2, even);
    run_group(odd, kGroup, l, g, sum, gup + (group - 1) * stride, state);
  }
  grad_lambda_rows[b * state + n] = sum;
}

}  // namespace

void diagonal_scan_bf16_backward(const float* lambda, const uint16_t* u, const float* checkpoints,
                                 const uint16_t* grad_x, uint16_t* grad_u, float* grad_lambda_rows, ScanShape shape,
                                 Stream stream) {
  const long long rows = shape.batch * shape.state;
  if (rows == 0 || shape.length == 0) return;
  COMPRESSM_LAUNCH(scan_bf16_backward_kernel, detail::blocks_for(rows, kThreads), kThreads, stream)(
      reinterpret_cast<const float2*>(lambda), reinterpret_cast<const __nv_bfloat162*>(u),
      reinterpret_cast<const float2*>(checkpoints), reinterpret_cast<const __nv_bfloat162*>(grad_x),
      reinterpret_cast<__nv_bfloat162*>(grad_u), reinterpret_cast<float2*>(grad_lambda_rows), shape.batch,
      shape.length, shape.state);
  detail::check_launch("diagonal_scan_bf16_backward (CUDA)");
}

}  // namespace compressm::kernels::cuda
