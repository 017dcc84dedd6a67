// One reduction of one LRU block inside a training run: choose the rank from
// the block's HSVs, cut the block (balanced truncation or an ablation), put
// the new LRU parameters in place and carry the optimiser state across.
#pragma once

#include <torch/optim/adamw.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "linalg/lru_reduction.h"
#include "nn/lru_layer.h"
#include "training/run_history.h"

namespace compressm::training {

// The rank rule of `reduction` for a block of `state_dim` states, gated (5%).
// Throws std::invalid_argument for mode none.
struct RankChoice {
  bool by_energy = true;
  double energy_kept = 0.99;
  int64_t rank = 0;
};
RankChoice rank_choice(const config::ReductionConfig& reduction, int64_t state_dim);

// Reduces `layer` (block `block`, after `steps_done` steps) if the rule and the
// 5% gate allow it. The layer's state tensors are replaced; their AdamW state
// is dropped (reset) or sliced (slice) per reduction.optimizer_state. The
// caller must then rebuild the optimiser's parameter groups. Returns the event,
// or nothing when the block is kept as it is.
std::optional<ReductionEvent> reduce_block(nn::LruLayer& layer, torch::optim::AdamW& optimizer,
                                           const config::ReductionConfig& reduction, int64_t block,
                                           int64_t steps_done);

// reduce_block for every layer, the linear algebra of up to `jobs` blocks at
// a time (linalg::run_concurrently), the changes to the model and optimiser
// one block after the other on the calling thread. Same results as calling
// reduce_block for each layer in order.
std::vector<std::optional<ReductionEvent>> reduce_blocks(std::vector<nn::LruLayer>& layers,
                                                         torch::optim::AdamW& optimizer,
                                                         const config::ReductionConfig& reduction,
                                                         int64_t steps_done, int jobs);

// The balanced cut of one layer, computed but not applied: the truncation
// (HSVs, rank, energies, bound), the reduced system re-diagonalised into LRU
// parameters, and the guards that fired (linalg's and the conversion's, as
// "guard: detail"). `parameters` and `reduced` are set only when
// cut.rank < full.state_dim(). Shared by the in-training reduction and
// `compressm compress`.
struct LayerCut {
  linalg::DiagonalSystem full;     // the layer before the cut
  linalg::LruReduction cut;
  linalg::LruParameters parameters;
  linalg::DiagonalSystem reduced;  // what `parameters` compute
  std::vector<std::string> guards;
};
// Works on the layer's system (layer_systems), without LibTorch: safe on any thread.
LayerCut balanced_cut(linalg::DiagonalSystem full, const linalg::RankRule& rule,
                      linalg::KeptStates kept = linalg::KeptStates::kLargest);

// Each layer's current system (to_system), in order: what the concurrent
// plans work on, read on the calling thread.
std::vector<linalg::DiagonalSystem> layer_systems(const std::vector<nn::LruLayer>& layers);

// The two halves of reduce_block. The plan is the linear algebra (HSVs, rank,
// the cut, the H-inf error of a balanced cut) and touches no tensor, so plans
// of several blocks may be made at once; applying it changes the layer and the
// optimiser state and draws the random modes of the random selection (from
// LibTorch's generator), on the training thread, in block order.
struct BlockPlan {
  linalg::RankRule rule;
  std::optional<LayerCut> cut;  // largest / smallest selections
  linalg::DiagonalSystem full;  // random selection: the layer before the cut
  linalg::VectorXd hsv;         // random selection: its HSVs
  double hinf_error = std::numeric_limits<double>::quiet_NaN();
  bool hinf_measured = false;  // false: not cut, or the grid would cost more than kMaxHinfWork
  double plan_ms = 0.0, hinf_ms = 0.0;
};
BlockPlan plan_block_reduction(linalg::DiagonalSystem full, const config::ReductionConfig& reduction);
std::optional<ReductionEvent> apply_block_reduction(BlockPlan plan, nn::LruLayer& layer,
                                                    torch::optim::AdamW& optimizer,
                                                    const config::ReductionConfig& reduction, int64_t block,
                                                    int64_t steps_done);

// HSVs of every layer's current system, descending, up to `jobs` layers at a time.
std::vector<std::vector<double>> blocks_hsv(const std::vector<nn::LruLayer>& layers, int jobs);

}  // namespace compressm::training
