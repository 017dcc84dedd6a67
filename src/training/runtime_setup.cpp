#include "training/runtime_setup.h"

#include <ATen/Parallel.h>
#include <malloc.h>

#include <cstdlib>

namespace compressm::training {

void configure_runtime(int threads) {
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, -1);
  setenv("OPENBLAS_NUM_THREADS", "1", /*overwrite=*/0);
  at::set_num_threads(threads > 0 ? threads : 2);
}

}  // namespace compressm::training
