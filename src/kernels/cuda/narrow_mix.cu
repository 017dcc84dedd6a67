// narrow_mix_cuda.h: one thread per row of H <= 16 values, every H a
// compile-time constant (the row's values stay in registers).
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/fused_ops_cuda.h"
#include "kernels/cuda/narrow_mix_cuda.h"
#include "kernels/cuda/philox_state.cuh"
#include "kernels/fused_ops.h"
#include "kernels/narrow_mix.h"
#include "kernels/philox.h"

namespace compressm::kernels::cuda {
namespace {

namespace ew = compressm::kernels::elementwise;

constexpr int kForwardThreads = 256;
// Backward: a tile of kBackwardThreads rows at a time, its g and [dv | da]
// in shared memory for the weight gradient's sums (H = 16: 27.8 KB).
constexpr int kBackwardThreads = 128;
// Thread blocks of the backward pass (its parts of the weight gradient): a
// function of the row count alone, so that the sums are added in the same
// order on any device. A block per tile up to 1024 tiles (sMNIST: 307
// blocks of 4 warps; fewer blocks with two tiles each would leave the SMs
// with too few warps to hide the per-row chains).
constexpr long long kMaxParts = 1024;

// Parameters in shared memory: W {2H, H} then b {2H}.
template <int H>
constexpr int kParams = 2 * H * H + 2 * H;

template <int H>
__device__ __forceinline__ void load_parameters(const float* __restrict__ weight, const float* __restrict__ bias,
                                                float* w) {
  for (int i = threadIdx.x; i < kParams<H>; i += blockDim.x) w[i] = i < 2 * H * H ? weight[i] : bias[i - 2 * H * H];
}

// The dropout factors of one mask, element by element along a row: scale,
// 0, or 1 without dropout. Drawn masks keep the last Philox call's four
// words (four consecutive elements).
class MaskReader {
 public:
  __device__ MaskReader(const NarrowMixDropout& d, const uint8_t* keep, uint64_t first)
      : keep_(keep), draw_(d.draw), threshold_(d.threshold), first_(first), scale_(d.scale) {
    if (draw_) detail::philox_values(d.philox, seed_, offset_);
  }

  __device__ float factor(long long i) {
    if (keep_ != nullptr) return keep_[i] ? scale_ : 0.f;
    if (!draw_) return 1.f;
    const uint64_t e = first_ + static_cast<uint64_t>(i), group = e >> 2;
    if (group != group_) {
      words_ = philox::generator_words(seed_, offset_, group);
      group_ = group;
    }
    // (a runtime index: the four words sit in local memory, L1. Selecting
    // the word with conditionals instead took the forward kernel from 112 to
    // 231 registers at H = 8 and spilled at H = 16, sm_90.)
    return words_.w[e & 3] < threshold_ ? scale_ : 0.f;
  }

