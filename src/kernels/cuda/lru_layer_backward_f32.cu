// Fused LRU layer backward, float32 / complex64 state (lru_cuda.h). Per chunk,
// last to first: recompute the chunk's states from its checkpoint (kept in
// registers), then backwards in time
//   a_t = dL/dx_t from y:  (sum_q dy_q C_re[q, n], -sum_q dy_q C_im[q, n])
//   G_t = a_t + conj(lambda) G_{t+1}                    (the adjoint scan)
//   dL/dlambda += G_t conj(x_{t-1});  dL/dBt[n, q] += G_t u_t[q]
//   dL/dC_re[q, n] += dy_q Re x_t;    dL/dC_im[q, n] -= dy_q Im x_t
//   dL/du_t[q] (this block's part) = sum_n Re(conj(Bt[n, q]) G_t[n])
// The gradient accumulators of a state live in registers for the whole row.
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

template <int kMaxH>
__global__ void __launch_bounds__(kThreads)
    lru_backward_kernel(LruWeights<float> w, const float* __restrict__ u, const float* __restrict__ checkpoints,
                        const float* __restrict__ grad_y, LruGradientParts g, FusedShape s) {
  __shared__ float u_chunk[kChunk][kMaxH];
  __shared__ float dy_chunk[kChunk][kMaxH];
  __shared__ float partial[kWarps][kChunk][kMaxH];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const long long b = blockIdx.x;
  const long long n = static_cast<long long>(blockIdx.y) * kThreads + threadIdx.x;
  const bool active = n < s.state;
  StateParameters<kMaxH> p;
  p.load(w, n, active, s);
  StateGradients<kMaxH> d;
  d.zero();
  const float* u_row = u + b * s.length * s.hidden;
  const float* dy_row = grad_y + b * s.length * s.hidden;
  float* du_row = g.u + (static_cast<long long>(blockIdx.y) * s.batch + b) * s.length * s.hidden;

  float2 carry = make_float2(0.f, 0.f);  // G_{t+1}; G_L = 0
  for (long long c = s.chunks - 1; c >= 0; --c) {
    const long long t0 = c * kChunk;
    const int len = static_cast<int>(s.length - t0 < kChunk ? s.length - t0 : kChunk);
    stage_rows<kMaxH>(u_row, t0, len, s.hidden, u_chunk);
    stage_rows<kMaxH>(dy_row, t0, len, s.hidden, dy_chunk);
    __syncthreads();

    float2 start = make_float2(0.f, 0.f);  // x_{t0 - 1}
    if (active) {
      const float* slot = checkpoints + ((b * s.chunks + c) * s.state + n) * 2;
      start = make_float2(slot[0], slot[1]);
    }
    float2 states[kChunk];  // x_{t0 + t}; constant indices after unrolling: registers
    float2 x = start;
#pragma unroll
    for (int t = 0; t < kChunk; ++t) {
      if (t < len) x = p.step(x, u_chunk[t]);
      states[t] = x;
    }

#pragma unroll
    for (int t = kChunk - 1; t >= 0; --t) {
      if (t < len) {  // the same for the whole block: the shuffles below see every lane
        const float2 xt = states[t];
        const float2 previous = t > 0 ? states[t > 0 ? t - 1 : 0] : start;
        float a_re = 0.f, a_im = 0.f;
#pragma unroll
        for (int q = 0; q < kMaxH; ++q) {
          const float dy = dy_chunk[t][q];
          a_re += dy * p.c_re[q];
          a_im -= dy * p.c_im[q];
          d.c_re[q] += dy * xt.x;
          d.c_im[q] -= dy * xt.y;
        }
        carry = make_float2(a_re + p.lambda_re * carry.x + p.lambda_im * carry.y,
                            a_im - p.lambda_im * carry.x + p.lambda_re * carry.y);
        d.lambda_re += carry.x * previous.x + carry.y * previous.y;
        d.lambda_im += carry.y * previous.x - carry.x * previous.y;
        float v[kMaxH];
#pragma unroll
        for (int q = 0; q < kMaxH; ++q) {
          const float uq = u_chunk[t][q];
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
    write_block_sums<kMaxH>(partial, t0, len, s.hidden, du_row);
  }
  if (active) d.store(g, b, n, s);
}

template <int kMaxH>
void launch(const LruWeights<float>& w, const float* u, const float* checkpoints, const float* grad_y,
            const LruGradientParts& parts, LruShape shape, Stream stream) {
  const FusedShape s = fused_shape(shape);
  const dim3 grid(static_cast<unsigned int>(s.batch), static_cast<unsigned int>(fused_state_blocks(shape)));
  COMPRESSM_LAUNCH(lru_backward_kernel<kMaxH>, grid, kThreads, stream)(w, u, checkpoints, grad_y, parts, s);
  check_launch("lru_layer_backward (CUDA)");
}

}  // namespace

void lru_layer_backward(const LruWeights<float>& w, const float* u, const float* checkpoints, const float* grad_y,
                        const LruGradientParts& parts, LruShape shape, Stream stream) {
  if (shape.batch == 0 || shape.length == 0 || shape.state == 0) return;
  if (shape.hidden > kFusedMaxHidden) throw std::runtime_error("lru_layer_backward (CUDA): H > kFusedMaxHidden");
  if (shape.hidden <= 8)
    launch<8>(w, u, checkpoints, grad_y, parts, shape, stream);
  else
    launch<16>(w, u, checkpoints, grad_y, parts, shape, stream);
}

}  // namespace compressm::kernels::cuda
