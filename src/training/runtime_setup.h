// Process-wide settings for training and evaluation, applied once at start.
#pragma once

namespace compressm::training {

// Keeps glibc from returning big freed blocks to the OS (each training step
// would page-fault them back in: mallopt M_MMAP_MAX = 0, M_TRIM_THRESHOLD = -1),
// runs BLAS calls on one thread unless the user set OPENBLAS_NUM_THREADS
// (LibTorch parallelises above BLAS; nested pools oversubscribe) and LibTorch's intra-op threads to
// `threads` (0 = every core the machine reports). Call before any tensor or BLAS work.
void configure_runtime(int threads);

}  // namespace compressm::training
