// One training step — forward, cross-entropy, backward and AdamW — captured
// once as a CUDA graph and replayed: a small model's step (sMNIST: one block,
// H = 8) is otherwise bound by the ~400 kernel launches LibTorch makes from
// the CPU, not by the GPU.
//
// To make the step capturable:
//  * the batch is copied into static input tensors before each replay;
//  * the parameters of each (AdamW group, step count) bucket and their AdamW
//    moments become views of one flat buffer each, so the optimiser writes to
//    fixed addresses; the optimiser's own state tensors are those views, so
//    checkpoints, reductions and evaluation see the same values as with the
//    eager step;
//  * the gradients are reset to undefined before each backward pass, so that
//    autograd hands its gradient tensors over instead of adding them into
//    zeroed buffers (one kernel per parameter saved); under capture they are
//    allocated from the graph's memory pool, at the same addresses on every
//    replay;
//  * AdamW runs as one kernel per bucket (kernels::cuda::adamw_step, reading
//    each parameter's gradient where autograd left it) with learning rate,
//    weight decay and bias corrections in a small device tensor updated before
//    each replay (the torch::optim step bakes them in as host numbers). It is
//    the same update as torch::optim::AdamW (decoupled weight decay, bias
//    corrections, eps outside the square root); the step counts in the
//    optimiser's state are kept up to date on the host.
//
// The first kEagerSteps calls run the same arithmetic eagerly on a side stream
// (allocations settle); the next call whose batch has the shape of the last
// eager step captures and replays, later calls of that shape replay. A batch
// of another shape runs eagerly. A failed capture throws c10::Error naming
// training.cuda_graphs=false (the CUDA generator is left expecting a capture,
// so eager steps with dropout could not go on).
//
// The object is tied to the model's current parameters and the optimiser's
// current state tensors: build a new one after a reduction, a rollback or a
// restore (anything that replaces parameters or optimiser state).
#pragma once

#include <torch/optim/adamw.h>
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <utility>

#include "nn/lru_model.h"

namespace compressm::nn {

// True when this build can capture CUDA graphs (CUDA LibTorch).
bool graphs_compiled();

class GraphedTrainStep {
 public:
  static constexpr int kEagerSteps = 3;

  // `model` on a CUDA device; `optimizer` holds the model's parameters in
  // its groups. lr and weight_decay are read from each group's options at
  // every step; betas and eps once, here. Don't call the optimiser's
  // zero_grad or step while this object lives. Throws c10::Error in a build
  // without CUDA.
  GraphedTrainStep(LruModel model, torch::optim::AdamW& optimizer);
  ~GraphedTrainStep();
  GraphedTrainStep(const GraphedTrainStep&) = delete;
  GraphedTrainStep& operator=(const GraphedTrainStep&) = delete;

  // One optimiser step on inputs `x` and int64 labels `y`, on the model's
  // device or on the host (then staged through page-locked buffers and copied
  // without blocking): returns the loss and the number of correct predictions.
  // submit() then collect(); no other step may be pending.
  std::pair<double, int64_t> step(const torch::Tensor& x, const torch::Tensor& y);

  // The same step in two halves, so that the host can queue the next step
  // before it waits for this one and the device never idles between them
  // (the trainer's loop). submit() queues the step and returns; a replayed
  // step's loss and correct count are copied back without blocking. At most
  // kMaxPending steps may be submitted and not yet collected (their batches'
  // page-locked buffers are reused after that). Warm-up, capture and steps
  // of another batch shape run to completion inside submit().
  static constexpr int kMaxPending = 2;
  void submit(const torch::Tensor& x, const torch::Tensor& y);
  // Waits for the oldest submitted step not yet collected; its loss and
  // number of correct predictions. All pending steps must have been
  // submitted on the same CUDA stream.
  std::pair<double, int64_t> collect();
  // Steps submitted and not yet collected.
  int pending() const;
  // Seconds the step collect() last returned took: for a replayed step the
  // device time between CUDA events around its input copies, replay and
  // result copy (the host's work and idle gaps between steps left out); for
  // a warm-up, capture or other-shape step, the wall time of its submit().
  double collected_seconds() const;

  // Whether the graph has been captured (false while warming up or after a
  // failed capture).
  bool captured() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace compressm::nn
