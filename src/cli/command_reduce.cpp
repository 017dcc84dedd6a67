// `compressm reduce --system FILE (--tol T | --rank R) --out FILE [--json]`:
// one balanced truncation (docs/design.md §2), the reduced system written to --out,
// and its H-infinity error checked against the bound 2 * sum of discarded HSVs.
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "io/system_json.h"
#include "linalg/frequency_response.h"
#include "linalg/lru_reduction.h"

namespace compressm::cli {
namespace {

namespace fs = std::filesystem;
using linalg::RankRule;

constexpr int kMaxHinfGrid = 1 << 22;

// Exactly one of --tol / --rank; --tol is checked here, --rank once N is known.
RankRule rank_rule_from_flags(const ReduceOptions& options) {
  if (options.tol && options.rank) {
    throw UsageError("--tol and --rank cannot be combined: give exactly one of them");
  }
  if (!options.tol && !options.rank) throw UsageError("exactly one of --tol or --rank is required");
  if (options.rank) return RankRule::fixed(*options.rank);
  const double tol = *options.tol;
  if (!(tol > 0.0 && tol <= 1.0)) {  // also rejects NaN
    throw UsageError("--tol " + format_number(tol) +
                     " is out of range: must be in (0, 1] (fraction of HSV energy kept)");
  }
  return RankRule::energy(tol);
}

void check_rank_in_range(const ReduceOptions& options, Eigen::Index n) {
  if (!options.rank) return;
  if (n == 1)
    throw UsageError("--rank: " + options.system_path + " has one state (N = 1); there is nothing to cut");
  if (*options.rank < 1 || *options.rank >= n) {
    throw UsageError("--rank " + std::to_string(*options.rank) + " is out of range: must be in [1, " +
                     std::to_string(n) + ") for " + options.system_path + " (N = " +
                     std::to_string(n) + ")");
  }
}

// Overwriting the input would destroy the only copy of the full system.
// equivalent() sees through symlinks, hard links and "./a/../a" spellings.
void check_out_is_not_input(const ReduceOptions& options) {
  std::error_code ec;
  bool same = fs::equivalent(options.system_path, options.out_path, ec);
  if (ec) {  // --out does not exist yet (or --system does not): compare spellings
    std::error_code ec_system, ec_out;
    const fs::path system = fs::weakly_canonical(options.system_path, ec_system);
    const fs::path out = fs::weakly_canonical(options.out_path, ec_out);
    // A spelling that cannot be resolved (two empty results) is no match.
    same = !ec_system && !ec_out && system == out;
  }
  if (same) {
    throw UsageError("--out " + options.out_path +
                     " is the --system input file; refusing to overwrite it");
  }
}

struct ReduceResult {
  Eigen::Index n = 0;  // state dimension of the full system
  linalg::LruReduction reduction;
  double hinf_error = 0.0;
  double max_abs_eig = 0.0;
  // Wall-clock times measured here; the core's own breakdown is still in flux.
  double reduce_ms = 0.0;  // HSVs, truncation, re-diagonalisation
  double hinf_ms = 0.0;    // H-inf error on the frequency grid
};

double elapsed_ms(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - since)
      .count();
}

ReduceResult reduce(const linalg::DiagonalSystem& system, const RankRule& rule,
                    const ReduceOptions& options) {
  ReduceResult result;
  result.n = system.state_dim();
  const auto start = std::chrono::steady_clock::now();
  result.reduction =
      blame_input(options.system_path, [&] { return linalg::reduce_diagonal_system(system, rule); });
  result.reduce_ms = elapsed_ms(start);
  const auto hinf_start = std::chrono::steady_clock::now();
  result.hinf_error = blame_input(options.system_path, [&] {
    return linalg::hinf_error(system, result.reduction.reduced, options.hinf_grid);
  });
  result.hinf_ms = elapsed_ms(hinf_start);
  const linalg::VectorXc& mu = result.reduction.reduced.lambda;
  if (mu.size() == 0) throw std::logic_error("the core returned a reduced system with no states");
  result.max_abs_eig = mu.cwiseAbs().maxCoeff();
  return result;
}

nlohmann::json to_json(const ReduceResult& result, const ReduceOptions& options) {
  const linalg::LruReduction& r = result.reduction;
  nlohmann::json guards = nlohmann::json::array();
  for (const auto& event : r.guards) guards.push_back({{"guard", event.guard}, {"detail", event.detail}});
  return {{"rank", r.rank},
          {"requested_rank", r.requested_rank},
          {"n", result.n},
          {"hinf_error", result.hinf_error},
          {"hinf_bound", r.hinf_bound},
          {"max_abs_eig", result.max_abs_eig},
          {"kept_energy", r.kept_energy},
          {"discarded_energy", r.discarded_energy},
          {"guards", guards},
          {"out", options.out_path},
          {"timing_ms",
           {{"reduce", result.reduce_ms}, {"hinf", result.hinf_ms}}}};
}

// The core keeps fewer states than asked when some HSVs are exactly zero
// (those states carry no input-output energy); say so rather than surprise.
std::string rank_note(const ReduceResult& result) {
  const linalg::LruReduction& r = result.reduction;
  if (r.rank == r.requested_rank) return "";
  return " (requested " + std::to_string(r.requested_rank) + "; the other HSVs are zero)";
}

void print_summary(const ReduceResult& result, const ReduceOptions& options) {
  const linalg::LruReduction& r = result.reduction;
  const double total = r.kept_energy + r.discarded_energy;
  std::cout << "reduced " << options.system_path << " -> " << options.out_path << "\n"
            << "  rule         : "
            << (options.rank ? "fixed rank (--rank " + std::to_string(*options.rank) + ")"
                             : "keep HSV energy fraction " + format_number(*options.tol))
            << "\n"
            << "  state dim    : " << result.n << " -> " << r.rank << rank_note(result) << "\n"
            << "  HSV energy   : kept " << format_double("%.6g", r.kept_energy) << " of "
            << format_double("%.6g", total) << " ("
            << format_double("%.4f", total > 0 ? 100.0 * r.kept_energy / total : 100.0) << "%)\n"
            << "  H-inf error  : " << format_double("%.6e", result.hinf_error)
            << " (bound 2 * discarded HSVs = " << format_double("%.6e", r.hinf_bound) << ")\n"
            << "  max |mu|     : " << format_double("%.9f", result.max_abs_eig) << "\n"
            << "  guards       : " << (r.guards.empty() ? "none" : std::to_string(r.guards.size()) + " fired")
            << "\n";
  for (const auto& event : r.guards) std::cout << "    " << event.guard << ": " << event.detail << "\n";
  std::cout << "  time         : reduction " << format_double("%.3f", result.reduce_ms)
            << " ms, H-inf error " << format_double("%.3f", result.hinf_ms) << " ms" << std::endl;
}

// The bound holds in exact arithmetic (docs/design.md §2); a violation means the
// reduction or the frequency grid went wrong, which the user should know.
void warn_if_bound_violated(const ReduceResult& result) {
  const linalg::LruReduction& r = result.reduction;
  if (!std::isfinite(result.hinf_error)) {
    report_warning("the H-inf error is not finite (the frequency response overflowed): the bound is unchecked");
    return;
  }
  if (linalg::hinf_error_exceeds(result.hinf_error, r.hinf_bound, r.kept_energy + r.discarded_energy, 1.0 + 1e-6)) {
    report_warning("H-inf error " + format_double("%.6e", result.hinf_error) +
                   " exceeds the balanced truncation bound " + format_double("%.6e", r.hinf_bound));
  }
}

// Balanced truncation of a stable system is stable: a reduced eigenvalue on
// or outside the unit circle means rounding swamped the reduction (clamping
// it would hide an H-inf error far above the bound), so nothing is written.
// Likewise an H-inf error far above the bound (poles within a few eps of the
// unit circle, placed only to eps absolute: the gain there is off by eps /
// (1 - |mu|) relative) is no reduction, whatever its poles look like.
constexpr double kRefusedBoundExcess = 1e3;

void refuse_unstable_result(const ReduceResult& result, const ReduceOptions& options) {
  std::string unstable, conditioning;
  for (const auto& event : result.reduction.guards) {
    if (event.guard == "unstable" && unstable.empty()) unstable = event.detail;
    if (event.guard == "ill_conditioned") conditioning = "; " + event.detail;
  }
  const std::string not_written = " (" + options.out_path + " not written)";
  if (!unstable.empty())
    throw io::InputError(options.system_path + ": the reduction is unreliable in double precision: reduced " +
                         unstable + conditioning + not_written);
  const linalg::LruReduction& r = result.reduction;
  if (std::isfinite(result.hinf_error) &&
      linalg::hinf_error_exceeds(result.hinf_error, r.hinf_bound, r.kept_energy + r.discarded_energy,
                                 kRefusedBoundExcess))
    throw io::InputError(options.system_path + ": the reduction is unreliable in double precision: its H-inf error " +
                         format_double("%.6e", result.hinf_error) + " is more than " +
                         format_number(kRefusedBoundExcess) + " times the bound " +
                         format_double("%.6e", r.hinf_bound) + " (poles within rounding of the unit circle?)" +
                         conditioning + not_written);
}

}  // namespace

