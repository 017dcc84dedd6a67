// One LRU block advanced over a run of time steps, the arithmetic shared by the
// whole-sequence forward pass (runs of kChunkSteps) and streaming (runs of 1):
//
//   z = BatchNorm(h)  (running statistics)        h {H, T}, column t = step t
//   x_k = lambda .* x_{k-1} + Bt z_k              x {N} complex, carried across runs
//   y = Re(C x) + D .* z
//   h += (Wv g + bv) .* sigmoid(Wg g + bg),  g = GELU(y)  (exact erf; dropout off)
//
// The recurrence runs step by step with both projections fused into it (two
// matrix-vector products on a {2N} vector that stays in L1), so no {2N, T}
// state block is ever written; the {H, T} parts run as small matrix products.
#pragma once

#include <Eigen/Core>

#include "runtime/model_file.h"

namespace compressm::runtime {

// Steps per run in the whole-sequence pass.
inline constexpr Eigen::Index kChunkSteps = 128;

// Recurrent state of one block.
struct BlockState {
  VectorF x;  // {2N}: [Re x; Im x]
};

// Buffers reused from run to run, so a streaming step does not allocate.
struct BlockScratch {
  MatrixF z;        // {H, T} normalised input, later the GLU value
  VectorF next;     // {2N}: Bt z_k, then x_k
  MatrixF y, gate;  // {H, T}
};

// Advances `state` over the columns of `h` {H, T} and replaces h by the block output.
void run_block(const BlockWeights& w, MatrixF& h, BlockState& state, BlockScratch& scratch);

// Fresh zero state of block `w`.
BlockState zero_state(const BlockWeights& w);

}  // namespace compressm::runtime
