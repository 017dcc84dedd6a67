// Reductions of several blocks side by side (linalg/concurrent.h) and the BLAS
// kernel choice (linalg/blas_runtime.cpp): concurrent reductions give the
// results of the same reductions one after the other, on every hard kind of
// system; failures surface; the BLAS thread count is restored.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "linalg/concurrent.h"
#include "linalg/dense_kernels.h"
#include "linalg/lru_parameters.h"
#include "linalg/lru_reduction.h"
#include "support/random_systems.h"

namespace compressm::linalg {
namespace {

using testing::SystemKind;

double relative_difference(const MatrixXc& a, const MatrixXc& b) {
  return (a - b).norm() / std::max(b.norm(), 1e-300);
}

// Same reduction computed twice: equal up to rounding (a different thread
// may take a different, equally exact, summation order in a BLAS kernel).
void expect_same_reduction(const LruReduction& a, const LruReduction& b, const std::string& what) {
  ASSERT_EQ(a.rank, b.rank) << what;
  EXPECT_LT((a.hsv - b.hsv).norm() / b.hsv.norm(), 1e-12) << what;
  ASSERT_EQ(a.reduced.state_dim(), b.reduced.state_dim()) << what;
  // Eigenvalues may come out in another order only if they were computed
  // differently; compare the transfer function's first Markov parameters.
  for (int k = 0; k < 8; ++k) {
    const MatrixXc ma = a.reduced.C * a.reduced.lambda.array().pow(k).matrix().asDiagonal() * a.reduced.B;
    const MatrixXc mb = b.reduced.C * b.reduced.lambda.array().pow(k).matrix().asDiagonal() * b.reduced.B;
    EXPECT_LT(relative_difference(ma, mb), 1e-9) << what << ", Markov parameter " << k;
  }
}

TEST(Concurrent, ReductionsSideBySideMatchReductionsInTurn) {
  std::mt19937_64 rng(20261126);
  std::vector<DiagonalSystem> systems;
  std::vector<RankRule> rules;
  for (int kind = 0; kind < testing::kSystemKindCount; ++kind)
    for (int copy = 0; copy < 2; ++copy) {
      systems.push_back(testing::random_system(rng, 40 + 8 * copy, 24, static_cast<SystemKind>(kind)));
      rules.push_back(copy == 0 ? RankRule::energy(0.95) : RankRule::fixed(17));
    }
  const Eigen::Index count = static_cast<Eigen::Index>(systems.size());
  std::vector<LruReduction> in_turn(systems.size()), side_by_side(systems.size());
  const int threads_before = dense_kernel_threads();
  for (Eigen::Index i = 0; i < count; ++i) in_turn[i] = reduce_diagonal_system(systems[i], rules[i]);
  // Several rounds: a race in the BLAS library would show as a crash or a
  // wrong result in some round, not necessarily the first.
  for (int round = 0; round < 5; ++round) {
    run_concurrently(count, 3, [&](Eigen::Index i) { side_by_side[i] = reduce_diagonal_system(systems[i], rules[i]); });
    for (Eigen::Index i = 0; i < count; ++i)
      expect_same_reduction(side_by_side[i], in_turn[i],
                            std::string(testing::kind_name(static_cast<SystemKind>(i / 2))) + " #" +
                                std::to_string(i) + ", round " + std::to_string(round));
  }
  EXPECT_EQ(dense_kernel_threads(), threads_before);
}

// Blocks of different sizes side by side, as after a first tolerance cut
// (with equal sizes the crash below did not show).
TEST(Concurrent, BlocksOfDifferentSizesSideBySide) {
  std::mt19937_64 rng(7);
  std::vector<DiagonalSystem> systems;
  for (int n : {64, 100, 130, 200, 93, 150}) systems.push_back(testing::random_system(rng, n, 48));
  const Eigen::Index count = static_cast<Eigen::Index>(systems.size());
  std::vector<LruReduction> in_turn(systems.size()), side_by_side(systems.size());
  for (Eigen::Index i = 0; i < count; ++i) in_turn[i] = reduce_diagonal_system(systems[i], RankRule::energy(0.9));
  for (int round = 0; round < 3; ++round) {
    run_concurrently(count, 2, [&](Eigen::Index i) {
      side_by_side[i] = reduce_diagonal_system(systems[i], RankRule::energy(0.9));
    });
    for (Eigen::Index i = 0; i < count; ++i)
      expect_same_reduction(side_by_side[i], in_turn[i], "N = " + std::to_string(systems[i].state_dim()));
  }
}

// OpenBLAS 0.3.21's Haswell/SkylakeX zgemv kernel reads up to about a column
// past its matrix; in a worker thread, whose heap ends in unmapped pages, an
// unpadded zgebrd crashed for these sizes (dense_kernels_lapack.cpp pads every
// LAPACK array). Each size runs twice, each time in a new thread that
// allocates its own arrays (without the padding: a crash in 2 runs of 3).
TEST(Concurrent, DenseKernelsInWorkerThreadsOfManySizes) {
  for (int n : {17, 64, 93, 100, 130, 150, 200, 250, 300, 384, 17, 64, 93, 100, 130, 150, 200, 250, 300, 384}) {
    std::thread worker([n] {
      std::mt19937_64 rng(static_cast<uint64_t>(n));
      std::normal_distribution<double> normal;
      MatrixXc m(n, n);
      for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = Complex(normal(rng), normal(rng));
      const Eigen::Index k = n / 4 + 1;
      const PartialSvd svd = partial_svd(m, k);
      EXPECT_LT(relative_difference(m * svd.V, svd.U * svd.singular_values.head(k).asDiagonal()), 1e-12)
          << "N = " << n;
      EXPECT_LT((partial_svd(m, VectorCountRule{}).singular_values - svd.singular_values).norm(),
                1e-12 * svd.singular_values[0])
          << "N = " << n;
      const MatrixXc small = m.topLeftCorner(n / 2 + 1, n / 2 + 1);
      const EigenDecomposition eig = eigen_decomposition(small);
      EXPECT_LT(relative_difference(small * eig.vectors, eig.vectors * eig.values.asDiagonal()), 1e-10)
          << "N = " << n;
      const MatrixXc p = m * m.adjoint() + MatrixXc::Identity(n, n);
      const GramianFactor f = psd_factor(p);
      EXPECT_LT(relative_difference(f.L * f.L.adjoint(), p), 1e-12) << "N = " << n;
    });
    worker.join();
  }
}

TEST(Concurrent, EveryTaskRunsOnceAndTheFirstFailureIsRethrown) {
  std::vector<std::atomic<int>> runs(20);
  try {
    run_concurrently(20, 2, [&](Eigen::Index i) {
      ++runs[i];
      if (i == 7 || i == 13) throw std::invalid_argument("task " + std::to_string(i));
    });
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "task 7");
  }
  for (int i = 0; i < 20; ++i) EXPECT_EQ(runs[i].load(), 1) << "task " << i;
}

TEST(Concurrent, OneJobRunsInOrderOnTheCallingThread) {
  std::vector<Eigen::Index> order;
  run_concurrently(5, 1, [&](Eigen::Index i) { order.push_back(i); });
  EXPECT_EQ(order, (std::vector<Eigen::Index>{0, 1, 2, 3, 4}));
  run_concurrently(0, 4, [&](Eigen::Index) { FAIL() << "no task expected"; });
}

TEST(BlasKernels, NeverOlderThanTheCpuRunsUnlessTheUserChose) {
  const BlasKernels& k = blas_kernels();
  if (!lapack_available()) {
    EXPECT_EQ(k.how, "no BLAS in this build");
    return;
  }
  if (k.in_use.empty()) GTEST_SKIP() << "the BLAS library does not report its kernels";
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr && *std::getenv("OPENBLAS_CORETYPE") != '\0') {
    EXPECT_EQ(k.how, "set by OPENBLAS_CORETYPE");
    return;
  }
  if (k.in_use != k.chosen_by_library) {
    EXPECT_NE(k.how.find("switched from " + k.chosen_by_library), std::string::npos);
  }
#if defined(__x86_64__)
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
                      __builtin_cpu_supports("avx512cd");
  if (avx512) {
    const std::string sets[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
    EXPECT_NE(std::find(std::begin(sets), std::end(sets), k.in_use), std::end(sets))
        << "AVX-512 CPU runs OpenBLAS kernels " << k.in_use << " (" << k.how << ")";
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    EXPECT_NE(k.in_use, "Prescott") << k.how;
  }
#endif
}

}  // namespace
}  // namespace compressm::linalg
