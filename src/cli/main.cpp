// `compressm`: one tool, one subcommand per task (docs/design.md §7).
// This file only dispatches and maps failures to exit codes:
//   0 success, 2 bad input or usage (one line on stderr), 1 internal failure.
#include <CLI/CLI.hpp>
#include <exception>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "config/config.h"
#include "io/system_json.h"
#include "linalg/dense_kernels.h"

#ifndef COMPRESSM_VERSION
#define COMPRESSM_VERSION "unknown"
#endif

namespace {

using namespace compressm::cli;

// Runs a subcommand; every exception becomes one stderr line and an exit code.
template <typename Command>
int run_guarded(Command&& command) {
  try {
    return command();
  } catch (const compressm::io::InputError& e) {
    report_error(e.what());
    return kExitBadInput;
  } catch (const UsageError& e) {
    report_error(e.what());
    return kExitBadInput;
  } catch (const compressm::config::ConfigError& e) {
    report_error(e.what());
    return kExitBadInput;
  } catch (const std::invalid_argument& e) {
    // The core's way of rejecting an input it cannot handle.
    report_error(e.what());
    return kExitBadInput;
  } catch (const std::exception& e) {
    report_error(std::string("internal error: ") + e.what());
    return kExitInternal;
  } catch (...) {
    report_error("internal error: unknown exception");
    return kExitInternal;
  }
}

// CLI11 reports a mistyped subcommand only as "A subcommand is required";
// name the word the user typed instead.
void check_subcommand_name(const CLI::App& app, int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') return;
  std::string known;
  for (const CLI::App* command : app.get_subcommands([](const CLI::App*) { return true; })) {
    if (command->check_name(argv[1])) return;
    known += (known.empty() ? "" : ", ") + command->get_name();
  }
  throw UsageError(std::string("unknown subcommand '") + argv[1] + "' (expected one of: " + known +
                   "; see --help)");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"compressm: in-training compression of LRU state-space models", "compressm"};
  std::string version = std::string("compressm ") + COMPRESSM_VERSION;
  const compressm::linalg::BlasKernels& blas = compressm::linalg::blas_kernels();
  if (!blas.in_use.empty()) version += "\nBLAS: OpenBLAS, kernels " + blas.in_use + " (" + blas.how + ")";
  app.set_version_flag("--version", version);
  app.require_subcommand(1);

  HsvOptions hsv_options;
  ReduceOptions reduce_options;
  CLI::App* hsv = add_hsv_command(app, hsv_options);
  CLI::App* reduce = add_reduce_command(app, reduce_options);
  ConfigOptions config_options;
  CLI::App* config = add_config_command(app, config_options);
  ReportOptions report_options;
  CLI::App* report = add_report_command(app, report_options);
  ClassifyOptions classify_options;
  CLI::App* classify = add_classify_command(app, classify_options);
#ifdef COMPRESSM_WITH_TORCH
  TrainOptions train_options;
  CLI::App* train = add_train_command(app, train_options);
  EvalOptions eval_options;
  CLI::App* eval = add_eval_command(app, eval_options);
  ExportOptions export_options;
  CLI::App* export_command = add_export_command(app, export_options);
  CompressOptions compress_options;
  CLI::App* compress = add_compress_command(app, compress_options);
  BenchOptions bench_options;
  CLI::App* bench = add_bench_command(app, bench_options);
#endif

  try {
    check_subcommand_name(app, argc, argv);
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help / --version: printed on stdout, exit 0
  } catch (const UsageError& e) {
    report_error(e.what());
    return kExitBadInput;
  } catch (const CLI::ParseError& e) {
    // CLI11's own report adds a second "Run with --help" line; keep it to one.
    report_error(std::string(e.what()) + " (see --help)");
    return kExitBadInput;
  }

  if (*hsv) return run_guarded([&] { return run_hsv(hsv_options); });
  if (*reduce) return run_guarded([&] { return run_reduce(reduce_options); });
  if (*config) return run_guarded([&] { return run_config(config_options); });
  if (*classify) return run_guarded([&] { return run_classify(classify_options); });
  if (*report) return run_guarded([&] { return run_report(report_options); });  // needs no LibTorch
#ifdef COMPRESSM_WITH_TORCH
  if (*train) return run_guarded([&] { return run_train(train_options); });
  if (*eval) return run_guarded([&] { return run_eval(eval_options); });
  if (*export_command) return run_guarded([&] { return run_export(export_options); });
  if (*compress) return run_guarded([&] { return run_compress(compress_options); });
  if (*bench) return run_guarded([&] { return run_bench(bench_options); });
#endif
  report_error("no subcommand given (see --help)");
  return kExitBadInput;
}
