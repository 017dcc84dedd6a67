#include "training/run_history.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>

namespace compressm::training {
namespace {

// NaN or an infinity (no finite value: an overflowed error) is written as null
// and read back as NaN.
nlohmann::json number_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }
double read_number_or_null(const nlohmann::json& j) {
  return j.is_null() ? std::numeric_limits<double>::quiet_NaN() : j.get<double>();
}

template <class Json>
Json event_json(const ReductionEvent& e) {
  return {{"step", e.step},
          {"block", e.block},
          {"old_dim", e.old_dim},
          {"new_dim", e.new_dim},
          {"selection", e.selection},
          {"kept_energy", number_or_null(e.kept_energy)},
          {"discarded_energy", number_or_null(e.discarded_energy)},
          {"hinf_bound", number_or_null(e.hinf_bound)},
          {"hinf_error", number_or_null(e.hinf_error)},
          {"hinf_measured", e.hinf_measured},
          {"wall_ms", e.wall_ms},
          {"hinf_ms", e.hinf_ms},
          {"guards", e.guards},
          {"rolled_back", e.rolled_back},
          {"hsv", e.hsv}};
}

ReductionEvent event_from_json(const nlohmann::json& j) {
  ReductionEvent e;
  e.step = j.at("step").get<int64_t>();
  e.block = j.at("block").get<int64_t>();
  e.old_dim = j.at("old_dim").get<int64_t>();
  e.new_dim = j.at("new_dim").get<int64_t>();
  e.selection = j.at("selection").get<std::string>();
  e.kept_energy = read_number_or_null(j.at("kept_energy"));
  e.discarded_energy = read_number_or_null(j.at("discarded_energy"));
  e.hinf_bound = read_number_or_null(j.at("hinf_bound"));
  e.hinf_error = read_number_or_null(j.at("hinf_error"));
  // Histories written before the field: a null error then meant either.
  e.hinf_measured = j.value("hinf_measured", !j.at("hinf_error").is_null());
  e.wall_ms = j.at("wall_ms").get<double>();
  e.hinf_ms = j.at("hinf_ms").get<double>();
  e.guards = j.at("guards").get<std::vector<std::string>>();
  e.rolled_back = j.at("rolled_back").get<bool>();
  e.hsv = j.at("hsv").get<std::vector<double>>();
  return e;
}

}  // namespace

nlohmann::json RunHistory::to_json() const {
  nlohmann::json evals_json = nlohmann::json::array();
  for (const EvalRecord& r : evals) {
    evals_json.push_back({{"step", r.step},
                          {"loss", r.loss},
                          {"train_accuracy", r.train_accuracy},
                          {"val_accuracy", r.val_accuracy},
                          {"test_accuracy", r.test_accuracy},
                          {"state_dims", r.state_dims},
                          {"elapsed_s", r.elapsed_s}});
  }
  nlohmann::json reductions_json = nlohmann::json::array();
  for (const ReductionEvent& e : reductions) reductions_json.push_back(event_json<nlohmann::json>(e));
  nlohmann::json hsv_json = nlohmann::json::array();
  for (const HsvRecord& r : hsv_log) hsv_json.push_back({{"step", r.step}, {"block", r.block}, {"hsv", r.hsv}});
  return {{"evals", evals_json},
          {"reductions", reductions_json},
          {"hsv_log", hsv_json},
          {"step_seconds", step_seconds},
          {"pragmatic",
           {{"stopped", pragmatic.stopped},
            {"check_step", pragmatic.check_step},
            {"baseline_val", pragmatic.baseline_val},
            {"rollback_step", pragmatic.rollback_step}}},
          {"best_val_accuracy", best_val_accuracy},
          {"best_test_accuracy", best_test_accuracy},
          {"best_step", best_step},
          {"loss_sum", loss_sum},
          {"correct_sum", correct_sum},
          {"example_sum", example_sum},
          {"batch_sum", batch_sum}};
}

