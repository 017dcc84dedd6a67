// Streaming inference: one time step at a time, with the recurrent state of
// every block carried between calls and saved/restored on demand.
//
// The classifier pools by the mean over time, so after step t (0-based) the
// logits are head(mean_{k<=t} h_k), h_k the last block's output at step k;
// after the last step of a sequence they equal Model::classify of the whole
// sequence. The output h_t itself is causal: it depends on steps 0..t only.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/block_pass.h"
#include "runtime/model.h"

namespace compressm::runtime {

// Everything a stream remembers: restore() of a saved state continues exactly
// as the stream it was saved from.
struct StreamState {
  std::vector<BlockState> blocks;  // x per block, {2 N_b} (real, imaginary)
  Eigen::VectorXd output_sum;      // {H}: sum over steps so far of the last block's output
  VectorF output;                  // {H}: the last block's output at the last step (empty before)
  int64_t steps = 0;
};

class Stream {
 public:
  // `model` must outlive the stream. The stream starts empty (x = 0).
  explicit Stream(const Model& model);

  // Advances every block by one step with `input` {input_dim} (with a vocabulary,
  // one token id) and returns the logits after this step. Throws
  // std::invalid_argument for a bad token id (the stream is then unchanged)
  // and for logits that are not finite (float32 overflow; the step is taken).
  const VectorF& step(const float* input);

  const VectorF& output() const { return state_.output; }  // h_t {H} of the last step
  const VectorF& logits() const { return logits_; }  // {classes}; empty before the first step
  int64_t steps() const { return state_.steps; }

  StreamState save() const { return state_; }
  // Throws std::invalid_argument if `state` belongs to a model of other sizes.
  void restore(const StreamState& state);
  void reset();

 private:
  const Model* model_;
  StreamState state_;
  std::vector<BlockScratch> scratch_;
  MatrixF h_;  // {H, 1}
  VectorF logits_;
};

}  // namespace compressm::runtime
