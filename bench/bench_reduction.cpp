// One in-training reduction of a model of the sCIFAR shape (docs/design.md §6):
// `blocks` LRU layers with N states and H channels, each taken through HSVs,
// balanced truncation, re-diagonalisation and conversion to LRU parameters.
//
//   bench_reduction [--blocks 6] [--state 384] [--hidden 512] [--rank 93 | --tol 0.9]
//                   [--repeats 3] [--backend lapack|reference] [--threads 2] [--jobs 2]
//
// Two ways in the same invocation, on the same systems:
//   sequential  blocks one after the other, each BLAS call on `threads` threads
//               (how the trainer reduced before linalg::run_concurrently);
//   concurrent  `jobs` blocks at a time (default: the number of cores), each
//               BLAS call single-threaded: what the trainer, `compressm
//               compress` and this benchmark's headline figure use.
// Prints a breakdown per stage and, as the last line, one JSON document.
// glibc is told to keep freed memory, as the trainer does (runtime_setup.cpp):
// otherwise every block's N x N temporaries come back as page faults.
#include <malloc.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "bench_flags.h"
#include "linalg/concurrent.h"
#include "linalg/lru_parameters.h"
#include "linalg/lru_reduction.h"
#include "linalg/stopwatch.h"
#include "support/random_systems.h"

namespace cl = compressm::linalg;

namespace {

struct Options {
  int blocks = 6, state = 384, hidden = 512, repeats = 3, threads = 2;
  int jobs = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  double tol = 0.9;
  int rank = 93;  // the paper's sCIFAR reduction 384 -> 93; --rank 0 uses --tol
  cl::Backend backend = cl::default_backend();
};

Options parse(int argc, char** argv) {
  Options o;
  compressm::bench::Flags flags(argc, argv);
  flags.read("--blocks", o.blocks);
  flags.read("--state", o.state);
  flags.read("--hidden", o.hidden);
  flags.read("--repeats", o.repeats);
  flags.read("--threads", o.threads);
  flags.read("--jobs", o.jobs);
  double tol = -1.0;
  int rank = -1;
  flags.read("--tol", tol);
  flags.read("--rank", rank);
  std::string backend = cl::backend_name(o.backend);
  flags.read("--backend", backend);
  flags.check_all_read();
  if (tol >= 0.0 && rank >= 0) throw std::invalid_argument("--tol and --rank exclude each other");
  if (tol >= 0.0) {
    o.tol = tol;
    o.rank = 0;
  }
  if (rank >= 0) o.rank = rank;
  if (backend != "reference" && backend != "lapack")
    throw std::invalid_argument("--backend " + backend + ": expected lapack or reference");
  o.backend = backend == "reference" ? cl::Backend::Reference : cl::Backend::Lapack;
  return o;
}

struct BlockResult {
  cl::LruReduction reduction;
  double conversion_ms = 0.0;
};

BlockResult reduce_block(const cl::DiagonalSystem& system, const Options& o) {
  const cl::RankRule rule = o.rank > 0 ? cl::RankRule::fixed(o.rank) : cl::RankRule::energy(o.tol);
  BlockResult r;
  r.reduction = cl::reduce_diagonal_system(system, rule, o.backend);
  cl::Stopwatch watch;
  std::vector<cl::GuardEvent> guards;
  const cl::LruParameters p = cl::system_to_lru(r.reduction.reduced, &guards);
  r.conversion_ms = watch.lap_ms();
  if (!cl::all_finite(p)) throw std::runtime_error("non-finite LRU parameters");
  return r;
}

// Reduces every block, `jobs` at a time (1: one after the other with `threads`
// BLAS threads); returns the wall time in ms.
double run_all(const std::vector<cl::DiagonalSystem>& systems, const Options& o, int jobs,
               std::vector<BlockResult>& results) {
  results.assign(systems.size(), {});
  cl::set_dense_kernel_threads(o.threads);
  cl::Stopwatch watch;
  cl::run_concurrently(static_cast<Eigen::Index>(systems.size()), jobs,
                       [&](Eigen::Index i) { results[i] = reduce_block(systems[i], o); });
  return watch.lap_ms();
}

// Median wall time of `repeats` runs after one warm-up run (page faults, BLAS buffers).
std::vector<double> time_runs(const std::vector<cl::DiagonalSystem>& systems, const Options& o,
                              int jobs, std::vector<BlockResult>& results) {
  run_all(systems, o, jobs, results);
  std::vector<double> walls;
  for (int r = 0; r < o.repeats; ++r) walls.push_back(run_all(systems, o, jobs, results));
  std::sort(walls.begin(), walls.end());
  return walls;
}

}  // namespace

