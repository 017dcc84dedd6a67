// The `compressm` subcommands. Each one registers its flags on the parent app
// (add_*_command) and, once parsing succeeded, runs (run_*) and returns an exit
// status; input problems are thrown (io::InputError, UsageError) and mapped to
// exit codes in main.cpp.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

namespace compressm::cli {

struct HsvOptions {
  std::string system_path;
  bool json = false;
};
CLI::App* add_hsv_command(CLI::App& app, HsvOptions& options);
int run_hsv(const HsvOptions& options);

struct ReduceOptions {
  std::string system_path;
  std::string out_path;
  std::optional<double> tol;  // fraction of HSV energy kept, (0, 1]
  std::optional<long> rank;   // fixed order, [1, N)
  int hinf_grid = 2048;       // uniform frequency points for the H-inf error
  bool json = false;
};
CLI::App* add_reduce_command(CLI::App& app, ReduceOptions& options);
int run_reduce(const ReduceOptions& options);

struct ConfigOptions {
  std::string config_path;
  std::vector<std::string> overrides;  // --set section.key=value, in order
};
CLI::App* add_config_command(CLI::App& app, ConfigOptions& options);
int run_config(const ConfigOptions& options);

// train / eval exist only in builds with LibTorch (COMPRESSM_WITH_TORCH).
struct TrainOptions {
  std::string config_path;             // required unless resuming
  std::vector<std::string> overrides;  // --set section.key=value, in order
  std::string out_dir;                 // new run folder (empty or absent)
  std::string resume_dir;              // run folder to continue
};
CLI::App* add_train_command(CLI::App& app, TrainOptions& options);
int run_train(const TrainOptions& options);

struct EvalOptions {
  std::string checkpoint_dir;  // checkpoint folder, or run folder (its final model)
  std::string data_dir;        // dataset folder (default: the run config's data_dir)
  bool json = false;
};
CLI::App* add_eval_command(CLI::App& app, EvalOptions& options);
int run_eval(const EvalOptions& options);

struct ReportOptions {
  std::vector<std::string> run_dirs;  // run folders, the first is the baseline
  std::string out_dir;
};
CLI::App* add_report_command(CLI::App& app, ReportOptions& options);
int run_report(const ReportOptions& options);

struct CompressOptions {
  std::string checkpoint_dir;  // trained model: checkpoint folder or run folder
  std::optional<double> tol;   // fraction of HSV energy kept per block, (0, 1]
  std::optional<long> rank;    // or: states kept per block (blocks already smaller are kept)
  std::string out_dir;         // new run folder
  bool json = false;
};
CLI::App* add_compress_command(CLI::App& app, CompressOptions& options);
int run_compress(const CompressOptions& options);

// classify runs the LibTorch-free runtime and exists in every build; export
// needs LibTorch (COMPRESSM_WITH_TORCH).
struct ExportOptions {
  std::string checkpoint_dir;  // checkpoint folder, or run folder (its final model)
  std::string out_path;        // .safetensors file to write
};
CLI::App* add_export_command(CLI::App& app, ExportOptions& options);
int run_export(const ExportOptions& options);

struct ClassifyOptions {
  std::string model_path;  // exported model file
  std::string dataset;     // accuracy on this dataset's test split, or
  std::string data_dir;    //   from this folder (default: the export's data_dir, else the dataset's)
  std::string input_path;  // one sequence (runtime/sequence_file.h)
  int threads = 1;         // sequences classified in parallel (--dataset)
  bool json = false;
};
CLI::App* add_classify_command(CLI::App& app, ClassifyOptions& options);
int run_classify(const ClassifyOptions& options);

// bench needs LibTorch (COMPRESSM_WITH_TORCH).
struct BenchOptions {
  std::string config_path;
  std::vector<std::string> overrides;  // --set section.key=value, in order
  long steps = 0;                      // timed steps, >= 1
  long warmup = 3;                     // untimed steps first
  std::string device;                  // "cpu" | "cuda"; empty = the config's device
  bool sync = false;                   // graphed steps one at a time, not queued ahead
};
CLI::App* add_bench_command(CLI::App& app, BenchOptions& options);
int run_bench(const BenchOptions& options);

}  // namespace compressm::cli
