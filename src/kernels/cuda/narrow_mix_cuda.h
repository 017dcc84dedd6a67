// The mix stage of a narrow LRU block (kernels/narrow_mix.h, the CPU loops
// that are its parity oracle) as two CUDA kernels, float32, H <= 16:
//
//   g   = dropout_1(GELU(y))
//   [v | a] = g W^T + b                W {2H, H} = [W_v; W_a], b {2H}
//   out = x + dropout_2(v .* sigmoid(a))
//
// At sMNIST's width (H = 8, 39,200 rows) the stage ran on the GPU as a
// GEMM forward, three GEMMs and a split-K reduction backward (cuBLAS's
// shapes for {39200, 8} x {8, 16}: ~50 us of a 0.54 ms step on an H200),
// the GELU and GLU kernels each way, two Bernoulli draws and the bias sums.
// Here: one thread per row, W and b in shared memory; forward one kernel;
// backward one kernel that also sums dL/dW and dL/db over each thread
// block's rows, then sum_rows adds the blocks' sums in a fixed order
// (deterministic).
//
// Dropout: keep masks (uint8, 1 = kept) as on the CPU, or drawn inside the
// kernels (no mask tensor, no draw kernel): element i of the GELU's mask is
// philox::generator_keeps(seed, offset, i, threshold) and element i of the
// GLU's is element rows H + i of the same draw (kernels/philox.h), where
// (seed, offset) is LibTorch's CUDA generator state (PhiloxSeed,
// dropout_cuda.h), read on the device when a CUDA graph captured it, so that
// each replay draws new masks. The backward pass draws the same bits again,
// from the state the forward pass took: forward and backward must run in
// one graph (as the graphed training step captures them) or both eagerly;
// a backward captured in a graph of its own would read the offset of
// whatever replay ran last.
#pragma once

#include <cstdint>

#include "kernels/cuda/dropout_cuda.h"
#include "kernels/cuda/lru_cuda.h"

namespace compressm::kernels::cuda {

struct NarrowMixDropout {
  const uint8_t* keep_gelu = nullptr;  // given masks (null: none), or
  const uint8_t* keep_glu = nullptr;
  bool draw = false;  // both masks drawn in the kernels from `philox`
  PhiloxSeed philox;
  uint64_t threshold = 0;  // philox::keep_threshold(1 - p)
  float scale = 1.f;       // 1 / (1 - p)
};

// out {rows, H} from y, x {rows, H}, weight {2H, H}, bias {2H}.
void narrow_mix_forward(const float* y, const float* x, const float* weight, const float* bias,
                        const NarrowMixDropout& dropout, float* out, int64_t rows, int64_t hidden, Stream stream);

// Floats of workspace narrow_mix_backward needs.
int64_t narrow_mix_workspace(int64_t rows, int64_t hidden);

// grad_y {rows, H} and grad_params = [dL/dW {2H, H} | dL/db {2H}]
// (2H (H + 1) floats, overwritten) from grad_out; dL/dx is grad_out itself.
void narrow_mix_backward(const float* y, const float* weight, const float* bias, const NarrowMixDropout& dropout,
                         const float* grad_out, float* grad_y, float* grad_params, float* workspace, int64_t rows,
                         int64_t hidden, Stream stream);

}  // namespace compressm::kernels::cuda
