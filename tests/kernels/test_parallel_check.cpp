// The kernels' at::parallel_for runs on several threads: it is compiled in our
// translation units and silently serial without -fopenmp there.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include "kernels/parallel_check.h"

namespace compressm::kernels {
namespace {

TEST(ParallelCheck, KernelsUseTheIntraOpThreads) {
  const int threads = at::get_num_threads();
  at::set_num_threads(2);
  EXPECT_EQ(parallel_threads_used(16), 2);
  at::set_num_threads(1);
  EXPECT_EQ(parallel_threads_used(16), 1);
  at::set_num_threads(threads);
}

}  // namespace
}  // namespace compressm::kernels
