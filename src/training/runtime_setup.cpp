#include "training/runtime_setup.h"

#include <ATen/Parallel.h>
#include <malloc.h>

#include <cstdlib>
#include <thread>

namespace compressm::training {

void configure_runtime(int threads) {
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, -1);
  setenv("OPENBLAS_NUM_THREADS", "1", /*overwrite=*/0);
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  at::set_num_threads(threads > 0 ? threads : (cores > 0 ? cores : 1));
}

}  // namespace compressm::training
