#include "training/trainer.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <tuple>

#include "data/input_scaling_json.h"
#include "io/atomic_file.h"
#include "nn/fused_ops.h"
#include "training/checkpoint.h"
#include "training/checkpoint_writer.h"
#include "training/learning_rate_schedule.h"
#include "training/model_evaluation.h"
#include "training/trained_model.h"

namespace compressm::training {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

constexpr size_t kSsmGroup = 0, kOtherGroup = 1;

// curve.csv is a log, rewritten whole at every evaluation: a failed write is
// a warning in `log` (`later` says what happens next), and training goes on.
void write_curve_or_warn(const fs::path& path, const std::string& csv, std::ostream* log, const char* later) {
  try {
    io::write_file_atomically(path, csv);
  } catch (const std::exception& e) {
    if (log) *log << "compressm: warning: " << e.what() << later << "\n";
  }
}

}  // namespace

Trainer::Trainer(const config::Config& config, const data::Splits& splits, TrainerOptions options)
    : config_(config),
      splits_(splits),
      options_(std::move(options)),
      device_(training_device(config_)),
      use_graphs_(device_.is_cuda() && config_.training.cuda_graphs) {
  torch::manual_seed(static_cast<uint64_t>(config_.seed));
  model_ = nn::LruModel(model_options(config_, splits_.train.channels, splits_.train.num_classes));
  model_->to(device_);
  rebuild_optimizer();
  pipeline_steps_ = options_.pipeline_steps < 0 ? (use_graphs_ ? 1 : 0) : options_.pipeline_steps;
  if (use_graphs_) pipeline_steps_ = std::min(pipeline_steps_, nn::GraphedTrainStep::kMaxPending - 1);
  if (config_.reduction.mode != config::ReductionMode::kNone)
    reduction_ = std::make_unique<ReductionPolicy>(config_);
  if (options_.log)
    progress_ = std::make_unique<ProgressReporter>(*options_.log, options_.log_is_terminal, config_.training.num_steps,
                                                   background_.get());
}

Trainer::~Trainer() = default;

void Trainer::rebuild_optimizer() {
  collect_all();
  graphed_.reset();  // it holds the old optimiser and its state tensors
  state_dims_ = model_->state_dims();
  dims_key_ = dims_key(state_dims_);
  const auto& t = config_.training;
  // Keep the moments of the model's current parameters only: a stale entry
  // of a freed tensor could be found again by a new tensor at its address.
  std::unique_ptr<torch::optim::AdamW> old = std::move(optimizer_);
  optimizer_ = nn::make_lru_adamw(model_, t.lr * t.ssm_lr_factor, t.lr, t.weight_decay);
  if (old) {
    for (const auto& parameter : model_->parameters()) {
      const auto found = old->state().find(optimizer_key(parameter));
      if (found != old->state().end() && found->second)
        optimizer_->state()[found->first] = found->second->clone();
    }
  }
}

double Trainer::validation_accuracy() {
  return evaluate_accuracy(model_, splits_.val, config_.training.batch_size).accuracy;
}

CheckpointContents Trainer::snapshot() const { return capture_checkpoint(model_, *optimizer_, {}, ""); }

void Trainer::rollback_to(const CheckpointContents& snapshot) {
  const fs::path source = "<pre-reduction snapshot>";
  const bool training = model_->is_training();
  collect_all();
  graphed_.reset();
  model_ = nn::LruModel(saved_model_options(config_, snapshot, source));
  model_->to(device_);
  optimizer_.reset();
  rebuild_optimizer();
  restore_model(model_, snapshot, source);
  restore_optimizer(*optimizer_, model_, snapshot, source, /*restore_generator=*/false);
  model_->train(training);
}

void Trainer::note(const std::string& text) {
  if (progress_) progress_->message(text);
}

void Trainer::set_learning_rates() {
  const auto& t = config_.training;
  auto& groups = optimizer_->param_groups();
  const double ssm_peak = t.lr * t.ssm_lr_factor;
  static_cast<torch::optim::AdamWOptions&>(groups[kSsmGroup].options())
      .lr(scheduled_learning_rate(ssm_peak, step_, t.num_steps, t.use_warmup_cosine));
  static_cast<torch::optim::AdamWOptions&>(groups[kOtherGroup].options())
      .lr(scheduled_learning_rate(t.lr, step_, t.num_steps, t.use_warmup_cosine));
}

