#include "training/runtime_setup.h"

#include <ATen/Parallel.h>
#include <malloc.h>

#include <cstdlib>
#include <thread>

#include "linalg/dense_kernels.h"

namespace compressm::training {

void configure_runtime(int threads) {
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, -1);
  // OpenBLAS read its environment when it was loaded, before main: setting
  // OPENBLAS_NUM_THREADS here would change nothing (measured: a 2-thread sMNIST
  // step took 35-40 ms with OpenBLAS's default of one thread per core, 23-24
  // ms with one), so the thread count is set through its API.
  if (std::getenv("OPENBLAS_NUM_THREADS") == nullptr) linalg::set_dense_kernel_threads(1);
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  at::set_num_threads(threads > 0 ? threads : (cores > 0 ? cores : 1));
}

}  // namespace compressm::training
