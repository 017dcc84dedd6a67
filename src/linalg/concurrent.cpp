#include "linalg/concurrent.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <thread>
#include <vector>

#include "linalg/dense_kernels.h"

namespace compressm::linalg {
namespace {

// Sets the BLAS thread count for its lifetime and restores the previous one,
// also when a task's exception is on its way out.
class BlasThreadsScope {
 public:
  explicit BlasThreadsScope(int threads) : before_(dense_kernel_threads()) { set_dense_kernel_threads(threads); }
  ~BlasThreadsScope() { set_dense_kernel_threads(before_); }
  BlasThreadsScope(const BlasThreadsScope&) = delete;
  BlasThreadsScope& operator=(const BlasThreadsScope&) = delete;

 private:
  int before_;
};

}  // namespace

void run_concurrently(Eigen::Index count, int jobs, const std::function<void(Eigen::Index)>& task) {
  if (count <= 0) return;
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
  const Eigen::Index workers = std::min<Eigen::Index>(std::max(jobs, 1), count);
  if (workers == 1) {
    work();
  } else {
    BlasThreadsScope single_threaded_blas(1);
    std::vector<std::thread> threads;
    threads.reserve(static_cast<size_t>(workers - 1));
    for (Eigen::Index w = 1; w < workers; ++w) {
      try {
        threads.emplace_back(work);
      } catch (...) {
        break;  // no more threads to be had: the ones running share the tasks
      }
    }
    work();
    for (std::thread& t : threads) t.join();
  }
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace compressm::linalg
