#include "training/progress_reporter.h"

#include <cstdio>

namespace compressm::training {

namespace {

std::string dims_text(const std::vector<int64_t>& dims) {
  std::string text = "[";
  for (size_t i = 0; i < dims.size(); ++i) text += (i ? "," : "") + std::to_string(dims[i]);
  return text + "]";
}

std::string duration_text(double seconds) {
  if (!(seconds >= 0) || seconds > 1e7) return "?";
  const long s = static_cast<long>(seconds + 0.5);
  char text[32];
  if (s >= 3600) std::snprintf(text, sizeof text, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  else std::snprintf(text, sizeof text, "%ld:%02ld", s / 60, s % 60);
  return text;
}

}  // namespace

ProgressReporter::ProgressReporter(std::ostream& out, bool is_terminal, int64_t num_steps, BackgroundTasks* writer)
    : out_(out), writer_(writer), is_terminal_(is_terminal), num_steps_(num_steps) {}

void ProgressReporter::write(std::string text) {
  if (!writer_) {
    out_ << text << std::flush;
    return;
  }
  writer_->post([&out = out_, text = std::move(text)] { out << text << std::flush; });
}

std::string ProgressReporter::line(int64_t step, double loss, double train_accuracy, double val_accuracy,
                                   const std::vector<int64_t>& state_dims, double steps_per_second) const {
  const double eta = steps_per_second > 0 ? (num_steps_ - step) / steps_per_second : -1;
  char val[16] = "-";
  if (val_accuracy >= 0) std::snprintf(val, sizeof val, "%.2f%%", 100 * val_accuracy);
  char text[256];
  std::snprintf(text, sizeof text, "step %lld/%lld  loss %.4f  train %.2f%%  val %s  N %s  %.1f steps/s  ETA %s",
                static_cast<long long>(step), static_cast<long long>(num_steps_), loss, 100 * train_accuracy, val,
                dims_text(state_dims).c_str(), steps_per_second, duration_text(eta).c_str());
  return text;
}

void ProgressReporter::step(int64_t step, double loss, double train_accuracy, double val_accuracy,
                            const std::vector<int64_t>& state_dims, double steps_per_second) {
  if (!is_terminal_) return;
  const auto now = std::chrono::steady_clock::now();
  if (line_open_ && now - last_draw_ < std::chrono::milliseconds(200)) return;
  last_draw_ = now;
  write("\r\033[K" + line(step, loss, train_accuracy, val_accuracy, state_dims, steps_per_second));
  line_open_ = true;
}

void ProgressReporter::evaluation(const EvalRecord& r, double steps_per_second) {
  write((line_open_ ? "\r\033[K" : "") + line(r.step, r.loss, r.train_accuracy, r.val_accuracy, r.state_dims,
                                                steps_per_second) + "\n");
  line_open_ = false;
}

void ProgressReporter::finish() {
  if (line_open_) write("\n");
  line_open_ = false;
  if (writer_) writer_->drain();
}

void ProgressReporter::message(const std::string& text) {
  if (line_open_) write("\n");
  line_open_ = false;
  write(text + "\n");
}

void ProgressReporter::print_summary(std::ostream& out, const RunHistory& history, const RunTotals& totals,
                                     int64_t steps_done, double steps_per_second) {
  char row[512];
  out << "\n   step      loss   train%     val%    test%  N\n";
  for (const EvalRecord& r : history.evals) {
    std::snprintf(row, sizeof row, "%7lld  %8.4f  %7.2f  %7.2f  %7.2f  %s\n", static_cast<long long>(r.step),
                  r.loss, 100 * r.train_accuracy, 100 * r.val_accuracy, 100 * r.test_accuracy,
                  dims_text(r.state_dims).c_str());
    out << row;
  }
  out << "(test%: the test accuracy at the best validation step so far; the test set is measured only when\n"
         " the validation accuracy improves, as in the reference)\n";
  std::snprintf(row, sizeof row,
                "test at best val %.2f%% (step %lld)  final test %.2f%%  N %s  %lld steps in %s (%.1f steps/s, %.1f without "
                "evaluation, %.1f after 20 steps, median step %.3f ms, %s)  data wait %.1f%%\n",
                100 * history.best_test_accuracy, static_cast<long long>(history.best_step),
                100 * totals.final_test_accuracy, dims_text(totals.final_state_dims).c_str(),
                static_cast<long long>(steps_done), duration_text(totals.wall_time_s).c_str(), steps_per_second,
                totals.train_steps_per_s, totals.steady_steps_per_s, totals.step_ms_median, totals.device.c_str(),
                100 * totals.data_wait_fraction);
  out << row;
  if (!history.reductions.empty()) {
    int64_t kept = 0, rolled_back = 0;
    for (const ReductionEvent& e : history.reductions) (e.rolled_back ? rolled_back : kept) += 1;
    std::snprintf(row, sizeof row, "reductions: %lld kept, %lld rolled back\n", static_cast<long long>(kept),
                  static_cast<long long>(rolled_back));
    out << row;
  }
  out << std::flush;
}

}  // namespace compressm::training
