// `compressm bench --config FILE --steps K [--device cpu|cuda] [--warmup W] [--sync] [--set k=v ...]`:
// median wall time of K training steps of the config's model on one synthetic
// batch of its dataset's shape (src/benchmark/step_benchmark.h; graphed CUDA
// steps queued one ahead, as the trainer runs them, unless --sync). Progress on
// stderr; the last stdout line is one JSON object with ms_per_step and the
// configuration measured.
#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include <iostream>

#include "benchmark/step_benchmark.h"
#include "cli/cli_common.h"
#include "cli/commands.h"
#include "config/config.h"
#include "training/runtime_setup.h"
#include "training/trained_model.h"

namespace compressm::cli {
namespace {

struct SequenceShape {
  int64_t length, channels, classes;
};

// The datasets with readers (data/dataset.h): sequence length, channels, classes.
SequenceShape shape_of(config::Dataset dataset) {
  switch (dataset) {
    case config::Dataset::kSmnist:
    case config::Dataset::kSfmnist: return {784, 1, 10};
    case config::Dataset::kScifar: return {1024, 3, 10};
    case config::Dataset::kDigits: return {64, 1, 10};
    default:
      throw UsageError("bench: dataset " + std::string(config::to_string(dataset)) +
                       ": no synthetic batch for it (smnist, sfmnist, scifar, digits)");
  }
}

torch::Device device_of(const std::string& name) {
  if (name == "cuda") {
    if (!torch::cuda::is_available())
      throw UsageError("--device cuda: no CUDA device available to this build of compressm (CPU-only LibTorch "
                       "or no GPU)");
    return torch::Device(torch::kCUDA, 0);
  }
  return torch::kCPU;
}

}  // namespace

CLI::App* add_bench_command(CLI::App& app, BenchOptions& options) {
  CLI::App* command =
      app.add_subcommand("bench", "Median ms per training step of a config's model on synthetic data");
  command->add_option("--config", options.config_path, "YAML config file (docs/design.md section 3)")->required();
  command->add_option("--steps", options.steps, "Timed training steps (after the warm-up)")
      ->required();
  command->add_option("--warmup", options.warmup, "Untimed steps first (default 3)");
  command->add_option("--device", options.device, "cpu or cuda (default: the config's device)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  command->add_flag("--sync", options.sync,
                    "With CUDA graphs: wait for each step's loss before the next starts (default: one step "
                    "queued ahead, as the trainer runs them)");
  command->add_option("--set", options.overrides, kSetHelp)
      ->allow_extra_args(false);
  return command;
}

int run_bench(const BenchOptions& options) {
  if (options.steps < 1) throw UsageError("--steps: must be at least 1, got " + std::to_string(options.steps));
  if (options.warmup < 0) throw UsageError("--warmup: must be at least 0, got " + std::to_string(options.warmup));
  std::vector<std::string> notes;
  const config::Config config = config::load_config(options.config_path, options.overrides, &notes);
  for (const std::string& note : notes) report_warning(note);
  const std::string device_name =
      options.device.empty() ? std::string(config::to_string(config.device)) : options.device;
  const SequenceShape shape = shape_of(config.dataset);
  training::configure_runtime(config.threads);

  benchmark::StepBenchOptions bench;
  bench.model = training::model_options(config, shape.channels, shape.classes);
  bench.batch_size = config.training.batch_size;
  bench.length = shape.length;
  bench.steps = options.steps;
  bench.warmup_steps = options.warmup;
  bench.lr = config.training.lr;
  bench.weight_decay = config.training.weight_decay;
  bench.ssm_lr_factor = config.training.ssm_lr_factor;
  bench.seed = static_cast<uint64_t>(config.seed);
  bench.device = device_of(device_name);
  bench.cuda_graph = config.training.cuda_graphs;
  bench.queue_ahead = !options.sync;
  if (bench.model.precision == nn::Precision::kTf32 && bench.device.is_cpu())
    report_warning("training.precision tf32 only changes CUDA GEMMs; on the CPU this measures fp32");

  std::cerr << "compressm: bench " << config::to_string(config.dataset) << " on " << device_name << ", "
            << options.warmup << " warm-up + " << options.steps << " steps\n";
  const benchmark::StepBenchResult result = benchmark::run_step_bench(bench);
  std::vector<int64_t> state_dims;
  for (int64_t b = 0; b < bench.model.num_blocks; ++b) state_dims.push_back(bench.model.state_dim_of(b));
  nlohmann::ordered_json out;
  out["bench"] = "train_step";
  out["ms_per_step"] = result.median_ms;
  out["steps_per_s"] = 1000.0 / result.median_ms;
  out["cpu_ms_per_step"] = result.cpu_median_ms;
  out["steps"] = options.steps;
  out["warmup_steps"] = result.warmup_steps;
  out["dataset"] = config::to_string(config.dataset);
  out["state_dims"] = state_dims;
  out["hidden_dim"] = bench.model.hidden_dim;
  out["num_blocks"] = bench.model.num_blocks;
  out["batch_size"] = bench.batch_size;
  out["length"] = bench.length;
  out["input_dim"] = shape.channels;
  out["device"] = device_name;
  out["threads"] = at::get_num_threads();
  out["precision"] = config::to_string(config.training.precision);
  out["block_ops"] = config::to_string(config.training.block_ops);
  out["dropout"] = config.model.drop_rate;
  out["cuda_graph"] = result.graph_captured;
  out["queued_ahead"] = result.queued_ahead;
  out["final_loss"] = result.final_loss;
  std::cout << out.dump() << std::endl;  // one line: the last line of stdout
  return kExitSuccess;
}

}  // namespace compressm::cli