CLI::App* add_reduce_command(CLI::App& app, ReduceOptions& options) {
  CLI::App* command =
      app.add_subcommand("reduce", "Balanced truncation of a system to a smaller state dimension");
  command->add_option("--system", options.system_path, "System JSON file (docs/design.md §4)")
      ->required();
  command->add_option_function<double>(
      "--tol", [&options](const double& value) { options.tol = value; },
      "Fraction of HSV energy to keep, in (0, 1]; exclusive with --rank");
  command->add_option_function<long>(
      "--rank", [&options](const long& value) { options.rank = value; },
      "Reduced state dimension, in [1, N); exclusive with --tol");
  command->add_option("--out", options.out_path,
                      "Where to write the reduced system (atomically; never the --system file)")
      ->required();
  command->add_option("--hinf-grid", options.hinf_grid,
                      "Uniform frequency points for the H-inf error")
      ->capture_default_str();
  command->add_flag("--json", options.json,
                    "Print one JSON document: rank, n, hinf_error, hinf_bound, max_abs_eig, ...");
  return command;
}

int run_reduce(const ReduceOptions& options) {
  const RankRule rule = rank_rule_from_flags(options);
  if (options.hinf_grid < 1 || options.hinf_grid > kMaxHinfGrid) {
    throw UsageError("--hinf-grid " + std::to_string(options.hinf_grid) +
                     " is out of range: must be in [1, " + std::to_string(kMaxHinfGrid) + "]");
  }
  check_out_is_not_input(options);
  const linalg::DiagonalSystem system = io::read_system_json(options.system_path);
  check_rank_in_range(options, system.state_dim());
  refuse_output_in_checkpoint("--out", options.out_path);
  refuse_replacing_other_files("--out", options.out_path, "system file",  // an earlier reduction is replaced
                               [](const std::string& path) { io::read_system_json(path); });

  const ReduceResult result = reduce(system, rule, options);
  refuse_unstable_result(result, options);
  io::write_system_json(result.reduction.reduced, options.out_path);
  warn_if_bound_violated(result);
  if (options.json) {
    for (const auto& event : result.reduction.guards) {
      report_warning("guard " + event.guard + ": " + event.detail);
    }
    print_json(to_json(result, options));
  } else {
    print_summary(result, options);
  }
  return kExitSuccess;
}

}  // namespace compressm::cli