void Trainer::restore(const CheckpointContents& contents, const fs::path& checkpoint) {
  collect_all();
  graphed_.reset();  // before the optimiser it refers to can go
  const std::string state_source = (checkpoint / "state.json").string();
  try {
    const nlohmann::json& s = contents.state;
    // A reduced run resumes at its reduced sizes: rebuild the model from the
    // checkpoint's tensors and start a fresh optimiser to restore into.
    const nn::LruModelOptions saved = saved_model_options(config_, contents, checkpoint);
    if (saved.input_dim != model_->options().input_dim || saved.num_classes != model_->options().num_classes ||
        saved.vocab_size != model_->options().vocab_size)
      throw CheckpointError((checkpoint / "model.bin").string() + ": the model does not fit the run's dataset");
    if (saved.block_state_dims != model_->state_dims()) {
      model_ = nn::LruModel(saved);
      model_->to(device_);
      optimizer_.reset();
      rebuild_optimizer();
    }
    restore_model(model_, contents, checkpoint);
    restore_optimizer(*optimizer_, model_, contents, checkpoint);
    if (reduction_ && !contents.rollback_tensors.empty())
      reduction_->set_pending_snapshot(unpack_snapshot(contents.rollback_tensors));
    step_ = s.at("step").get<int64_t>();
    loader_state_.epoch = s.at("loader").at("epoch").get<int64_t>();
    loader_state_.position = s.at("loader").at("position").get<int64_t>();
    history_ = RunHistory::from_json(s.at("history"));
    elapsed_before_ = s.at("elapsed_s").get<double>();
    data_wait_before_ = s.at("data_wait_s").get<double>();
    loop_before_ = s.at("loop_s").get<double>();
    final_metrics_.reset();
    if (s.contains("metrics_json")) final_metrics_ = s.at("metrics_json").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(state_source + ": " + e.what());
  } catch (const std::invalid_argument& e) {
    throw CheckpointError(state_source + ": " + e.what());
  }
  if (step_ < 0 || step_ > config_.training.num_steps)
    throw CheckpointError(state_source + ": step " + std::to_string(step_) + " outside the run's " +
                          std::to_string(config_.training.num_steps) + " steps");
  // data_dir may change on resume: the saved position must fit the data read now.
  const int64_t examples = splits_.train.count();
  if (loader_state_.epoch < 0 || loader_state_.position < 0 || loader_state_.position > examples)
    throw CheckpointError(state_source + ": data position {epoch " + std::to_string(loader_state_.epoch) +
                          ", example " + std::to_string(loader_state_.position) + "} does not fit the " +
                          std::to_string(examples) + " training examples read now (another data_dir?)");
}

nlohmann::json Trainer::checkpoint_state(double elapsed_s, double data_wait_s, double loop_s) const {
  return {{"step", step_},
          {"loader", {{"epoch", loader_state_.epoch}, {"position", loader_state_.position}}},
          {"state_dims", model_->state_dims()},
          {"history", history_.to_json()},
          {"elapsed_s", elapsed_s},
          {"data_wait_s", data_wait_s},
          {"loop_s", loop_s},
          {"input_scaling", data::input_scaling_json(splits_.train)}};
}

void Trainer::write_curve() const {
  if (options_.run_dir.empty()) return;
  background_->post([path = options_.run_dir / "curve.csv", csv = curve_csv(history_), log = options_.log] {
    write_curve_or_warn(path, csv, log, " (written again at the next evaluation)");
  });
}

bool Trainer::rewrite_final_metrics() const {
  if (!final_metrics_ || options_.run_dir.empty()) return false;
  io::write_file_atomically(options_.run_dir / "metrics.json", *final_metrics_);
  io::write_file_atomically(options_.run_dir / "curve.csv", curve_csv(history_));
  return true;
}

void Trainer::evaluate_and_record(double elapsed_s, double steps_per_second) {
  const int64_t batch_size = config_.training.batch_size;
  EvalRecord record;
  record.step = step_;
  record.loss = history_.batch_sum > 0 ? history_.loss_sum / history_.batch_sum : 0.0;
  record.train_accuracy =
      history_.example_sum > 0 ? static_cast<double>(history_.correct_sum) / history_.example_sum : 0.0;
  record.val_accuracy = evaluate_accuracy(model_, splits_.val, batch_size).accuracy;
  if (record.val_accuracy > history_.best_val_accuracy) {
    history_.best_val_accuracy = record.val_accuracy;
    history_.best_test_accuracy = evaluate_accuracy(model_, splits_.test, batch_size).accuracy;
    history_.best_step = step_;
  }
  record.test_accuracy = history_.best_test_accuracy;
  record.state_dims = model_->state_dims();
  record.elapsed_s = elapsed_s;
  history_.evals.push_back(record);
  history_.loss_sum = 0;
  history_.correct_sum = history_.example_sum = history_.batch_sum = 0;
  if (progress_) progress_->evaluation(record, steps_per_second);
  write_curve();
}

