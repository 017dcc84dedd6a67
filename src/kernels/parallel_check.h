// How many threads at::parallel_for really uses when compiled in this library
// (it needs -fopenmp here, not only in LibTorch; see CMakeLists.txt).
#pragma once

#include <cstdint>

namespace compressm::kernels {

// Runs `tasks` trivial tasks through at::parallel_for (grain 1) and returns
// the number of distinct threads that ran them.
int64_t parallel_threads_used(int64_t tasks);

}  // namespace compressm::kernels
