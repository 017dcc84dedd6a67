// One worker thread that runs small I/O tasks in order (progress lines,
// curve.csv), so the training loop never blocks on a terminal, a pipe or the
// disk. Checkpoints have their own writer (checkpoint_writer.h), which also
// bounds the memory their clones hold.
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

namespace compressm::training {

class BackgroundTasks {
 public:
  BackgroundTasks();
  // Runs what is queued, then stops (failures are dropped: call drain() to see them).
  ~BackgroundTasks();
  BackgroundTasks(const BackgroundTasks&) = delete;
  BackgroundTasks& operator=(const BackgroundTasks&) = delete;

  // Queues `task`; it runs after every task posted before it.
  void post(std::function<void()> task);
  // Waits until every posted task has run; rethrows the first failure.
  void drain();

 private:
  void run();

  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::function<void()>> queue_;
  bool busy_ = false;
  bool stop_ = false;
  std::exception_ptr failure_;
  std::thread thread_;  // last member: starts after everything above exists
};

}  // namespace compressm::training
