// Shuffled training batches, prepared on a background thread.
//
// Epoch e visits the examples in the order seeded_permutation(count,
// epoch_seed(seed, e)) (split.h), `batch_size` at a time; with drop_last the
// final count % batch_size examples of each epoch are skipped, otherwise the
// last batch is smaller. The stream never ends: after the last batch of epoch
// e comes the first batch of epoch e + 1. A producer thread keeps up to
// `prefetch` batches ready so the consumer does not wait when its compute per
// batch is slower than the loading.
//
// Exact resumption: state() after next() says where the NEXT batch starts;
// a new loader built with options.start = that state (and the same dataset,
// batch size, seed and drop_last) hands out exactly the batches the old one
// would have handed out next.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "data/batch.h"
#include "data/dataset.h"

namespace compressm::data {

// Position in the batch stream: the next batch starts at index `position` of
// epoch `epoch`'s permutation. Always normalised: a position at the end of an
// epoch (or, with drop_last, too close to its end for a full batch) is
// written as {epoch + 1, 0}.
struct LoaderState {
  int64_t epoch = 0;
  int64_t position = 0;
  bool operator==(const LoaderState& other) const { return epoch == other.epoch && position == other.position; }
  bool operator!=(const LoaderState& other) const { return !(*this == other); }
};

struct LoaderOptions {
  int64_t batch_size = 50;
  uint64_t seed = 0;
  bool drop_last = true;
  int64_t prefetch = 4;    // batches kept ready, >= 1
  LoaderState start = {};  // where to begin (resumption)
};

// The permutation seed of epoch `epoch` (SplitMix64-mixed, so neighbouring
// epochs and seeds give unrelated orders).
uint64_t epoch_seed(uint64_t seed, int64_t epoch);

class BatchLoader {
 public:
  // `dataset` must outlive the loader and not change while it runs. Throws
  // std::invalid_argument for an empty or inconsistent dataset, batch_size < 1,
  // prefetch < 1, drop_last with fewer examples than one batch, or a start
  // state outside [0, count] / with a negative epoch.
  BatchLoader(const Dataset& dataset, const LoaderOptions& options);
  // Stops and joins the producer, even with a full queue nobody consumes.
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  // The next batch; blocks while none is ready (the time counts in
  // wait_seconds()). Rethrows an exception the producer hit.
  Batch next();
  // Resume point after the batch most recently returned by next()
  // (options.start, normalised, before the first call).
  LoaderState state() const { return state_; }
  // Total seconds next() spent blocked waiting for the producer.
  double wait_seconds() const { return wait_seconds_; }
  // Batches per epoch: count / batch_size with drop_last, else rounded up.
  int64_t batches_per_epoch() const;
  // Batches the producer has ready now (at most options.prefetch).
  int64_t ready_batches() const;

 private:
  struct Ready {
    Batch batch;
    LoaderState after;  // state once this batch is handed out
  };

  LoaderState normalised(LoaderState state) const;
  void produce(LoaderState start);
  void produce_loop(LoaderState cursor);

  const Dataset& dataset_;
  const LoaderOptions options_;
  LoaderState state_;
  double wait_seconds_ = 0;

  mutable std::mutex mutex_;
  std::condition_variable ready_;     // a batch was queued (or the producer failed)
  std::condition_variable has_room_;  // a batch was taken (or stop was asked)
  std::deque<Ready> queue_;
  bool stop_ = false;
  std::exception_ptr failure_;
  std::thread producer_;  // last member: starts after everything above exists
};

}  // namespace compressm::data
