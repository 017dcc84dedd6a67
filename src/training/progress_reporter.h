// The live progress line of a training run on stderr:
//   step 1200/3000  loss 0.4123  train 87.50%  val 91.20%  N [64]  41.3 steps/s  ETA 0:44
// On a terminal it is redrawn in place (\r) a few times a second; otherwise
// (a log file) one line is written per evaluation. With a BackgroundTasks the
// writing itself happens on its thread (only the formatting stays here).
#pragma once

#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "training/background_tasks.h"
#include "training/run_history.h"

namespace compressm::training {

class ProgressReporter {
 public:
  ProgressReporter(std::ostream& out, bool is_terminal, int64_t num_steps, BackgroundTasks* writer = nullptr);

  // After each training step; redraws on a terminal at most every 0.2 s.
  void step(int64_t step, double loss, double train_accuracy, double val_accuracy,
            const std::vector<int64_t>& state_dims, double steps_per_second);
  // After each evaluation: always prints.
  void evaluation(const EvalRecord& record, double steps_per_second);
  // Ends the in-place line.
  void finish();
  // A line of its own (e.g. a reduction), below the progress line.
  void message(const std::string& text);

  // Final table: one row per evaluation and the summary figures.
  static void print_summary(std::ostream& out, const RunHistory& history, const RunTotals& totals,
                            int64_t steps_done, double steps_per_second);

 private:
  void write(std::string text);
  std::string line(int64_t step, double loss, double train_accuracy, double val_accuracy,
                   const std::vector<int64_t>& state_dims, double steps_per_second) const;

  std::ostream& out_;
  BackgroundTasks* writer_;
  bool is_terminal_;
  int64_t num_steps_;
  bool line_open_ = false;
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace compressm::training
