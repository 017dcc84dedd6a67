#include "kernels/parallel_check.h"

#include <ATen/Parallel.h>

#include <mutex>
#include <set>

namespace compressm::kernels {

int64_t parallel_threads_used(int64_t tasks) {
  std::mutex mutex;
  std::set<int> threads;
  at::parallel_for(0, tasks, 1, [&](int64_t, int64_t) {
    const std::lock_guard<std::mutex> lock(mutex);
    threads.insert(at::get_thread_num());
  });
  return static_cast<int64_t>(threads.size());
}

}  // namespace compressm::kernels
