// Fused LRU layer forward, float32 / complex64 state (lru_cuda.h):
//   x_k = lambda x_{k-1} + Bt u_k,  y_parts[block] = sum over the block's states of Re(C x_k)
// The state stays in registers; only the state before each chunk of
// kFusedChunk steps is written (the backward pass's checkpoints).
#include "kernels/cuda/lru_fused_common.cuh"

namespace compressm::kernels::cuda {
namespace {

using namespace detail;

template <int kMaxH>
__global__ void __launch_bounds__(kThreads)
    lru_forward_kernel(LruWeights<float> w, const float* __restrict__ u, float* __restrict__ y_parts,
                       float* __restrict__ checkpoints, FusedShape s) {
  __shared__ float u_chunk[kChunk][kMaxH];
  __shared__ float partial[kWarps][kChunk][kMaxH];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const long long b = blockIdx.x;
  const long long n = static_cast<long long>(blockIdx.y) * kThreads + threadIdx.x;
  const bool active = n < s.state;
  StateParameters<kMaxH> p;
  p.load(w, n, active, s);
  const float* u_row = u + b * s.length * s.hidden;
  float* y_row = y_parts + (static_cast<long long>(blockIdx.y) * s.batch + b) * s.length * s.hidden;

  float2 x = make_float2(0.f, 0.f);
  for (long long c = 0; c < s.chunks; ++c) {
    const long long t0 = c * kChunk;
    const int len = static_cast<int>(s.length - t0 < kChunk ? s.length - t0 : kChunk);
    if (checkpoints != nullptr && active) {
      float* slot = checkpoints + ((b * s.chunks + c) * s.state + n) * 2;
      slot[0] = x.x;
      slot[1] = x.y;
    }
    stage_rows<kMaxH>(u_row, t0, len, s.hidden, u_chunk);
    __syncthreads();
#pragma unroll
    for (int t = 0; t < kChunk; ++t) {
      if (t < len) {  // the same for the whole block: the shuffles below see every lane
        x = p.step(x, u_chunk[t]);
        float v[kMaxH];
#pragma unroll
        for (int q = 0; q < kMaxH; ++q) v[q] = p.c_re[q] * x.x - p.c_im[q] * x.y;
        warp_sums<kMaxH>(v, lane, partial[warp][t]);
      }
    }
    __syncthreads();
    // No barrier needed after this: the next chunk writes u_chunk (read
    // before the barrier above) and then partial only after its own barrier.
    write_block_sums<kMaxH>(partial, t0, len, s.hidden, y_row);
  }
}

template <int kMaxH>
void launch(const LruWeights<float>& w, const float* u, float* y_parts, float* checkpoints, LruShape shape,
            Stream stream) {
  const FusedShape s = fused_shape(shape);
  const dim3 grid(static_cast<unsigned int>(s.batch), static_cast<unsigned int>(fused_state_blocks(shape)));
  COMPRESSM_LAUNCH(lru_forward_kernel<kMaxH>, grid, kThreads, stream)(w, u, y_parts, checkpoints, s);
  check_launch("lru_layer_forward (CUDA)");
}

}  // namespace

int64_t fused_state_blocks(LruShape shape) {
  return (shape.state + kFusedStatesPerBlock - 1) / kFusedStatesPerBlock;
}

int64_t fused_checkpoint_size(LruShape shape) {
  return shape.batch * ((shape.length + kFusedChunk - 1) / kFusedChunk) * shape.state * 2;
}

void lru_layer_forward(const LruWeights<float>& w, const float* u, float* y_parts, float* checkpoints,
                       LruShape shape, Stream stream) {
  if (shape.batch == 0 || shape.length == 0 || shape.state == 0) return;
  if (shape.hidden > kFusedMaxHidden) throw std::runtime_error("lru_layer_forward (CUDA): H > kFusedMaxHidden");
  if (shape.hidden <= 8)
    launch<8>(w, u, y_parts, checkpoints, shape, stream);
  else
    launch<16>(w, u, y_parts, checkpoints, shape, stream);
}

}  // namespace compressm::kernels::cuda
