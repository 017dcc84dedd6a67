// The LRU training engine: builds the model from the config, trains it with
// AdamW (SSM group at lr * ssm_lr_factor without weight decay, docs/design.md §1),
// evaluates, keeps the run folder up to date and checkpoints so a killed run
// resumes to exactly the metrics of an uninterrupted one.
//
// Run folder:
//   config.yaml            the effective config (written by the caller)
//   curve.csv              one row per evaluation (rewritten after each)
//   metrics.json           written at the end (run_history.h)
//   checkpoints/step_NNNNNN/  every checkpoint_every steps (checkpoint.h)
//   final/                 the final model and state
//
// Device: config.device (cpu | cuda). On cuda the model, optimiser state and
// batches live on the GPU; checkpoints, reductions and snapshots go through
// CPU copies. Dropout then draws from the CUDA generator, which checkpoints do
// not save: a resumed CUDA run is not bit-exact. With training.cuda_graphs
// (default) each CUDA step is one graph replay (nn/graphed_step.h).
//
// Determinism (CPU): the model is initialised from torch::manual_seed(seed),
// batches come from the seeded BatchLoader, dropout draws from LibTorch's
// default CPU generator whose state every checkpoint saves; with the same
// thread count the resumed run repeats the uninterrupted one bit for bit.
#pragma once

#include <torch/optim/adamw.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>

#include "config/config.h"
#include "data/batch_loader.h"
#include "data/dataset.h"
#include "nn/graphed_step.h"
#include "nn/lru_model.h"
#include "training/background_tasks.h"
#include "training/checkpoint.h"
#include "training/progress_reporter.h"
#include "training/reduction_policy.h"
#include "training/run_history.h"

namespace compressm::training {

class Trainer;

struct TrainerOptions {
  std::filesystem::path run_dir;    // empty: keep nothing on disk (tests)
  std::ostream* log = &std::cerr;   // progress and the final summary; nullptr = quiet
  bool log_is_terminal = false;     // redraw the progress line in place
  // Called after every optimiser step (and after the in-training reduction,
  // reduction_policy.h) with the number of steps done. If it replaces
  // parameters it must call Trainer::rebuild_optimizer(); it must draw
  // randomness only from the default generator so that checkpoints capture it.
  std::function<void(int64_t steps_done, Trainer& trainer)> after_step;
  // How many optimiser steps' results (loss, correct count) the loop may take
  // in late: with 1 the host queues step k + 1 before it waits for step k, so
  // the device does not idle while the host reads a result back and prepares
  // the next batch. Before an evaluation, a checkpoint, a reduction, an HSV
  // log, after_step and the end, every result is in. -1 (default): 1 for
  // CUDA-graphed steps, 0 otherwise (a CPU step is done when it returns);
  // at most 1 with graphs. Any value gives the same run (tests compare).
  int pipeline_steps = -1;
  // Checked after every step (e.g. set by a SIGINT handler): once true, the
  // loop stops, writes a checkpoint of the last step into run_dir (unless one
  // is there) and run() returns with RunTotals::interrupted_at set, without the
  // final evaluation. `compressm train --resume` goes on from it. Null: never.
  const std::atomic<bool>* stop = nullptr;
};

// Thrown by Trainer::run when a step's loss is not finite: the run diverged
// (typically a learning rate too high for the model). The config's fault, so
// an io::InputError (the CLI exits 2); no checkpoint of the diverged model is
// written.
class TrainingDiverged : public io::InputError {
 public:
  using io::InputError::InputError;
};

class Trainer {
 public:
  // Builds the model (seeded) on config.device and the optimiser. `splits` must
  // outlive the trainer. Throws std::invalid_argument for device cuda without one.
  Trainer(const config::Config& config, const data::Splits& splits, TrainerOptions options);
  ~Trainer();

  // Continues from a checkpoint of a run with the same config, read from the
  // folder `checkpoint` (read_checkpoint; the folder names errors). Throws
  // CheckpointError for a mismatched checkpoint.
  void restore(const CheckpointContents& contents, const std::filesystem::path& checkpoint);

  // Trains until training.num_steps, then measures the final model on the test
  // split, writes final/, then curve.csv and metrics.json. Returns the totals.
  RunTotals run();

