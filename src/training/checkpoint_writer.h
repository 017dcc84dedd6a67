// Writes checkpoints on a background thread so the training loop never waits
// for the disk: the loop captures CPU clones (capture_checkpoint) and hands
// them over; the writer saves them in order.
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <filesystem>
#include <mutex>
#include <thread>
#include <utility>

#include "training/checkpoint.h"

namespace compressm::training {

class CheckpointWriter {
 public:
  CheckpointWriter();
  // Finishes the queued writes (errors are dropped here: call finish() to see them).
  ~CheckpointWriter();
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  // Queues a write; blocks only while two writes are already queued (bounds
  // the memory held by clones). Rethrows an earlier write's failure.
  void submit(CheckpointContents contents, std::filesystem::path destination);
  // Waits for every queued write; rethrows the first failure.
  void finish();

 private:
  void run();
  void rethrow_failure();

  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::pair<CheckpointContents, std::filesystem::path>> queue_;
  bool busy_ = false;
  bool stop_ = false;
  std::exception_ptr failure_;
  std::thread thread_;  // last member: starts after everything above exists
};

}  // namespace compressm::training
