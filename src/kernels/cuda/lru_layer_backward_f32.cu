// Fused LRU layer backward, float32 / complex64 state (lru_cuda.h). Per chunk,
// last to first: recompute the chunk's states from its checkpoint (kept in
// registers), then backwards in time
//   a_t = dL/dx_t from y:  (sum_q dy_q C_re[q, n], -sum_q dy_q C_im[q, n])
//   G_t = a_t + conj(lambda) G_{t+1}                    (the adjoint scan)
//   dL/dlambda += G_t conj(x_{t-1});  dL/dBt[n, q] += G_t u_t[q]
//   dL/dC_re[q, n] += dy_q Re x_t;    dL/dC_im[q, n] -= dy_q Im x_t
//   dL/du_t[q] (this block's part) = sum_n Re(conj(Bt[n, q]) G_t[n])
// The gradient accumulators of a state live in registers for the whole row.
// With time segments (kSegments teams per block, lru_cuda.h) each team first
// finds the adjoint entering its run of chunks from the end, and writes its
// own row of gradient parts (row b * kSegments + team).
#include <stdexcept>
#include <string>

#include "kernels/cuda/lru_fused_common.cuh"

namespace compressm::kernels::cuda {
namespace {

using namespace detail;

template <int kMaxH>
struct StateGradients {
  float lambda_re = 0.f, lambda_im = 0.f;
  float b_re[kMaxH], b_im[kMaxH], c_re[kMaxH], c_im[kMaxH];

  __device__ void zero() {
#pragma unroll
    for (int q = 0; q < kMaxH; ++q) b_re[q] = b_im[q] = c_re[q] = c_im[q] = 0.f;
  }