void Trainer::submit_step(data::Batch& batch) {
  const Clock::time_point start = Clock::now();  // compute only: the data wait is measured apart
  PendingStep pending;
  pending.step = step_ + 1;
  pending.examples = batch.size;
  if (use_graphs_) {
    // The host batch goes straight into the graph's inputs (graphed_step.h).
    if (!graphed_) graphed_ = std::make_unique<nn::GraphedTrainStep>(model_, *optimizer_);
    graphed_->submit(batch_inputs(batch), batch_labels(batch));
    pending.graphed = true;
  } else {
    const torch::Tensor inputs = batch_inputs(batch, device_);
    const torch::Tensor labels = batch_labels(batch, device_);
    // Loss and correct count in one op (nn/fused_ops.h), back in one
    // transfer: one wait for the device per step.
    const auto [loss, stats] = nn::classification_loss(model_->forward(inputs), labels);
    optimizer_->zero_grad();
    loss.backward();
    optimizer_->step();
    const torch::Tensor both = stats.cpu();
    const double* values = both.data_ptr<double>();
    pending.result = {values[0], static_cast<int64_t>(values[1])};
    pending.seconds = seconds_since(start);
  }
  pending_.push_back(pending);
  ++step_;
}

void Trainer::collect_step() {
  PendingStep p = pending_.front();
  pending_.pop_front();
  if (p.graphed) {
    std::tie(p.result.loss, p.result.correct) = graphed_->collect();
    p.seconds = graphed_->collected_seconds();  // the device's time for a replay (graphed_step.h)
  }
  auto& [seconds, count] = history_.step_seconds[dims_key_];
  seconds += p.seconds;
  count += 1;
  if (step_ms_.size() < (size_t{1} << 22)) step_ms_.push_back(static_cast<float>(1e3 * p.seconds));
  history_.loss_sum += p.result.loss;
  history_.correct_sum += p.result.correct;
  history_.example_sum += p.examples;
  history_.batch_sum += 1;
  last_collected_ = p;
  if (p.examples > 0 && !std::isfinite(p.result.loss) && first_diverged_.step == 0) first_diverged_ = p;
}

void Trainer::stop_if_diverged() {
  if (first_diverged_.step == 0) return;
  const double loss = first_diverged_.result.loss;
  TrainingDiverged diverged("training diverged at step " + std::to_string(first_diverged_.step) + " (loss " +
                            (std::isnan(loss) ? "nan" : loss > 0 ? "inf" : "-inf") + "): try a lower training.lr" +
                            (options_.run_dir.empty() ? std::string()
                                                      : "; " + options_.run_dir.string() +
                                                            " keeps the checkpoints written before it"));
  try {
    if (progress_) progress_->finish();
  } catch (const std::exception&) {
    // The divergence is the error to report.
  }
  throw diverged;
}

void Trainer::collect_all() {
  while (!pending_.empty()) collect_step();
}

CheckpointContents Trainer::capture(double elapsed_s, double data_wait_s, double loop_s,
                                    const std::string& config_yaml) const {
  CheckpointContents contents =
      capture_checkpoint(model_, *optimizer_, checkpoint_state(elapsed_s, data_wait_s, loop_s), config_yaml);
  if (reduction_ && reduction_->pending_snapshot())
    contents.rollback_tensors = pack_snapshot(*reduction_->pending_snapshot());
  return contents;
}

