// What a run has measured so far: one record per evaluation, the best model's
// metrics, and the training sums since the last evaluation. Saved in every
// checkpoint (so a resumed run continues them exactly) and written as the run
// folder's metrics.json and curve.csv (docs/design.md §3). No LibTorch here.
#pragma once

#include <cstdint>
#include <map>
#include <utility>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace compressm::training {

struct EvalRecord {
  int64_t step = 0;              // training steps done when evaluated
  double loss = 0;               // mean training loss since the previous evaluation
  double train_accuracy = 0;     // training accuracy since the previous evaluation
  double val_accuracy = 0;
  // Test accuracy of the best-validation model as of this evaluation: the test
  // split is only measured when val accuracy improves (the reference's rule).
  double test_accuracy = 0;
  std::vector<int64_t> state_dims;  // N per block
  double elapsed_s = 0;          // wall time since the run started (across resumes)
};

// One in-training reduction of one block (docs/design.md §2).
struct ReductionEvent {
  int64_t step = 0;               // training steps done when it happened
  int64_t block = 0;
  int64_t old_dim = 0, new_dim = 0;
  std::string selection;          // largest | smallest | random
  double kept_energy = 0;         // plain sum of the kept HSVs (NaN for random)
  double discarded_energy = 0;    // plain sum of the discarded HSVs (NaN for random)
  double hinf_bound = 0;          // 2 * discarded_energy (NaN for random: no bound)
  double hinf_error = 0;          // ||G - G_r||_inf measured on a frequency grid (NaN: not
                                  // measured, or not finite)
  bool hinf_measured = true;      // false: skipped, the grid would cost too much (large N H^2)
  double wall_ms = 0;             // HSVs + truncation + conversion (on a worker thread, beside
                                  // the other blocks) + optimiser surgery
  double hinf_ms = 0;             // measuring hinf_error (a diagnostic, not part of the reduction)
  std::vector<double> hsv;        // the block's HSVs before, descending
  std::vector<std::string> guards;  // numerical guards that fired (lru_parameters.h)
  bool rolled_back = false;       // pragmatic: undone by a rollback
};

// HSV spectrum of one block at one step (reduction.hsv_interval).
struct HsvRecord {
  int64_t step = 0;
  int64_t block = 0;
  std::vector<double> hsv;  // descending
};

// Pragmatic mode's bookkeeping (checkpointed with the history).
struct PragmaticState {
  bool stopped = false;        // a rollback happened: no more reductions
  int64_t check_step = -1;     // a reduction awaits its validation check at this step; -1 = none
  double baseline_val = -1;    // val accuracy just before that reduction
  int64_t rollback_step = -1;  // step of the rollback, -1 = none
};

struct RunHistory {
  std::vector<EvalRecord> evals;
  std::vector<ReductionEvent> reductions;
  std::vector<HsvRecord> hsv_log;
  PragmaticState pragmatic;
  // Training-step time by model size: dims_key ("256", "47;52") -> (seconds, steps).
  std::map<std::string, std::pair<double, int64_t>> step_seconds;
  double best_val_accuracy = -1;  // -1: nothing evaluated yet
  double best_test_accuracy = 0;
  int64_t best_step = -1;
  // Sums over the training steps since the last evaluation.
  double loss_sum = 0;
  int64_t correct_sum = 0;
  int64_t example_sum = 0;
  int64_t batch_sum = 0;

  // Exact round trip (nlohmann prints doubles in shortest round-trip form).
  nlohmann::json to_json() const;
  // Throws std::invalid_argument for a document of the wrong shape.
  static RunHistory from_json(const nlohmann::json& document);
};

struct RunTotals {
  std::vector<int64_t> final_state_dims;
  double final_test_accuracy = 0;  // the final model's test accuracy (what `eval` reports)
  double wall_time_s = 0;
  double data_wait_fraction = 0;   // share of step time spent waiting for batches
  // Steps per second of this invocation's training loop with evaluation and
  // checkpoint capture left out (data loading included): what the input
  // pipeline and the step sustain together.
  double train_steps_per_s = 0;
  // The same after this invocation's first kSteadyAfterSteps steps (warm-up,
  // CUDA graph capture, lazy loading of CUDA modules), 0 for shorter runs:
  // the figure to hold against `compressm bench`'s steps_per_s, which leaves
  // out its warm-up steps too. Wall time: an idle device waiting for the
  // input pipeline counts.
  static constexpr int64_t kSteadyAfterSteps = 20;
  double steady_steps_per_s = 0;
  // Median time of this invocation's training steps (batch upload, forward,
  // backward, optimiser): wall time of the step on the CPU and eagerly on
  // CUDA; for a replayed CUDA graph the device's time between events around
  // it (graphed_step.h), which leaves out host work and idle gaps.
  double step_ms_median = 0;
  std::string device = "cpu";
  // The step at which TrainerOptions::stop ended the loop (a checkpoint of it
  // is in the run folder; no final model, no metrics.json), -1 if the run ended.
  int64_t interrupted_at = -1;
};

// metrics.json: steps, train_accuracy, val_accuracy, test_accuracy (a list per
// evaluation), best_test_accuracy, best_step, final_state_dims,
// reduction_history (one object per ReductionEvent: step, block, old_dim,
// new_dim and ours), hsv_history, final_test_accuracy, wall_time_s,
// data_wait_fraction, train_steps_per_s, steady_steps_per_s, step_ms_median, device, step_time_ms
// (per state size, the mean training step).
nlohmann::ordered_json metrics_json(const RunHistory& history, const RunTotals& totals);

// N per block joined with ';' ("47;52"): curve.csv's state_dims column and
// the keys of RunHistory::step_seconds.
std::string dims_key(const std::vector<int64_t>& dims);

// curve.csv: header `step,loss,train_acc,val_acc,test_acc,state_dims,elapsed_s`,
// one row per evaluation; state_dims joined with ';'.
std::string curve_csv(const RunHistory& history);

}  // namespace compressm::training
