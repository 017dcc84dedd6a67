#include "training/reduction_policy.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "training/block_reduction.h"
#include "training/trainer.h"

namespace compressm::training {

ReductionPolicy::ReductionPolicy(const config::Config& config) : config_(config) {}

bool ReductionPolicy::is_attempt_step(int64_t steps_done) const {
  const auto& r = config_.reduction;
  const int64_t s = steps_done - 1;  // 0-based index of the step just taken
  return r.mode != config::ReductionMode::kNone && s >= r.red_start && s < r.red_end &&
         steps_done % r.red_interval == 0;
}

int64_t ReductionPolicy::first_attempt_step() const {
  const auto& r = config_.reduction;
  if (r.mode == config::ReductionMode::kNone) return 0;
  return (r.red_start / r.red_interval + 1) * r.red_interval;  // the first multiple with steps_done - 1 >= red_start
}

namespace {

bool logs_hsv(const config::Config& config, int64_t steps_done) {
  return config.reduction.hsv_interval > 0 && steps_done % config.reduction.hsv_interval == 0;
}

// The check is due at check_step, or at the end of training if that comes
// first (a checkpoint of an earlier version may hold a later check_step).
bool checks_pragmatic(const config::Config& config, int64_t steps_done, const RunHistory& history) {
  const int64_t due = history.pragmatic.check_step;
  return config.reduction.mode == config::ReductionMode::kPragmatic && due >= 0 &&
         std::min(due, config.training.num_steps) == steps_done;
}

}  // namespace

bool ReductionPolicy::acts_after(int64_t steps_done, const RunHistory& history) const {
  return logs_hsv(config_, steps_done) || checks_pragmatic(config_, steps_done, history) ||
         (is_attempt_step(steps_done) && !history.pragmatic.stopped);
}

void ReductionPolicy::after_step(int64_t steps_done, Trainer& trainer) {
  if (logs_hsv(config_, steps_done)) log_hsv(steps_done, trainer);
  if (checks_pragmatic(config_, steps_done, trainer.mutable_history())) check_pragmatic(steps_done, trainer);
  if (is_attempt_step(steps_done) && !trainer.mutable_history().pragmatic.stopped)
    reduce_all_blocks(steps_done, trainer);
}

void ReductionPolicy::log_hsv(int64_t steps_done, Trainer& trainer) {
  std::vector<std::vector<double>> hsv = blocks_hsv(trainer.model()->lru_layers(), at::get_num_threads());
  for (size_t b = 0; b < hsv.size(); ++b)
    trainer.mutable_history().hsv_log.push_back({steps_done, static_cast<int64_t>(b), std::move(hsv[b])});
}

void ReductionPolicy::reduce_all_blocks(int64_t steps_done, Trainer& trainer) {
  const bool pragmatic = config_.reduction.mode == config::ReductionMode::kPragmatic;
  RunHistory& history = trainer.mutable_history();
  if (pragmatic) {
    history.pragmatic.baseline_val = trainer.validation_accuracy();
    snapshot_ = trainer.snapshot();
  }
  // The blocks' linear algebra runs side by side on the training threads' cores
  // (the training step waits for it anyway).
  auto layers = trainer.model()->lru_layers();
  bool changed = false;
  for (std::optional<ReductionEvent>& event :
       reduce_blocks(layers, trainer.optimizer(), config_.reduction, steps_done, at::get_num_threads())) {
    if (!event) continue;
    changed = true;
    trainer.note(format_event(*event));
    history.reductions.push_back(std::move(*event));
  }
  if (changed) trainer.rebuild_optimizer();
  if (pragmatic) {
    if (changed) {
      // At the next attempt, or at the end of training if that comes first
      // (a reduction at the last step is checked at once, untrained).
      history.pragmatic.check_step =
          std::min(steps_done + config_.reduction.red_interval, config_.training.num_steps);
      if (history.pragmatic.check_step == steps_done) check_pragmatic(steps_done, trainer);
    } else {
      snapshot_.reset();
    }
  }
}

void ReductionPolicy::check_pragmatic(int64_t steps_done, Trainer& trainer) {
  RunHistory& history = trainer.mutable_history();
  PragmaticState& state = history.pragmatic;
  state.check_step = -1;
  const double val = trainer.validation_accuracy();
  const double floor = state.baseline_val - config_.reduction.performance_tolerance;
  if (val >= floor || !snapshot_) {
    snapshot_.reset();
    return;
  }
  // Undo the last reduction: every event of its step is rolled back.
  const int64_t reduced_at = history.reductions.empty() ? -1 : history.reductions.back().step;
  for (ReductionEvent& e : history.reductions)
    if (e.step == reduced_at) e.rolled_back = true;
  trainer.rollback_to(*snapshot_);
  snapshot_.reset();
  state.stopped = true;
  state.rollback_step = steps_done;
  char line[200];
  std::snprintf(line, sizeof line,
                "step %lld: val accuracy %.2f%% fell below %.2f%% (%.2f%% before the reduction at step %lld): "
                "rolled back, no further reductions",
                static_cast<long long>(steps_done), 100 * val, 100 * floor, 100 * state.baseline_val,
                static_cast<long long>(reduced_at));
  trainer.note(line);
}

std::string format_event(const ReductionEvent& e) {
  char line[256];
  if (e.selection == "random") {
    std::snprintf(line, sizeof line, "step %lld: block %lld reduced %lld -> %lld (random modes), %.0f ms",
                  static_cast<long long>(e.step), static_cast<long long>(e.block), static_cast<long long>(e.old_dim),
                  static_cast<long long>(e.new_dim), e.wall_ms);
  } else {
    const double total = e.kept_energy + e.discarded_energy;
    char error[64];
    if (!e.hinf_measured)
      std::snprintf(error, sizeof error, "error not measured (N H^2 too large)");
    else if (!std::isfinite(e.hinf_error))
      std::snprintf(error, sizeof error, "error not finite (overflow)");
    else
      std::snprintf(error, sizeof error, "error %.3g", e.hinf_error);
    std::snprintf(line, sizeof line,
                  "step %lld: block %lld reduced %lld -> %lld (%s), kept %.2f%% of HSV energy, H-inf bound %.3g, "
                  "%s, %.0f ms (+%.0f ms measuring the error)",
                  static_cast<long long>(e.step), static_cast<long long>(e.block), static_cast<long long>(e.old_dim),
                  static_cast<long long>(e.new_dim), e.selection.c_str(),
                  total > 0 ? 100 * e.kept_energy / total : 100.0, e.hinf_bound, error, e.wall_ms, e.hinf_ms);
  }
  return line;
}

}  // namespace compressm::training