RunTotals Trainer::run() {
  const auto& t = config_.training;
  const std::string config_yaml = config::to_yaml(config_);
  CheckpointWriter writer;
  data::LoaderOptions loader_options;
  loader_options.batch_size = t.batch_size;
  loader_options.seed = static_cast<uint64_t>(config_.seed);
  loader_options.drop_last = true;
  loader_options.start = loader_state_;
  data::BatchLoader loader(splits_.train, loader_options);

  first_diverged_ = PendingStep{};
  const Clock::time_point start = Clock::now();
  const int64_t first_step = step_;
  double last_val = history_.evals.empty() ? -1.0 : history_.evals.back().val_accuracy;
  auto steps_per_second = [&] {
    const double s = seconds_since(start);
    return s > 0 ? (step_ - first_step) / s : 0.0;
  };

  double outside_training_s = 0;  // evaluation and checkpoint capture, in this invocation
  // Where the steady part of the loop starts (RunTotals::steady_steps_per_s).
  Clock::time_point steady_start;
  double outside_before_steady = 0;
  // Queues a checkpoint of the current step (the background writer saves it).
  auto checkpoint_this_step = [&] {
    const double loop_s = seconds_since(start);
    writer.submit(capture(elapsed_before_ + loop_s, data_wait_before_ + loader.wait_seconds(), loop_before_ + loop_s,
                          config_yaml),
                  checkpoint_folder(options_.run_dir, step_));
  };
  bool interrupted = false;
  bool checkpointed = false;  // the last step's checkpoint is queued or written
  model_->train();
  while (step_ < t.num_steps) {
    set_learning_rates();
    data::Batch batch = loader.next();
    loader_state_ = loader.state();
    submit_step(batch);
    const bool evaluate_now = step_ % t.eval_steps == 0 || step_ == t.num_steps;
    const bool checkpoint_now = !options_.run_dir.empty() && config_.checkpoint_every > 0 &&
                                step_ % config_.checkpoint_every == 0 && step_ < t.num_steps;
    // Take in results up to pipeline_steps_ late; every one before whatever
    // reads the model or the history.
    const bool in_sync = evaluate_now || checkpoint_now || options_.after_step ||
                         (reduction_ && reduction_->acts_after(step_, history_));
    while (pending_.size() > (in_sync ? size_t{0} : static_cast<size_t>(pipeline_steps_))) collect_step();
    stop_if_diverged();
    if (reduction_) reduction_->after_step(step_, *this);
    if (options_.after_step) options_.after_step(step_, *this);
    const PendingStep& shown = last_collected_;  // the newest step whose result is in
    if (progress_ && shown.examples > 0)
      progress_->step(shown.step, shown.result.loss, static_cast<double>(shown.result.correct) / shown.examples,
                      last_val, state_dims_, steps_per_second());
    const Clock::time_point outside_start = Clock::now();
    if (evaluate_now) {
      evaluate_and_record(elapsed_before_ + seconds_since(start), steps_per_second());
      last_val = history_.evals.back().val_accuracy;
    }
    if (checkpoint_now) checkpoint_this_step();
    outside_training_s += seconds_since(outside_start);
    checkpointed = checkpoint_now;
    if (step_ - first_step == RunTotals::kSteadyAfterSteps) {
      steady_start = Clock::now();
      outside_before_steady = outside_training_s;
    }
    if (options_.stop != nullptr && options_.stop->load() && step_ < t.num_steps) {
      interrupted = true;
      break;
    }
  }
  collect_all();
  stop_if_diverged();  // before any checkpoint of the steps just taken in
  if (interrupted) {
    RunTotals totals;
    totals.interrupted_at = step_;
    if (!options_.run_dir.empty() && !checkpointed) checkpoint_this_step();
    writer.finish();
    if (progress_) progress_->finish();  // after the checkpoint: a failed log write cannot cost it
    return totals;
  }
  if (progress_) progress_->finish();

  const double loop_s = seconds_since(start);
  RunTotals totals;
  totals.device = device_.is_cuda() ? "cuda" : "cpu";
  if (loop_s > outside_training_s) totals.train_steps_per_s = (step_ - first_step) / (loop_s - outside_training_s);
  if (step_ - first_step > RunTotals::kSteadyAfterSteps) {
    const double steady_s = seconds_since(steady_start) - (outside_training_s - outside_before_steady);
    if (steady_s > 0) totals.steady_steps_per_s = (step_ - first_step - RunTotals::kSteadyAfterSteps) / steady_s;
  }
  if (!step_ms_.empty()) {
    std::vector<float> sorted = step_ms_;
    std::nth_element(sorted.begin(), sorted.begin() + sorted.size() / 2, sorted.end());
    totals.step_ms_median = sorted[sorted.size() / 2];
  }
  totals.final_state_dims = model_->state_dims();
  totals.final_test_accuracy = evaluate_accuracy(model_, splits_.test, t.batch_size).accuracy;
  totals.wall_time_s = elapsed_before_ + seconds_since(start);
  const double total_loop = loop_before_ + loop_s;
  totals.data_wait_fraction = total_loop > 0 ? (data_wait_before_ + loader.wait_seconds()) / total_loop : 0.0;
  if (!options_.run_dir.empty()) {
    // final/ first (the model is what the run cost), with metrics.json's text
    // in its state.json; then the logs. A run that ends before metrics.json
    // is written gets it from final/ on --resume (rewrite_final_metrics).
    const std::string metrics = metrics_json(history_, totals).dump(2) + "\n";
    CheckpointContents final_contents =
        capture(totals.wall_time_s, data_wait_before_ + loader.wait_seconds(), total_loop, config_yaml);
    final_contents.state["metrics_json"] = metrics;
    writer.submit(std::move(final_contents), final_folder(options_.run_dir));
    writer.finish();
    background_->drain();
    write_curve_or_warn(options_.run_dir / "curve.csv", curve_csv(history_), options_.log, "");
    io::write_file_atomically(options_.run_dir / "metrics.json", metrics);
  }
  if (options_.log) ProgressReporter::print_summary(*options_.log, history_, totals, step_, steps_per_second());
  return totals;
}

}  // namespace compressm::training
