// Shared by the fused LRU layer kernels (lru_layer_forward_f32.cu,
// lru_layer_backward_f32.cu). Thread block = one batch row b (blockIdx.x) and
// kFusedStatesPerBlock states (blockIdx.y), one state n per thread, which keeps
// lambda_n, Bt[n, :] and C[:, n] in registers (kMaxH >= H, padded with 0);
// with time segments (lru_cuda.h) the block holds S such groups ("teams"),
// team s over its own run of chunks. A state's contribution to the H outputs
// of a time step is summed over the team in two stages: a warp shuffle
// reduction, then the team's warps' partial sums through shared memory once
// per chunk of kFusedChunk steps.
#pragma once

#include <map>
#include <mutex>
#include <utility>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/lru_cuda.h"

namespace compressm::kernels::cuda::detail {

constexpr int kThreads = static_cast<int>(kFusedStatesPerBlock);
constexpr int kWarps = kThreads / 32;
constexpr int kChunk = static_cast<int>(kFusedChunk);

// What set_fused_time_segments forced (0: automatic); lru_layer_forward_f32.cu.
int64_t forced_time_segments();

// The time-segment counts the kernels are instantiated for (lru_cuda.h).
inline bool is_segment_count(int64_t segments) { return segments == 1 || segments == 2 || segments == 4; }

// Thread blocks of `kernel` (`threads` each) the current device holds at
// once: its occupancy per multiprocessor times the multiprocessors; 0 if the
// runtime cannot say (asked again next time). Asked once per (device,
// kernel): a CUDA graph captured after the eager warm-up steps finds it here
// and makes no query. A captured graph keeps the segments chosen at capture.
template <class Kernel>
long long resident_blocks(Kernel kernel, int threads) {
  static std::mutex mutex;
  static std::map<std::pair<int, const void*>, long long> known;
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    cudaGetLastError();  // this query's error: leave none for the next launch check
    return 0;
  }
  const std::lock_guard<std::mutex> lock(mutex);
  const auto key = std::make_pair(device, reinterpret_cast<const void*>(kernel));
  const auto found = known.find(key);
  if (found != known.end()) return found->second;
  int multiprocessors = 0, per_multiprocessor = 0;
  if (cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, device) != cudaSuccess ||
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_multiprocessor, kernel, threads, 0) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  const long long blocks = static_cast<long long>(multiprocessors) * per_multiprocessor;
  known.emplace(key, blocks);
  return blocks;
}

// The time segments for a launch (lru_cuda.h): the forced value, else the
// largest S in {4, 2} with at least 2 chunks per segment whose grid fits in
// one wave of that kernel, else 1.
template <class Kernel4, class Kernel2>
int64_t pick_time_segments(LruShape shape, Kernel4 kernel4, Kernel2 kernel2) {
  if (const int64_t forced = forced_time_segments(); forced > 0) return forced;
  const long long chunks = (shape.length + kChunk - 1) / kChunk;
  const long long blocks = shape.batch * fused_state_blocks(shape);
  if (chunks >= 2 * 4 && blocks <= resident_blocks(kernel4, kThreads * 4)) return 4;
  if (chunks >= 2 * 2 && blocks <= resident_blocks(kernel2, kThreads * 2)) return 2;
  return 1;
}

struct FusedShape {
  long long batch, length, state, hidden, chunks;
};

inline FusedShape fused_shape(LruShape s) {
  return {s.batch, s.length, s.state, s.hidden, (s.length + kChunk - 1) / kChunk};
}

// Team `team` of `teams` takes chunks [begin, end) (balanced; may be empty).
struct ChunkRun {
  long long begin, end;
  __device__ long long steps(const FusedShape& s) const {
    if (end <= begin) return 0;
    const long long last = end * kChunk < s.length ? end * kChunk : s.length;
    return last - begin * kChunk;
  }
};
__device__ __forceinline__ ChunkRun chunk_run(const FusedShape& s, int team, int teams) {
  return {s.chunks * team / teams, s.chunks * (team + 1) / teams};
}
// Time steps of chunk c (0 for a chunk outside [0, chunks)).
__device__ __forceinline__ int chunk_length(const FusedShape& s, long long c) {
  if (c < 0 || c >= s.chunks) return 0;
  const long long rest = s.length - c * kChunk;
  return static_cast<int>(rest < kChunk ? rest : kChunk);
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

  // The adjoint scan's step back in time: G_t = a_t + conj(lambda) G_{t+1}.
  __device__ __forceinline__ float2 adjoint_step(float2 carry, float a_re, float a_im) const {
    return make_float2(a_re + lambda_re * carry.x + lambda_im * carry.y,
                       a_im - lambda_im * carry.x + lambda_re * carry.y);
  }
};

// rows [t0, t0 + len) of a {L, H} array into a zero-padded shared {kChunk,
// kMaxH} block, by the kThreads threads of a team (`thread` = index in it).
template <int kMaxH>
__device__ void stage_rows(const float* src, long long t0, int len, long long hidden, float (*dst)[kMaxH],
                           int thread) {
  for (int i = thread; i < kChunk * kMaxH; i += kThreads) {
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

// out[(t0 + t) * H + q] = sum over the team's kWarps warps of partial[w][t][q],
// for t < len, q < H (`partial` = the team's first warp's slot).
template <int kMaxH>
__device__ void write_block_sums(float (*partial)[kChunk][kMaxH], long long t0, int len, long long hidden,
                                 float* out, int thread) {
  for (int i = thread; i < kChunk * kMaxH; i += kThreads) {
    const int t = i / kMaxH, q = i % kMaxH;
    if (t >= len || q >= hidden) continue;
    float sum = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) sum += partial[w][t][q];
    out[(t0 + t) * hidden + q] = sum;
  }
}

}  // namespace compressm::kernels::cuda::detail
