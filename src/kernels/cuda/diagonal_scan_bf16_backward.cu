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

__device__ __forceinline__ int chunk_steps(long long length, long long c) {
  const long long left = length - c * kChunk;
  return left < kChunk ? static_cast<int>(left) : kChunk;
}

// Chunk c's u and grad_x (p + c * kChunk * state), m steps.
__device__ __forceinline__ void load_chunk(const __nv_bfloat162* __restrict__ u,
                                           const __nv_bfloat162* __restrict__ grad_x, long long offset,
                                           long long state, int m, __nv_bfloat162 (&u_out)[kChunk],
                                           __nv_bfloat162 (&g_out)[kChunk]) {
#pragma unroll
  for (int k = 0; k < kChunk; ++k)
    if (k < m) {
      u_out[k] = u[offset + k * state];
      g_out[k] = grad_x[offset + k * state];
    }
}

// Chunks backwards; the previous chunk's loads (u, grad_x, its checkpoint)
// are issued before this chunk's arithmetic, as in the forward kernel.
__global__ void __launch_bounds__(kThreads)
    scan_bf16_backward_kernel(const float2* __restrict__ lambda, const __nv_bfloat162* __restrict__ u,
                              const float2* __restrict__ checkpoints, const __nv_bfloat162* __restrict__ grad_x,
                              __nv_bfloat162* __restrict__ grad_u, float2* __restrict__ grad_lambda_rows,
                              long long batch, long long length, long long state) {
  const long long index = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= batch * state) return;
  const long long b = index / state, n = index % state;
  const long long chunks = (length + kChunk - 1) / kChunk;
  const float2 l = lambda[n];
  const long long base = b * length * state + n;
  const __nv_bfloat162* up = u + base;
  const __nv_bfloat162* gxp = grad_x + base;
  __nv_bfloat162* gup = grad_u + base;
  const float2* cp = checkpoints + b * chunks * state + n;
  __nv_bfloat162 u_next[kChunk], g_next[kChunk];
  load_chunk(up, gxp, (chunks - 1) * kChunk * state, state, chunk_steps(length, chunks - 1), u_next, g_next);
  float2 entering_next = cp[(chunks - 1) * state];
  float2 g = make_float2(0.f, 0.f), sum = make_float2(0.f, 0.f);
  for (long long c = chunks - 1; c >= 0; --c) {
    const long long t0 = c * kChunk;
    const int m = chunk_steps(length, c);
    const float2 entering = entering_next;
    float2 states[kChunk], gv[kChunk];
#pragma unroll
    for (int k = 0; k < kChunk; ++k)
      if (k < m) {
        states[k] = __bfloat1622float2(u_next[k]);
        gv[k] = __bfloat1622float2(g_next[k]);
      }
    if (c > 0) {
      load_chunk(up, gxp, (c - 1) * kChunk * state, state, kChunk, u_next, g_next);  // only the last is partial
      entering_next = cp[(c - 1) * state];
    }
    float2 s = entering;
#pragma unroll
    for (int k = 0; k < kChunk; ++k)
      if (k < m) {
        s = detail::complex_add(detail::complex_mul(l, s), states[k]);
        states[k] = s;
      }
#pragma unroll
    for (int k = kChunk - 1; k >= 0; --k)
      if (k < m) {
        g = detail::complex_add(gv[k], detail::conj_mul(l, g));
        gup[(t0 + k) * state] = __float22bfloat162_rn(g);
        sum = detail::complex_add(sum, detail::conj_mul(k > 0 ? states[k - 1] : entering, g));
      }
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