int main(int argc, char** argv) try {
  const Options o = parse(argc, argv);
  std::mt19937_64 rng(2026);
  std::vector<cl::DiagonalSystem> systems;
  for (int b = 0; b < o.blocks; ++b)
    systems.push_back(compressm::testing::random_system(rng, o.state, o.hidden));

  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, -1);
  std::vector<BlockResult> results;
  const std::vector<double> sequential = time_runs(systems, o, 1, results);
  const std::vector<double> walls = time_runs(systems, o, o.jobs, results);
  const double median = walls[walls.size() / 2];
  const double sequential_median = sequential[sequential.size() / 2];

  // Per-stage time summed over blocks (from the last concurrent repeat).
  cl::BalancedTruncation::Timing sum;
  double diagonalise = 0, conversion = 0;
  nlohmann::json ranks = nlohmann::json::array();
  for (const auto& r : results) {
    const auto& t = r.reduction.balance_timing;
    sum.gramians_ms += t.gramians_ms;
    sum.factor_ms += t.factor_ms;
    sum.product_ms += t.product_ms;
    sum.svd_ms += t.svd_ms;
    sum.projection_ms += t.projection_ms;
    diagonalise += r.reduction.diagonalise_ms;
    conversion += r.conversion_ms;
    ranks.push_back(r.reduction.rank);
  }
  const double total = sum.gramians_ms + sum.factor_ms + sum.product_ms + sum.svd_ms +
                       sum.projection_ms + diagonalise + conversion;
  const cl::BlasKernels& kernels = cl::blas_kernels();
  std::fprintf(stderr, "%d blocks, N=%d, H=%d, backend %s, BLAS kernels %s (%s)\n", o.blocks,
               o.state, o.hidden, cl::backend_name(o.backend), kernels.in_use.c_str(),
               kernels.how.c_str());
  std::fprintf(stderr, "  sequential, %d BLAS thread(s) per call: median wall %.1f ms\n",
               o.threads, sequential_median);
  std::fprintf(stderr, "  concurrent, %d blocks at a time:       median wall %.1f ms (%.2fx)\n",
               o.jobs, median, sequential_median / median);
  auto line = [&](const char* stage, double ms) {
    std::fprintf(stderr, "  %-34s %8.1f ms  %5.1f%%\n", stage, ms, 100.0 * ms / total);
  };
  line("Gramians (B B^H, C^H C, closed form)", sum.gramians_ms);
  line("Cholesky factors", sum.factor_ms);
  line("Lo^H Lc", sum.product_ms);
  line("SVD (values + leading vectors)", sum.svd_ms);
  line("projection (A_r, B_r, C_r)", sum.projection_ms);
  line("re-diagonalisation (eig A_r)", diagonalise);
  line("conversion to LRU parameters", conversion);
  std::fprintf(stderr, "  (stage times of the concurrent run, summed over blocks)\n");
  nlohmann::json out = {{"bench", "reduction"},
                        {"blocks", o.blocks},
                        {"state_dim", o.state},
                        {"hidden_dim", o.hidden},
                        {"backend", cl::backend_name(o.backend)},
                        {"threads", o.threads},
                        {"jobs", o.jobs},
                        {"blas_kernels", kernels.in_use},
                        {"blas_kernels_how", kernels.how},
                        {"sequential_wall_ms_median", sequential_median},
                        {"sequential_wall_ms_all", sequential},
                        {"ranks", ranks},
                        {"wall_ms_median", median},
                        {"wall_ms_all", walls},
                        {"stage_ms",
                         {{"gramians", sum.gramians_ms},
                          {"factors", sum.factor_ms},
                          {"product", sum.product_ms},
                          {"svd", sum.svd_ms},
                          {"projection", sum.projection_ms},
                          {"diagonalise", diagonalise},
                          {"conversion", conversion}}}};
  std::cout << out.dump() << std::endl;
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_reduction: error: %s\n", e.what());
  return 2;
}
