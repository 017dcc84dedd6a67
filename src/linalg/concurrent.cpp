#include "linalg/concurrent.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <system_error>
#include <thread>
#include <vector>

#include "linalg/dense_kernels.h"

namespace compressm::linalg {

void run_concurrently(Eigen::Index count, int jobs, const std::function<void(Eigen::Index)>& task) {
  if (count <= 0) return;
  const Eigen::Index workers = std::min<Eigen::Index>(std::max(jobs, 1), count);
  if (workers == 1) {
    for (Eigen::Index i = 0; i < count; ++i) task(i);
    return;
  }
  std::vector<std::exception_ptr> errors(static_cast<size_t>(count));
  std::atomic<Eigen::Index> next{0};
  auto work = [&] {
    for (Eigen::Index i = next++; i < count; i = next++) {
      try {
        task(i);
      } catch (...) {
        errors[static_cast<size_t>(i)] = std::current_exception();
      }
    }
  };
  const int blas_threads = dense_kernel_threads();
  set_dense_kernel_threads(1);
  std::vector<std::thread> threads;
  for (Eigen::Index w = 1; w < workers; ++w) {
    try {
      threads.emplace_back(work);
    } catch (const std::system_error&) {
      break;  // no more threads to be had: the ones running share the tasks
    }
  }
  work();
  for (std::thread& t : threads) t.join();
  set_dense_kernel_threads(blas_threads);
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace compressm::linalg
