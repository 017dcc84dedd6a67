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
// One chunk of steps per round trip to memory, as the float32 scan's rounds:
// its loads are independent of the recurrence and all in flight at once
// (and issued one chunk ahead).
constexpr int kChunk = static_cast<int>(kBf16ScanChunk);

// Steps in chunk c (kChunk but for the last).
__device__ __forceinline__ int chunk_steps(long long length, long long c) {
  const long long left = length - c * kChunk;
  return left < kChunk ? static_cast<int>(left) : kChunk;
}

// One thread per (b, n); consecutive threads take consecutive n (coalesced).
// The next chunk's loads are issued before this chunk's arithmetic and
// stores, so that one round trip to memory hides behind the other.
__global__ void __launch_bounds__(kThreads)
    scan_bf16_forward_kernel(const float2* __restrict__ lambda, const __nv_bfloat162* __restrict__ u,
                             __nv_bfloat162* __restrict__ x, float2* __restrict__ checkpoints, long long batch,
                             long long length, long long state) {
  const long long index = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= batch * state) return;
  const long long b = index / state, n = index % state;
  const long long chunks = (length + kChunk - 1) / kChunk;
  const float2 l = lambda[n];
  const __nv_bfloat162* up = u + b * length * state + n;
  __nv_bfloat162* xp = x + b * length * state + n;
  float2* cp = checkpoints + b * chunks * state + n;
  const long long stride = kChunk * state;  // from one chunk to the next
  __nv_bfloat162 next[kChunk];
#pragma unroll
  for (int k = 0; k < kChunk; ++k)
    if (k < chunk_steps(length, 0)) next[k] = up[k * state];
  float2 s = make_float2(0.f, 0.f);
  for (long long c = 0; c < chunks; ++c, up += stride, xp += stride) {
    const int m = chunk_steps(length, c);
    float2 v[kChunk];
#pragma unroll
    for (int k = 0; k < kChunk; ++k)
      if (k < m) v[k] = __bfloat1622float2(next[k]);
    if (c + 1 < chunks) {
      const int m_next = chunk_steps(length, c + 1);
#pragma unroll
      for (int k = 0; k < kChunk; ++k)
        if (k < m_next) next[k] = up[stride + k * state];
    }
    cp[c * state] = s;  // the state entering the chunk
#pragma unroll
    for (int k = 0; k < kChunk; ++k)
      if (k < m) {
        s = detail::complex_add(detail::complex_mul(l, s), v[k]);
        v[k] = s;
      }
#pragma unroll
    for (int k = 0; k < kChunk; ++k)
      if (k < m) xp[k * state] = __float22bfloat162_rn(v[k]);
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