  // After restore() of a finished run's final/: writes its metrics.json (the
  // text final/state.json keeps) and curve.csv again, for a run that ended
  // between final/ and metrics.json. False if the checkpoint keeps none.
  bool rewrite_final_metrics() const;

  // Re-creates AdamW's two parameter groups after the parameters changed
  // (a reduction); state is kept for the parameters that have some, and
  // dropped for tensors no longer in the model.
  void rebuild_optimizer();

  // Validation accuracy of the current model (training mode is kept).
  double validation_accuracy();
  // The model and optimiser state (and generator), cloned.
  CheckpointContents snapshot() const;
  // Puts a snapshot's model (at its sizes) and optimiser state back; the
  // generator, step and data position go on.
  void rollback_to(const CheckpointContents& snapshot);
  // A line in the log (below the progress line).
  void note(const std::string& text);
  RunHistory& mutable_history() { return history_; }
  // The in-training reduction, or null for reduction.mode none.
  const ReductionPolicy* reduction_policy() const { return reduction_.get(); }

  nn::LruModel& model() { return model_; }
  torch::optim::AdamW& optimizer() { return *optimizer_; }
  const RunHistory& history() const { return history_; }
  int64_t steps_done() const { return step_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct StepResult {
    double loss = 0;
    int64_t correct = 0;
  };
  // An optimiser step submitted and not yet taken in (TrainerOptions::pipeline_steps).
  struct PendingStep {
    int64_t step = 0;  // its number (1-based)
    int64_t examples = 0;
    bool graphed = false;  // the result is still on the device: graphed_->collect()
    StepResult result;     // otherwise, and its compute time:
    double seconds = 0;
  };
  // Queues one optimiser step on `batch` (runs it, unless graphed).
  void submit_step(data::Batch& batch);
  // Takes in the oldest submitted step's result: history sums, step time.
  void collect_step();
  void collect_all();
  // Throws TrainingDiverged if a step taken in had a non-finite loss.
  void stop_if_diverged();
  CheckpointContents capture(double elapsed_s, double data_wait_s, double loop_s, const std::string& config_yaml) const;
  void set_learning_rates();
  void evaluate_and_record(double elapsed_s, double steps_per_second);
  nlohmann::json checkpoint_state(double elapsed_s, double data_wait_s, double loop_s) const;
  // Queues curve.csv's rewrite (a failure is a warning in the log).
  void write_curve() const;

  config::Config config_;
  const data::Splits& splits_;
  TrainerOptions options_;
  torch::Device device_{torch::kCPU};  // config.device; the reduction itself runs on the CPU
  // CUDA with training.cuda_graphs: the step replayed as a graph, built at the
  // first step after every change of parameters or optimiser state.
  bool use_graphs_ = false;
  nn::LruModel model_{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::unique_ptr<nn::GraphedTrainStep> graphed_;  // holds *optimizer_: declared after it
  // The model's N per block and its dims_key, refreshed by rebuild_optimizer
  // (every change of parameters goes through it).
  std::vector<int64_t> state_dims_;
  std::string dims_key_;
  std::vector<float> step_ms_;  // this invocation's step times (RunTotals::step_ms_median)
  int pipeline_steps_ = 0;
  std::deque<PendingStep> pending_;
  PendingStep last_collected_;  // the newest step taken in
  // The first step taken in with a non-finite loss (step 0: none). Every
  // step is checked as it is taken in, so that no checkpoint follows it.
  PendingStep first_diverged_;
  RunHistory history_;
  int64_t step_ = 0;
  data::LoaderState loader_state_;
  // Totals carried over from before a resume.
  double elapsed_before_ = 0, data_wait_before_ = 0, loop_before_ = 0;
  std::optional<std::string> final_metrics_;  // metrics.json's text, restored from a finished run's final/
  // Progress lines and curve.csv are written here, off the compute thread.
  // Declared before progress_, which posts to it.
  std::unique_ptr<BackgroundTasks> background_ = std::make_unique<BackgroundTasks>();
  std::unique_ptr<ProgressReporter> progress_;
  std::unique_ptr<ReductionPolicy> reduction_;  // null for reduction.mode none
};

}  // namespace compressm::training
