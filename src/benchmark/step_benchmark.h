// Training-step benchmark: the step `compressm train` runs (forward,
// cross-entropy, backward, AdamW with the SSM group at lr * ssm_lr_factor
// without weight decay) on one fixed synthetic batch, on the CPU or a CUDA
// device, without data pipeline, evaluation or checkpoints. Used by
// `compressm bench` and bench/bench_train_step. No command line here.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "nn/lru_model.h"

namespace compressm::benchmark {

struct StepBenchOptions {
  nn::LruModelOptions model;   // sizes, precision, vocab_size > 0 = token inputs
  int64_t batch_size = 50;     // B
  int64_t length = 784;        // L
  int64_t steps = 30;          // timed steps
  int64_t warmup_steps = 3;    // untimed steps first (allocator, caches, cuBLAS handles)
  double lr = 1e-3;
  double weight_decay = 0.01;
  double ssm_lr_factor = 0.5;
  uint64_t seed = 0;
  torch::Device device = torch::kCPU;
  // On CUDA: each step replayed as one CUDA graph (nn/graphed_step.h), as
  // `compressm train` does with training.cuda_graphs.
  bool cuda_graph = false;
  // With a graph: queue each timed step before reading the previous one back
  // (GraphedTrainStep::submit / collect, the trainer's loop), so that the
  // device does not idle while the host waits; a step's time is then the
  // wall time between two collected results. false: each step waits for its
  // loss before the next is launched (synchronous).
  bool queue_ahead = true;
};

struct StepBenchResult {
  std::vector<double> step_ms;  // wall time of each timed step, in order
  double median_ms = 0;         // median of step_ms
  double cpu_median_ms = 0;     // median process CPU time per step (all threads)
  double final_loss = 0;        // last step's loss (finite: the steps trained)
  bool graph_captured = false;  // cuda_graph: whether the capture succeeded
  int64_t warmup_steps = 0;     // untimed steps run (with a graph at least kEagerSteps + 1)
  bool queued_ahead = false;    // whether the timed steps were queued ahead (a captured graph and queue_ahead)
};

// Builds the model (seeded) on `device`, runs warm-up then timed steps; each
// step's loss is read back to the host (as the trainer does), so a CUDA
// step's time includes its kernels: synchronously, or one step queued ahead
// (queue_ahead with a captured graph). Throws std::invalid_argument for
// bad sizes and c10::Error from LibTorch (e.g. no CUDA device).
StepBenchResult run_step_bench(const StepBenchOptions& options);

// Median of `values` (the upper one of the two middle values for an even
// count); 0 for none.
double median(std::vector<double> values);

}  // namespace compressm::benchmark
