// Fused LRU layer forward, float32 / complex64 state (lru_cuda.h):
//   x_k = lambda x_{k-1} + Bt u_k,  y_parts[block] = sum over the block's states of Re(C x_k)
// The state stays in registers; only the state before each chunk of
// kFusedChunk steps is written (the backward pass's checkpoints). With time
// segments (kSegments teams per block) each team first finds the state that
// enters its run of chunks.
#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "kernels/cuda/lru_fused_common.cuh"

namespace compressm::kernels::cuda {
namespace {

using namespace detail;

// set_fused_time_segments, initially the environment's COMPRESSM_LRU_SEGMENTS
// (kInvalid when that is not a valid value: every launch then throws, until
// set_fused_time_segments sets one).
constexpr int64_t kInvalid = -1;
std::atomic<int64_t>& forced_segments() {
  static std::atomic<int64_t> value{[] {
    const char* text = std::getenv("COMPRESSM_LRU_SEGMENTS");
    if (text == nullptr || *text == '\0') return int64_t{0};
    char* end = nullptr;
    const long long parsed = std::strtoll(text, &end, 10);
    const bool valid = *end == '\0' && (parsed == 0 || is_segment_count(parsed));
    return valid ? static_cast<int64_t>(parsed) : kInvalid;
  }()};
  return value;
}

template <int kMaxH, int kSegments>
__global__ void __launch_bounds__(kThreads* kSegments)
    lru_forward_kernel(LruWeights<float> w, const float* __restrict__ u, float* __restrict__ y_parts,
                       float* __restrict__ checkpoints, FusedShape s) {
  __shared__ float u_chunk[kSegments][kChunk][kMaxH];
  __shared__ float partial[kSegments * kWarps][kChunk][kMaxH];
  __shared__ float2 run_ends[kSegments][kThreads];
  const int team = kSegments > 1 ? static_cast<int>(threadIdx.x) / kThreads : 0;
  const int thread = kSegments > 1 ? static_cast<int>(threadIdx.x) % kThreads : static_cast<int>(threadIdx.x);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const long long b = blockIdx.x;
  const long long n = static_cast<long long>(blockIdx.y) * kThreads + thread;
  const bool active = n < s.state;
  StateParameters<kMaxH> p;
  p.load(w, n, active, s);
  const float* u_row = u + b * s.length * s.hidden;
  float* y_row = y_parts + (static_cast<long long>(blockIdx.y) * s.batch + b) * s.length * s.hidden;
  const ChunkRun run = chunk_run(s, team, kSegments);
  const long long rounds = (s.chunks + kSegments - 1) / kSegments;  // chunks of the longest run

  float2 x = make_float2(0.f, 0.f);
  if constexpr (kSegments > 1) {
    // Each run's end state from a zero start (the last run's is not needed).
    for (long long k = 0; k < rounds; ++k) {
      const long long c = run.begin + k;
      const int len = c < run.end && team < kSegments - 1 ? chunk_length(s, c) : 0;
      stage_rows<kMaxH>(u_row, c * kChunk, len, s.hidden, u_chunk[team], thread);
      __syncthreads();
#pragma unroll
      for (int t = 0; t < kChunk; ++t)
        if (t < len) x = p.step(x, u_chunk[team][t]);
      __syncthreads();
    }
    run_ends[team][thread] = x;
    __syncthreads();
    // The state entering this team's run: the runs before it, in order.
    const float2 lambda = make_float2(p.lambda_re, p.lambda_im);
    x = make_float2(0.f, 0.f);
    for (int r = 0; r < team; ++r)
      x = complex_add(complex_mul(complex_power(lambda, chunk_run(s, r, kSegments).steps(s)), x),
                      run_ends[r][thread]);
  }

  for (long long k = 0; k < rounds; ++k) {
    const long long c = run.begin + k;
    const int len = c < run.end ? chunk_length(s, c) : 0;  // the same for the team: its shuffles see every lane
    if (len > 0 && checkpoints != nullptr && active) {
      float* slot = checkpoints + ((b * s.chunks + c) * s.state + n) * 2;
      slot[0] = x.x;
      slot[1] = x.y;
    }
    stage_rows<kMaxH>(u_row, c * kChunk, len, s.hidden, u_chunk[team], thread);
    __syncthreads();
#pragma unroll
    for (int t = 0; t < kChunk; ++t) {
      if (t < len) {
        x = p.step(x, u_chunk[team][t]);
        float v[kMaxH];
#pragma unroll
        for (int q = 0; q < kMaxH; ++q) v[q] = p.c_re[q] * x.x - p.c_im[q] * x.y;
        warp_sums<kMaxH>(v, lane, partial[warp][t]);
      }
    }
    __syncthreads();
    // No barrier needed after this: the next round writes u_chunk (read
    // before the barrier above) and then partial only after its own barrier.
    write_block_sums<kMaxH>(partial + team * kWarps, c * kChunk, len, s.hidden, y_row, thread);
  }
}

template <int kMaxH, int kSegments>
void launch(const LruWeights<float>& w, const float* u, float* y_parts, float* checkpoints, LruShape shape,
            Stream stream) {
  const FusedShape s = fused_shape(shape);
  const dim3 grid(static_cast<unsigned int>(s.batch), static_cast<unsigned int>(fused_state_blocks(shape)));
  auto* const kernel = &lru_forward_kernel<kMaxH, kSegments>;
  COMPRESSM_LAUNCH(kernel, grid, kThreads * kSegments, stream)(w, u, y_parts, checkpoints, s);
  check_launch("lru_layer_forward (CUDA)");
}

template <int kMaxH>
int64_t forward_segments(LruShape shape) {
  return pick_time_segments(shape, &lru_forward_kernel<kMaxH, 4>, &lru_forward_kernel<kMaxH, 2>);
}

template <int kMaxH>
void launch_segments(const LruWeights<float>& w, const float* u, float* y_parts, float* checkpoints,
                     LruShape shape, Stream stream) {
  switch (forward_segments<kMaxH>(shape)) {
    case 4:
      return launch<kMaxH, 4>(w, u, y_parts, checkpoints, shape, stream);
    case 2:
      return launch<kMaxH, 2>(w, u, y_parts, checkpoints, shape, stream);
    default:
      return launch<kMaxH, 1>(w, u, y_parts, checkpoints, shape, stream);
  }
}

}  // namespace

int64_t fused_state_blocks(LruShape shape) {
  return (shape.state + kFusedStatesPerBlock - 1) / kFusedStatesPerBlock;
}

int64_t fused_checkpoint_size(LruShape shape) {
  return shape.batch * ((shape.length + kFusedChunk - 1) / kFusedChunk) * shape.state * 2;
}

int64_t fused_forward_segments(LruShape shape) {
  return shape.hidden <= 8 ? forward_segments<8>(shape) : forward_segments<16>(shape);
}

void set_fused_time_segments(int64_t segments) {
  if (segments != 0 && !is_segment_count(segments))
    throw std::invalid_argument("set_fused_time_segments: 0 (automatic), 1, 2 or 4, got " + std::to_string(segments));
  forced_segments().store(segments);
}

namespace detail {
int64_t forced_time_segments() {
  const int64_t forced = forced_segments().load();
  if (forced == kInvalid)
    throw std::invalid_argument(std::string("COMPRESSM_LRU_SEGMENTS: 0 (automatic), 1, 2 or 4, got '") +
                                std::getenv("COMPRESSM_LRU_SEGMENTS") + "'");
  return forced;
}
}  // namespace detail

void lru_layer_forward(const LruWeights<float>& w, const float* u, float* y_parts, float* checkpoints,
                       LruShape shape, Stream stream) {
  if (shape.batch == 0 || shape.length == 0 || shape.state == 0) return;
  if (shape.hidden > kFusedMaxHidden) throw std::runtime_error("lru_layer_forward (CUDA): H > kFusedMaxHidden");
  if (shape.hidden <= 8)
    launch_segments<8>(w, u, y_parts, checkpoints, shape, stream);
  else
    launch_segments<16>(w, u, y_parts, checkpoints, shape, stream);
}

}  // namespace compressm::kernels::cuda