  __device__ void store(const LruGradientParts& g, long long b, long long n, const FusedShape& s) const {
    // b: the row of the parts
    g.lambda_re[b * s.state + n] = lambda_re;
    g.lambda_im[b * s.state + n] = lambda_im;
#pragma unroll
    for (int q = 0; q < kMaxH; ++q) {
      if (q >= s.hidden) continue;
      g.B_re[(b * s.state + n) * s.hidden + q] = b_re[q];
      g.B_im[(b * s.state + n) * s.hidden + q] = b_im[q];
      g.C_re[(b * s.hidden + q) * s.state + n] = c_re[q];
      g.C_im[(b * s.hidden + q) * s.state + n] = c_im[q];
    }
  }
};

template <int kMaxH, int kSegments>
__global__ void __launch_bounds__(kThreads* kSegments)
    lru_backward_kernel(LruWeights<float> w, const float* __restrict__ u, const float* __restrict__ checkpoints,
                        const float* __restrict__ grad_y, LruGradientParts g, FusedShape s) {
  __shared__ float u_chunk[kSegments][kChunk][kMaxH];
  __shared__ float dy_chunk[kSegments][kChunk][kMaxH];
  __shared__ float partial[kSegments * kWarps][kChunk][kMaxH];
  __shared__ float2 run_starts[kSegments][kThreads];
  const int team = kSegments > 1 ? static_cast<int>(threadIdx.x) / kThreads : 0;
  const int thread = kSegments > 1 ? static_cast<int>(threadIdx.x) % kThreads : static_cast<int>(threadIdx.x);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const long long b = blockIdx.x;
  const long long n = static_cast<long long>(blockIdx.y) * kThreads + thread;
  const bool active = n < s.state;
  StateParameters<kMaxH> p;
  p.load(w, n, active, s);
  StateGradients<kMaxH> d;
  d.zero();
  const float* u_row = u + b * s.length * s.hidden;
  const float* dy_row = grad_y + b * s.length * s.hidden;
  float* du_row = g.u + (static_cast<long long>(blockIdx.y) * s.batch + b) * s.length * s.hidden;
  const ChunkRun run = chunk_run(s, team, kSegments);
  const long long rounds = (s.chunks + kSegments - 1) / kSegments;  // chunks of the longest run

  float2 carry = make_float2(0.f, 0.f);  // G_{t+1}; G_L = 0
  if constexpr (kSegments > 1) {
    // Each run's adjoint at its first step from a zero adjoint after its end
    // (the first run's is not needed): G_t = a_t + conj(lambda) G_{t+1}.
    for (long long k = 0; k < rounds; ++k) {
      const long long c = run.end - 1 - k;
      const int len = c >= run.begin && team > 0 ? chunk_length(s, c) : 0;
      stage_rows<kMaxH>(dy_row, c * kChunk, len, s.hidden, dy_chunk[team], thread);
      __syncthreads();
#pragma unroll
      for (int t = kChunk - 1; t >= 0; --t) {
        if (t < len) {
          float a_re = 0.f, a_im = 0.f;
#pragma unroll
          for (int q = 0; q < kMaxH; ++q) {
            a_re += dy_chunk[team][t][q] * p.c_re[q];
            a_im -= dy_chunk[team][t][q] * p.c_im[q];
          }
          carry = p.adjoint_step(carry, a_re, a_im);
        }
      }
      __syncthreads();
    }
    run_starts[team][thread] = carry;
    __syncthreads();
    // The adjoint after this team's run: the runs after it, from the last.
    const float2 conj_lambda = make_float2(p.lambda_re, -p.lambda_im);
    carry = make_float2(0.f, 0.f);
    for (int r = kSegments - 1; r > team; --r)
      carry = complex_add(complex_mul(complex_power(conj_lambda, chunk_run(s, r, kSegments).steps(s)), carry),
                          run_starts[r][thread]);
  }

  for (long long k = 0; k < rounds; ++k) {
    const long long c = run.end - 1 - k;
    const long long t0 = c * kChunk;
    const int len = c >= run.begin ? chunk_length(s, c) : 0;  // the same for the team: its shuffles see every lane
    stage_rows<kMaxH>(u_row, t0, len, s.hidden, u_chunk[team], thread);
    stage_rows<kMaxH>(dy_row, t0, len, s.hidden, dy_chunk[team], thread);
    __syncthreads();

    float2 start = make_float2(0.f, 0.f);  // x_{t0 - 1}
    if (active && len > 0) {
      const float* slot = checkpoints + ((b * s.chunks + c) * s.state + n) * 2;
      start = make_float2(slot[0], slot[1]);
    }
    float2 states[kChunk];  // x_{t0 + t}; constant indices after unrolling: registers
    float2 x = start;
#pragma unroll
    for (int t = 0; t < kChunk; ++t) {
      if (t < len) x = p.step(x, u_chunk[team][t]);
      states[t] = x;
    }

#pragma unroll
    for (int t = kChunk - 1; t >= 0; --t) {
      if (t < len) {
        const float2 xt = states[t];
        const float2 previous = t > 0 ? states[t > 0 ? t - 1 : 0] : start;
        float a_re = 0.f, a_im = 0.f;
#pragma unroll
        for (int q = 0; q < kMaxH; ++q) {
          const float dy = dy_chunk[team][t][q];
          a_re += dy * p.c_re[q];
          a_im -= dy * p.c_im[q];
          d.c_re[q] += dy * xt.x;
          d.c_im[q] -= dy * xt.y;
        }
        carry = p.adjoint_step(carry, a_re, a_im);
        d.lambda_re += carry.x * previous.x + carry.y * previous.y;
        d.lambda_im += carry.y * previous.x - carry.x * previous.y;
        float v[kMaxH];
#pragma unroll
        for (int q = 0; q < kMaxH; ++q) {
          const float uq = u_chunk[team][t][q];
          d.b_re[q] += carry.x * uq;
          d.b_im[q] += carry.y * uq;
          v[q] = p.b_re[q] * carry.x + p.b_im[q] * carry.y;
        }
        warp_sums<kMaxH>(v, lane, partial[warp][t]);
      }
    }
    __syncthreads();
    // As in the forward kernel, no barrier after this: the staged chunks were
    // read before the barrier above, partial is rewritten after the next one.
    write_block_sums<kMaxH>(partial + team * kWarps, t0, len, s.hidden, du_row, thread);
  }
  if (active) d.store(g, b * kSegments + team, n, s);
}

template <int kMaxH, int kSegments>
void launch(const LruWeights<float>& w, const float* u, const float* checkpoints, const float* grad_y,
            const LruGradientParts& parts, LruShape shape, Stream stream) {
  const FusedShape s = fused_shape(shape);
  const dim3 grid(static_cast<unsigned int>(s.batch), static_cast<unsigned int>(fused_state_blocks(shape)));
  auto* const kernel = &lru_backward_kernel<kMaxH, kSegments>;
  COMPRESSM_LAUNCH(kernel, grid, kThreads * kSegments, stream)(w, u, checkpoints, grad_y, parts, s);
  check_launch("lru_layer_backward (CUDA)");
}

template <int kMaxH>
int64_t backward_segments(LruShape shape) {
  return pick_time_segments(shape, &lru_backward_kernel<kMaxH, 4>, &lru_backward_kernel<kMaxH, 2>);
}

template <int kMaxH>
void launch_segments(const LruWeights<float>& w, const float* u, const float* checkpoints, const float* grad_y,
                     const LruGradientParts& parts, LruShape shape, Stream stream) {
  switch (parts.rows / shape.batch) {
    case 4:
      return launch<kMaxH, 4>(w, u, checkpoints, grad_y, parts, shape, stream);
    case 2:
      return launch<kMaxH, 2>(w, u, checkpoints, grad_y, parts, shape, stream);
    default:
      return launch<kMaxH, 1>(w, u, checkpoints, grad_y, parts, shape, stream);
  }
}

}  // namespace

int64_t fused_backward_segments(LruShape shape) {
  return shape.hidden <= 8 ? backward_segments<8>(shape) : backward_segments<16>(shape);
}

int64_t fused_gradient_rows(LruShape shape) { return shape.batch * fused_backward_segments(shape); }

void lru_layer_backward(const LruWeights<float>& w, const float* u, const float* checkpoints, const float* grad_y,
                        const LruGradientParts& parts, LruShape shape, Stream stream) {
  if (shape.batch == 0 || shape.length == 0 || shape.state == 0) return;
  if (shape.hidden > kFusedMaxHidden) throw std::runtime_error("lru_layer_backward (CUDA): H > kFusedMaxHidden");
  const int64_t segments = parts.rows / shape.batch;
  if (parts.rows != segments * shape.batch || !is_segment_count(segments))
    throw std::invalid_argument("lru_layer_backward (CUDA): parts.rows = " + std::to_string(parts.rows) +
                                " is not B = " + std::to_string(shape.batch) + " times 1, 2 or 4");
  if (shape.hidden <= 8)
    launch_segments<8>(w, u, checkpoints, grad_y, parts, shape, stream);
  else
    launch_segments<16>(w, u, checkpoints, grad_y, parts, shape, stream);
}

}  // namespace compressm::kernels::cuda
