#include "training/run_history.h"

#include <cstdio>
#include <stdexcept>

namespace compressm::training {

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
  return {{"evals", evals_json},
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
  std::vector<double> train, val, test;
  for (const EvalRecord& r : history.evals) {
    steps.push_back(r.step);
    train.push_back(r.train_accuracy);
    val.push_back(r.val_accuracy);
    test.push_back(r.test_accuracy);
  }
  m["steps"] = steps;
  m["train_accuracy"] = train;
  m["val_accuracy"] = val;
  m["test_accuracy"] = test;
  m["best_test_accuracy"] = history.best_test_accuracy;
  m["best_step"] = history.best_step;
  m["final_state_dims"] = totals.final_state_dims;
  m["reduction_history"] = nlohmann::ordered_json::array();
  m["final_test_accuracy"] = totals.final_test_accuracy;
  m["wall_time_s"] = totals.wall_time_s;
  m["data_wait_fraction"] = totals.data_wait_fraction;
  return m;
}

std::string curve_csv(const RunHistory& history) {
  std::string csv = "step,loss,train_acc,val_acc,test_acc,state_dims,elapsed_s\n";
  char line[256];
  for (const EvalRecord& r : history.evals) {
    std::string dims;
    for (size_t i = 0; i < r.state_dims.size(); ++i)
      dims += (i ? ";" : "") + std::to_string(r.state_dims[i]);
    std::snprintf(line, sizeof line, "%lld,%.9g,%.9g,%.9g,%.9g,%s,%.3f\n",
                  static_cast<long long>(r.step), r.loss, r.train_accuracy, r.val_accuracy,
                  r.test_accuracy, dims.c_str(), r.elapsed_s);
    csv += line;
  }
  return csv;
}

}  // namespace compressm::training
