// One in-training reduction of a model of the sCIFAR shape (DESIGN.md §6):
// `blocks` LRU layers with N states and H channels, each taken through HSVs,
// balanced truncation, re-diagonalisation and conversion to LRU parameters.
//
//   bench_reduction [--blocks 6] [--state 384] [--hidden 512] [--rank 93 | --tol 0.9]
//                   [--repeats 3] [--backend lapack|reference] [--threads 2]
//
// Prints a breakdown per stage and, as the last line, one JSON document.
// Blocks run one after the other, each using `threads` BLAS threads. (Running
// blocks concurrently on single-threaded BLAS calls crashes Debian's OpenBLAS
// 0.3.21 pthread build inside zgemv: its buffers are not safe for concurrent
// callers, so the library is never called from two threads at once.)
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "linalg/lru_parameters.h"
#include "linalg/lru_reduction.h"
#include "linalg/stopwatch.h"
#include "support/random_systems.h"

namespace cl = compressm::linalg;

namespace {

struct Options {
  int blocks = 6, state = 384, hidden = 512, repeats = 3, threads = 2;
  double tol = 0.9;
  int rank = 93;  // the paper's sCIFAR reduction 384 -> 93; --rank 0 uses --tol
  cl::Backend backend = cl::default_backend();
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(std::string(argv[i]) + " needs a value");
      return argv[++i];
    };
    const std::string a = argv[i];
    if (a == "--blocks") o.blocks = std::stoi(next());
    else if (a == "--state") o.state = std::stoi(next());
    else if (a == "--hidden") o.hidden = std::stoi(next());
    else if (a == "--repeats") o.repeats = std::stoi(next());
    else if (a == "--threads") o.threads = std::stoi(next());
    else if (a == "--tol") { o.tol = std::stod(next()); o.rank = 0; }
    else if (a == "--rank") o.rank = std::stoi(next());
    else if (a == "--backend") o.backend = next() == "reference" ? cl::Backend::Reference : cl::Backend::Lapack;
    else throw std::invalid_argument("unknown option " + a);
  }
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

// Reduces every block; returns the wall time in ms.
double run_all(const std::vector<cl::DiagonalSystem>& systems, const Options& o,
               std::vector<BlockResult>& results) {
  results.assign(systems.size(), {});
  cl::set_dense_kernel_threads(o.threads);
  cl::Stopwatch watch;
  for (size_t i = 0; i < systems.size(); ++i) results[i] = reduce_block(systems[i], o);
  return watch.lap_ms();
}

}  // namespace

int main(int argc, char** argv) try {
  const Options o = parse(argc, argv);
  std::mt19937_64 rng(2026);
  std::vector<cl::DiagonalSystem> systems;
  for (int b = 0; b < o.blocks; ++b)
    systems.push_back(compressm::testing::random_system(rng, o.state, o.hidden));

  std::vector<BlockResult> results;
  run_all(systems, o, results);  // warm-up: page faults, BLAS buffers
  std::vector<double> walls;
  for (int r = 0; r < o.repeats; ++r) walls.push_back(run_all(systems, o, results));
  std::sort(walls.begin(), walls.end());
  const double median = walls[walls.size() / 2];

  // Per-stage CPU time summed over blocks (from the last repeat).
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
  std::fprintf(stderr, "%d blocks, N=%d, H=%d, backend %s, %d thread(s): median wall %.1f ms\n",
               o.blocks, o.state, o.hidden, cl::backend_name(o.backend), o.threads, median);
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
  std::fprintf(stderr, "  (stage times are summed over blocks)\n");
  nlohmann::json out = {{"bench", "reduction"},
                        {"blocks", o.blocks},
                        {"state_dim", o.state},
                        {"hidden_dim", o.hidden},
                        {"backend", cl::backend_name(o.backend)},
                        {"threads", o.threads},
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