RunHistory RunHistory::from_json(const nlohmann::json& document) {
  try {
    RunHistory h;
    for (const auto& r : document.at("evals")) {
      EvalRecord e;
      e.step = r.at("step").get<int64_t>();
      e.loss = r.at("loss").get<double>();
      e.train_accuracy = r.at("train_accuracy").get<double>();
      e.val_accuracy = r.at("val_accuracy").get<double>();
      e.test_accuracy = r.at("test_accuracy").get<double>();
      e.state_dims = r.at("state_dims").get<std::vector<int64_t>>();
      e.elapsed_s = r.at("elapsed_s").get<double>();
      h.evals.push_back(std::move(e));
    }
    for (const auto& r : document.at("reductions")) h.reductions.push_back(event_from_json(r));
    for (const auto& r : document.at("hsv_log"))
      h.hsv_log.push_back({r.at("step").get<int64_t>(), r.at("block").get<int64_t>(),
                           r.at("hsv").get<std::vector<double>>()});
    h.step_seconds = document.at("step_seconds").get<std::map<std::string, std::pair<double, int64_t>>>();
    const auto& p = document.at("pragmatic");
    h.pragmatic.stopped = p.at("stopped").get<bool>();
    h.pragmatic.check_step = p.at("check_step").get<int64_t>();
    h.pragmatic.baseline_val = p.at("baseline_val").get<double>();
    h.pragmatic.rollback_step = p.at("rollback_step").get<int64_t>();
    h.best_val_accuracy = document.at("best_val_accuracy").get<double>();
    h.best_test_accuracy = document.at("best_test_accuracy").get<double>();
    h.best_step = document.at("best_step").get<int64_t>();
    h.loss_sum = document.at("loss_sum").get<double>();
    h.correct_sum = document.at("correct_sum").get<int64_t>();
    h.example_sum = document.at("example_sum").get<int64_t>();
    h.batch_sum = document.at("batch_sum").get<int64_t>();
    return h;
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(std::string("run history: ") + e.what());
  }
}

nlohmann::ordered_json metrics_json(const RunHistory& history, const RunTotals& totals) {
  nlohmann::ordered_json m;
  std::vector<int64_t> steps;
  std::vector<double> train, val, test, elapsed;
  std::vector<std::vector<int64_t>> dims;
  for (const EvalRecord& r : history.evals) {
    steps.push_back(r.step);
    train.push_back(r.train_accuracy);
    val.push_back(r.val_accuracy);
    test.push_back(r.test_accuracy);
    elapsed.push_back(r.elapsed_s);
    dims.push_back(r.state_dims);
  }
  m["steps"] = steps;
  m["train_accuracy"] = train;
  m["val_accuracy"] = val;
  m["test_accuracy"] = test;
  m["best_test_accuracy"] = history.best_test_accuracy;
  m["best_step"] = history.best_step;
  m["final_state_dims"] = totals.final_state_dims;
  m["reduction_history"] = nlohmann::ordered_json::array();
  for (const ReductionEvent& e : history.reductions)
    m["reduction_history"].push_back(event_json<nlohmann::ordered_json>(e));
  m["hsv_history"] = nlohmann::ordered_json::array();
  for (const HsvRecord& r : history.hsv_log)
    m["hsv_history"].push_back({{"step", r.step}, {"block", r.block}, {"hsv", r.hsv}});
  m["pragmatic_rollback_step"] = history.pragmatic.rollback_step;
  m["elapsed_s"] = elapsed;
  m["state_dims"] = dims;
  m["final_test_accuracy"] = totals.final_test_accuracy;
  m["wall_time_s"] = totals.wall_time_s;
  m["data_wait_fraction"] = totals.data_wait_fraction;
  m["train_steps_per_s"] = totals.train_steps_per_s;
  m["steady_steps_per_s"] = totals.steady_steps_per_s;
  m["step_ms_median"] = totals.step_ms_median;
  m["device"] = totals.device;
  m["step_time_ms"] = nlohmann::ordered_json::object();
  for (const auto& [size, time] : history.step_seconds)
    m["step_time_ms"][size] = time.second > 0 ? 1000.0 * time.first / time.second : 0.0;
  return m;
}

std::string dims_key(const std::vector<int64_t>& dims) {
  std::string key;
  for (size_t i = 0; i < dims.size(); ++i) key += (i ? ";" : "") + std::to_string(dims[i]);
  return key;
}

std::string curve_csv(const RunHistory& history) {
  std::string csv = "step,loss,train_acc,val_acc,test_acc,state_dims,elapsed_s\n";
  char line[256];
  for (const EvalRecord& r : history.evals) {
    const std::string dims = dims_key(r.state_dims);
    std::snprintf(line, sizeof line, "%lld,%.9g,%.9g,%.9g,%.9g,%s,%.3f\n",
                  static_cast<long long>(r.step), r.loss, r.train_accuracy, r.val_accuracy,
                  r.test_accuracy, dims.c_str(), r.elapsed_s);
    csv += line;
  }
  return csv;
}

}  // namespace compressm::training
