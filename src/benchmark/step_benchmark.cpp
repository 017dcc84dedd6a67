#include "benchmark/step_benchmark.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <stdexcept>

#include "nn/fused_ops.h"
#include "nn/graphed_step.h"
#include "nn/lru_optimizer.h"

namespace compressm::benchmark {
namespace {

using Clock = std::chrono::steady_clock;

// Inputs {B, L, input_dim} uniform on [0, 1) (or tokens {B, L}) and labels {B}.
std::pair<torch::Tensor, torch::Tensor> synthetic_batch(const StepBenchOptions& o) {
  const nn::LruModelOptions& m = o.model;
  torch::Tensor x = m.vocab_size > 0 ? torch::randint(0, m.vocab_size, {o.batch_size, o.length}, torch::kLong)
                                     : torch::rand({o.batch_size, o.length, m.input_dim});
  torch::Tensor y = torch::randint(0, m.num_classes, {o.batch_size}, torch::kLong);
  return {x.to(o.device), y.to(o.device)};
}

void check(const StepBenchOptions& o) {
  if (o.batch_size < 1 || o.length < 1 || o.steps < 1 || o.warmup_steps < 0)
    throw std::invalid_argument("step benchmark: batch, length and steps must be >= 1, warm-up >= 0");
}

}  // namespace

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

StepBenchResult run_step_bench(const StepBenchOptions& o) {
  check(o);
  torch::manual_seed(o.seed);
  nn::LruModel model(o.model);
  model->to(o.device);
  model->train();
  std::unique_ptr<torch::optim::AdamW> optimizer = nn::make_lru_adamw(model, o.lr * o.ssm_lr_factor, o.lr, o.weight_decay);
  const std::pair<torch::Tensor, torch::Tensor> batch = synthetic_batch(o);
  const torch::Tensor &x = batch.first, &labels = batch.second;
  std::unique_ptr<nn::GraphedTrainStep> graphed;
  if (o.cuda_graph && o.device.is_cuda()) graphed = std::make_unique<nn::GraphedTrainStep>(model, *optimizer);

  StepBenchResult result;
  // With a graph, the untimed steps include the eager ones and the capture.
  result.warmup_steps = graphed ? std::max<int64_t>(o.warmup_steps, nn::GraphedTrainStep::kEagerSteps + 1)
                                : o.warmup_steps;
  std::vector<double> cpu_ms;
  Clock::time_point last;
  std::clock_t cpu_last = 0;
  const auto start_timing = [&] {
    last = Clock::now();
    cpu_last = std::clock();
  };
  const auto record = [&] {  // the time since start_timing or the last record
    const Clock::time_point now = Clock::now();
    const std::clock_t cpu_now = std::clock();
    result.step_ms.push_back(std::chrono::duration<double, std::milli>(now - last).count());
    cpu_ms.push_back(1e3 * static_cast<double>(cpu_now - cpu_last) / CLOCKS_PER_SEC);
    last = now;
    cpu_last = cpu_now;
  };
  const auto synchronous_step = [&] {
    if (graphed) {
      result.final_loss = graphed->step(x, labels).first;  // waits for the device
    } else {
      // The trainer's eager step: loss and correct count in one op, read back together.
      const auto [loss, stats] = nn::classification_loss(model->forward(x), labels);
      optimizer->zero_grad();
      loss.backward();
      optimizer->step();
      result.final_loss = stats.cpu().data_ptr<double>()[0];  // waits for the device, as the trainer's step does
    }
  };
  for (int64_t step = 0; step < result.warmup_steps; ++step) synchronous_step();
  result.queued_ahead = graphed && o.queue_ahead && graphed->captured();
  start_timing();
  if (result.queued_ahead) {
    // The trainer's loop: step k + 1 is queued before step k's result is
    // collected; a step's time is the wall time between two results.
    const auto collect = [&] {
      result.final_loss = graphed->collect().first;
      record();
    };
    for (int64_t step = 0; step < o.steps; ++step) {
      graphed->submit(x, labels);
      if (graphed->pending() > 1) collect();
    }
    while (graphed->pending() > 0) collect();
  } else {
    for (int64_t step = 0; step < o.steps; ++step) {
      synchronous_step();
      record();
    }
  }
  result.median_ms = median(result.step_ms);
  result.graph_captured = graphed && graphed->captured();
  result.cpu_median_ms = median(cpu_ms);
  return result;
}

}  // namespace compressm::benchmark