 private:
  const uint8_t* keep_;
  bool draw_;
  uint64_t threshold_, first_, seed_ = 0, offset_ = 0, group_ = ~uint64_t{0};
  float scale_;
  philox::Words words_{};
};

// [v | a] of one row from its g (v and a: H each).
template <int H>
__device__ __forceinline__ void glu_inputs(const float* w, const float (&g)[H], int j, float& v, float& a) {
  v = 0.f;
  a = 0.f;
#pragma unroll
  for (int k = 0; k < H; ++k) {
    v += w[j * H + k] * g[k];
    a += w[(H + j) * H + k] * g[k];
  }
  v += w[2 * H * H + j];
  a += w[2 * H * H + H + j];
}

template <int H>
__global__ void __launch_bounds__(kForwardThreads)
    narrow_mix_forward_kernel(const float* __restrict__ y, const float* __restrict__ x,
                              const float* __restrict__ weight, const float* __restrict__ bias,
                              const NarrowMixDropout d, float* __restrict__ out, long long rows) {
  __shared__ float w[kParams<H>];
  load_parameters<H>(weight, bias, w);
  __syncthreads();
  MaskReader gelu_mask(d, d.keep_gelu, 0), glu_mask(d, d.keep_glu, static_cast<uint64_t>(rows) * H);
  for (long long r = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; r < rows;
       r += static_cast<long long>(gridDim.x) * blockDim.x) {
    const long long i0 = r * H;
    float g[H];
#pragma unroll
    for (int k = 0; k < H; ++k) g[k] = ew::gelu(y[i0 + k]) * gelu_mask.factor(i0 + k);
#pragma unroll
    for (int j = 0; j < H; ++j) {
      float v, a;
      glu_inputs<H>(w, g, j, v, a);
      out[i0 + j] = ew::glu_output(x[i0 + j], v, a, glu_mask.factor(i0 + j));
    }
  }
}

// Block `part` handles tiles part, part + parts, ... of kBackwardThreads
// rows (a thread per row), writes dL/dy of its rows, and its sums of
// dL/dW and dL/db (kParams<H> floats) to parts[part].
template <int H>
__global__ void __launch_bounds__(kBackwardThreads)
    narrow_mix_backward_kernel(const float* __restrict__ y, const float* __restrict__ weight,
                               const float* __restrict__ bias, const NarrowMixDropout d,
                               const float* __restrict__ grad_out, float* __restrict__ grad_y,
                               float* __restrict__ parts, long long rows) {
  // Odd row strides: the threads' row stores fall in distinct banks.
  constexpr int kG = H % 2 == 0 ? H + 1 : H, kD = 2 * H + 1;
  constexpr int kPerThread = (kParams<H> + kBackwardThreads - 1) / kBackwardThreads;
  __shared__ float w[kParams<H>];
  __shared__ float gs[kBackwardThreads * kG];  // the tile's g
  __shared__ float ds[kBackwardThreads * kD];  // the tile's [dL/dv | dL/da]
  load_parameters<H>(weight, bias, w);
  __syncthreads();
  MaskReader gelu_mask(d, d.keep_gelu, 0), glu_mask(d, d.keep_glu, static_cast<uint64_t>(rows) * H);
  const int t = threadIdx.x;
  float sums[kPerThread] = {};
  const long long tiles = (rows + kBackwardThreads - 1) / kBackwardThreads;
  for (long long tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const long long r = tile * kBackwardThreads + t;
    if (r < rows) {
      const long long i0 = r * H;
      float g[H], factor[H], grad_g[H];
#pragma unroll
      for (int k = 0; k < H; ++k) {
        factor[k] = gelu_mask.factor(i0 + k);
        g[k] = ew::gelu(y[i0 + k]) * factor[k];
        gs[t * kG + k] = g[k];
        grad_g[k] = 0.f;
      }
#pragma unroll
      for (int j = 0; j < H; ++j) {
        float v, a, grad_v, grad_a;
        glu_inputs<H>(w, g, j, v, a);
        ew::glu_gradients(v, a, glu_mask.factor(i0 + j), grad_out[i0 + j], grad_v, grad_a);
        ds[t * kD + j] = grad_v;
        ds[t * kD + H + j] = grad_a;
#pragma unroll
        for (int k = 0; k < H; ++k) grad_g[k] += w[j * H + k] * grad_v + w[(H + j) * H + k] * grad_a;
      }
#pragma unroll
      for (int k = 0; k < H; ++k) grad_y[i0 + k] = grad_g[k] * factor[k] * ew::gelu_derivative(y[i0 + k]);
    } else {
      for (int k = 0; k < H; ++k) gs[t * kG + k] = 0.f;
      for (int j = 0; j < 2 * H; ++j) ds[t * kD + j] = 0.f;
    }
    __syncthreads();
    // Output o: dL/dW[j][k] = sum over the tile's rows of [dv | da]_j g_k
    // (o = j H + k < 2 H H), dL/db[j] = the sum of [dv | da]_j (o = 2 H H + j).
#pragma unroll
    for (int q = 0; q < kPerThread; ++q) {
      const int o = t + q * kBackwardThreads;
      if (o >= kParams<H>) break;
      float sum = 0.f;
      if (o < 2 * H * H) {
        const int j = o / H, k = o % H;
        for (int row = 0; row < kBackwardThreads; ++row) sum += ds[row * kD + j] * gs[row * kG + k];
      } else {
        for (int row = 0; row < kBackwardThreads; ++row) sum += ds[row * kD + o - 2 * H * H];
      }
      sums[q] += sum;
    }
    __syncthreads();  // the next tile overwrites gs and ds
  }
#pragma unroll
  for (int q = 0; q < kPerThread; ++q) {
    const int o = t + q * kBackwardThreads;
    if (o < kParams<H>) parts[static_cast<long long>(blockIdx.x) * kParams<H> + o] = sums[q];
  }
}

long long backward_parts(int64_t rows) {
  const long long tiles = (rows + kBackwardThreads - 1) / kBackwardThreads;
  const long long per_part = (tiles + kMaxParts - 1) / kMaxParts;
  return per_part == 0 ? 0 : (tiles + per_part - 1) / per_part;
}

void check_dropout(const NarrowMixDropout& d, const char* what) {
  if (d.draw && (d.keep_gelu != nullptr || d.keep_glu != nullptr))
    throw std::invalid_argument(std::string(what) + ": masks given and drawn");
  if (d.draw && (d.philox.seed_ptr == nullptr) != (d.philox.offset_ptr == nullptr))
    throw std::invalid_argument(std::string(what) + ": a captured Philox state needs both pointers");
}

}  // namespace

void narrow_mix_forward(const float* y, const float* x, const float* weight, const float* bias,
                        const NarrowMixDropout& dropout, float* out, int64_t rows, int64_t hidden, Stream stream) {
  check_dropout(dropout, "narrow_mix_forward (CUDA)");
  narrow_mix::with_hidden(hidden, "narrow_mix_forward (CUDA)", [&](auto h) {
    constexpr int H = decltype(h)::value;
    if (rows <= 0) return;
    const unsigned int blocks = detail::blocks_for(rows, kForwardThreads);
    COMPRESSM_LAUNCH(narrow_mix_forward_kernel<H>, blocks < 4096u ? blocks : 4096u, kForwardThreads, stream)(
        y, x, weight, bias, dropout, out, rows);
    detail::check_launch("narrow_mix_forward (CUDA)");
  });
}

int64_t narrow_mix_workspace(int64_t rows, int64_t hidden) { return backward_parts(rows) * 2 * hidden * (hidden + 1); }

void narrow_mix_backward(const float* y, const float* weight, const float* bias, const NarrowMixDropout& dropout,
                         const float* grad_out, float* grad_y, float* grad_params, float* workspace, int64_t rows,
                         int64_t hidden, Stream stream) {
  check_dropout(dropout, "narrow_mix_backward (CUDA)");
  narrow_mix::with_hidden(hidden, "narrow_mix_backward (CUDA)", [&](auto h) {
    constexpr int H = decltype(h)::value;
    if (rows <= 0) throw std::invalid_argument("narrow_mix_backward (CUDA): no rows");
    const long long parts = backward_parts(rows);
    COMPRESSM_LAUNCH(narrow_mix_backward_kernel<H>, static_cast<unsigned int>(parts), kBackwardThreads, stream)(
        y, weight, bias, dropout, grad_out, grad_y, workspace, rows);
    detail::check_launch("narrow_mix_backward (CUDA)");
    const SumRowsJob job{workspace, grad_params, parts, kParams<H>};
    sum_rows(&job, 1, stream);
  });
}

}  // namespace compressm::kernels::cuda
