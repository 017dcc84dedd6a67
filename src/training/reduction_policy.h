// Compression during training (docs/design.md §2): at the steps of the reduction
// window, each LRU block's Hankel singular values pick a new state dimension,
// balanced truncation (or an ablation) cuts the block, its LRU parameters are
// replaced and training goes on with the smaller tensors.
//
// Schedule: tried after optimiser step s (steps_done = s + 1) when
// red_start <= s < red_end and steps_done % red_interval == 0.
// Modes:
//   tolerance  r = smallest rank keeping `tol` of the plain HSV energy
//   fixed      r = max(1, floor(N (1 - reduction_fraction)))
//   pragmatic  fixed; the exact model and optimiser state from before each
//              reduction is kept; red_interval steps later (at the next
//              attempt, or at the end of training if that comes first; at
//              once after a reduction at the last step) validation accuracy
//              is measured, and if it fell by
//              more than performance_tolerance below its value before the
//              reduction, that state is restored and reducing stops.
// A block is cut only when r < 0.95 N (the 5% gate).
// Selections: largest (balanced truncation, the method), smallest (keeps the
// weakest balanced states), random (keeps r random diagonal modes, no
// balancing). Randomness comes from LibTorch's default generator, which
// checkpoints save, so resumed runs repeat.
// Optimiser state of the replaced tensors: reduction.optimizer_state
// (reset | slice); see docs/compression.md for the measurement behind the
// default.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "config/config.h"
#include "training/checkpoint.h"
#include "training/run_history.h"

namespace compressm::training {

class Trainer;

class ReductionPolicy {
 public:
  explicit ReductionPolicy(const config::Config& config);

  // After optimiser step `steps_done`: HSV logging and reductions when due.
  void after_step(int64_t steps_done, Trainer& trainer);

  // Whether after_step(steps_done) does anything (HSV log, pragmatic check,
  // reduction attempt): the trainer then has every step's result in first.
  bool acts_after(int64_t steps_done, const RunHistory& history) const;

  // True when a reduction is tried after `steps_done` steps.
  bool is_attempt_step(int64_t steps_done) const;
  // The first `steps_done` on the red_interval grid whose step (0-based
  // index steps_done - 1) is at or after red_start: an attempt when
  // is_attempt_step says so (it may lie past red_end); 0 when the mode is none.
  int64_t first_attempt_step() const;

  // The pre-reduction snapshot a pragmatic check may restore (saved in
  // checkpoints as rollback.bin), and its restoration after a resume.
  const std::optional<CheckpointContents>& pending_snapshot() const { return snapshot_; }
  void set_pending_snapshot(std::optional<CheckpointContents> snapshot) { snapshot_ = std::move(snapshot); }

 private:
  void reduce_all_blocks(int64_t steps_done, Trainer& trainer);
  void check_pragmatic(int64_t steps_done, Trainer& trainer);
  void log_hsv(int64_t steps_done, Trainer& trainer);

  config::Config config_;
  std::optional<CheckpointContents> snapshot_;
};

// One line for the log: "step 300: block 0 reduced 256 -> 47 (largest), ...".
std::string format_event(const ReductionEvent& event);

}  // namespace compressm::training
