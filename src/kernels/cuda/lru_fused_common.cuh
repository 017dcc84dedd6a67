// Shared by the fused LRU layer kernels (lru_layer_forward_f32.cu,
// lru_layer_backward_f32.cu). Thread block = one batch row b (blockIdx.x) and
// kFusedStatesPerBlock states (blockIdx.y), one state n per thread, which keeps
// lambda_n, Bt[n, :] and C[:, n] in registers (kMaxH >= H, padded with 0).
// A state's contribution to the H outputs of a time step is summed over the
// block in two stages: a warp shuffle reduction, then the warps' partial sums
// through shared memory once per chunk of kFusedChunk steps.
#pragma once

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/lru_cuda.h"

namespace compressm::kernels::cuda::detail {

constexpr int kThreads = static_cast<int>(kFusedStatesPerBlock);
constexpr int kWarps = kThreads / 32;
constexpr int kChunk = static_cast<int>(kFusedChunk);

struct FusedShape {
  long long batch, length, state, hidden, chunks;
};

inline FusedShape fused_shape(LruShape s) {
  return {s.batch, s.length, s.state, s.hidden, (s.length + kChunk - 1) / kChunk};
}

// One state's parameters, zero for padded states (n >= N) and channels (q >= H).
template <int kMaxH>
struct StateParameters {
  float lambda_re, lambda_im;
  float b_re[kMaxH], b_im[kMaxH];  // Bt[n, q]
  float c_re[kMaxH], c_im[kMaxH];  // C[q, n]

  __device__ void load(const LruWeights<float>& w, long long n, bool active, const FusedShape& s) {
    lambda_re = active ? w.lambda_re[n] : 0.f;
    lambda_im = active ? w.lambda_im[n] : 0.f;
#pragma unroll
    for (int q = 0; q < kMaxH; ++q) {
      const bool used = active && q < s.hidden;
      b_re[q] = used ? w.B_re[n * s.hidden + q] : 0.f;
      b_im[q] = used ? w.B_im[n * s.hidden + q] : 0.f;
      c_re[q] = used ? w.C_re[q * s.state + n] : 0.f;
      c_im[q] = used ? w.C_im[q * s.state + n] : 0.f;
    }
  }

  // x <- lambda x + Bt u_t for one time step, u_t = row[0..kMaxH).
  __device__ __forceinline__ float2 step(float2 x, const float* row) const {
    float v_re = 0.f, v_im = 0.f;
#pragma unroll
    for (int q = 0; q < kMaxH; ++q) {
      v_re += b_re[q] * row[q];
      v_im += b_im[q] * row[q];
    }
    return make_float2(lambda_re * x.x - lambda_im * x.y + v_re, lambda_im * x.x + lambda_re * x.y + v_im);
  }
};

// rows [t0, t0 + len) of a {L, H} array into a zero-padded shared {kChunk, kMaxH} block.
template <int kMaxH>
__device__ void stage_rows(const float* src, long long t0, int len, long long hidden, float (*dst)[kMaxH]) {
  for (int i = threadIdx.x; i < kChunk * kMaxH; i += kThreads) {
    const int t = i / kMaxH, q = i % kMaxH;
    dst[t][q] = (t < len && q < hidden) ? src[(t0 + t) * hidden + q] : 0.f;
  }
}

// Sums v[q] over the warp's 32 lanes for every q (kMaxH a power of two <= 32)
// by a transposed butterfly: at each of the first log2(kMaxH) levels a lane
// keeps half of its values and trades the other half with its partner, so
// the level costs half as many shuffles as the one before; then the lanes
// that hold the same q finish with plain xor steps. kMaxH - 1 + log2(32 /
// kMaxH) shuffles in all (9 for 8 values) instead of 5 per value (40).
// Afterwards v[0] holds the sum for q = lane / (32 / kMaxH).
template <int kMaxH, int kCount = kMaxH, int kOffset = 16>
__device__ __forceinline__ void transposed_warp_sum(float (&v)[kMaxH], int lane) {
  if constexpr (kCount > 1) {
    const bool upper = (lane & kOffset) != 0;
#pragma unroll
    for (int i = 0; i < kCount / 2; ++i) {
      const float keep = upper ? v[i + kCount / 2] : v[i];
      const float send = upper ? v[i] : v[i + kCount / 2];
      v[i] = keep + __shfl_xor_sync(0xffffffffu, send, kOffset);
    }
    transposed_warp_sum<kMaxH, kCount / 2, kOffset / 2>(v, lane);
  } else {
#pragma unroll
    for (int offset = kOffset; offset > 0; offset /= 2) v[0] += __shfl_xor_sync(0xffffffffu, v[0], offset);
  }
}

// row[q] = sum over the warp's lanes of v[q], for every q < kMaxH. All lanes must call it.
template <int kMaxH>
__device__ __forceinline__ void warp_sums(float (&v)[kMaxH], int lane, float* row) {
  static_assert(kMaxH >= 1 && kMaxH <= 32 && (kMaxH & (kMaxH - 1)) == 0, "kMaxH: a power of two <= 32");
  transposed_warp_sum<kMaxH>(v, lane);
  constexpr int kLanesPerSum = 32 / kMaxH;
  if (lane % kLanesPerSum == 0) row[lane / kLanesPerSum] = v[0];
}

// out[(t0 + t) * H + q] = sum over warps of partial[w][t][q], for t < len, q < H.
template <int kMaxH>
__device__ void write_block_sums(float (*partial)[kChunk][kMaxH], long long t0, int len, long long hidden,
                                 float* out) {
  for (int i = threadIdx.x; i < kChunk * kMaxH; i += kThreads) {
    const int t = i / kMaxH, q = i % kMaxH;
    if (t >= len || q >= hidden) continue;
    float sum = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) sum += partial[w][t][q];
    out[(t0 + t) * hidden + q] = sum;
  }
}

}  // namespace compressm::kernels::cuda::detail
