// Independent linear-algebra jobs (one per LRU block) on several threads.
#pragma once

#include <Eigen/Core>
#include <functional>

namespace compressm::linalg {

// Runs task(0), ..., task(count - 1), up to `jobs` of them at a time on their
// own threads; jobs <= 1 (or one task) runs them in order on the calling
// thread with the BLAS threads as they are. While tasks run side by side each
// BLAS/LAPACK call is single-threaded, and the previous thread count is
// restored afterwards: one small factorisation per core scales far better
// than two threads sharing each one (zgebrd on N = 384 gains 1.06x from a
// second thread; two blocks at once gain ~1.7x). Every task runs even if
// another throws; then the exception of the lowest index is rethrown.
// Tasks must not share mutable state. The LAPACK backend is safe in worker
// threads because it pads every array it passes to OpenBLAS
// (dense_kernels_lapack.cpp explains the over-read that made it crash).
void run_concurrently(Eigen::Index count, int jobs, const std::function<void(Eigen::Index)>& task);

}  // namespace compressm::linalg
