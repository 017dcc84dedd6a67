#include "data/batch_loader.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>

#include "data/split.h"

namespace compressm::data {
namespace {

void check_options(const Dataset& dataset, const LoaderOptions& options) {
  const auto invalid = [](const std::string& problem) { throw std::invalid_argument("BatchLoader: " + problem); };
  const int64_t count = dataset.count();
  if (count < 1) invalid("the dataset is empty");
  if (dataset.seq_len < 1 || dataset.channels < 1 ||
      static_cast<int64_t>(dataset.inputs.size()) != count * dataset.example_size()) {
    invalid("dataset inputs do not match {count, seq_len, channels}");
  }
  if (options.batch_size < 1) invalid("batch_size must be >= 1");
  if (options.prefetch < 1) invalid("prefetch must be >= 1");
  if (options.drop_last && count < options.batch_size) {
    invalid("drop_last with " + std::to_string(count) + " examples and batch_size " +
            std::to_string(options.batch_size) + " would never produce a batch");
  }
  if (options.start.epoch < 0 || options.start.position < 0 || options.start.position > count) {
    invalid("start state {" + std::to_string(options.start.epoch) + ", " + std::to_string(options.start.position) +
            "} is outside the dataset of " + std::to_string(count) + " examples");
  }
}

}  // namespace

uint64_t epoch_seed(uint64_t seed, int64_t epoch) {
  SplitMix64 mix(seed);
  return mix.next() ^ SplitMix64(static_cast<uint64_t>(epoch) ^ 0x65706f6368ULL).next();  // "epoch"
}

BatchLoader::BatchLoader(const Dataset& dataset, const LoaderOptions& options)
    : dataset_(dataset), options_(options) {
  check_options(dataset, options);
  state_ = normalised(options.start);
  producer_ = std::thread([this, start = state_] { produce(start); });
}

BatchLoader::~BatchLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  has_room_.notify_all();
  producer_.join();
}

int64_t BatchLoader::batches_per_epoch() const {
  const int64_t count = dataset_.count(), size = options_.batch_size;
  return options_.drop_last ? count / size : (count + size - 1) / size;
}

LoaderState BatchLoader::normalised(LoaderState state) const {
  const int64_t remaining = dataset_.count() - state.position;
  if (remaining == 0 || (options_.drop_last && remaining < options_.batch_size)) return {state.epoch + 1, 0};
  return state;
}

Batch BatchLoader::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (queue_.empty() && !failure_) {
    const auto begin = std::chrono::steady_clock::now();
    ready_.wait(lock, [this] { return !queue_.empty() || failure_; });
    wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  }
  if (queue_.empty()) std::rethrow_exception(failure_);
  Ready ready = std::move(queue_.front());
  queue_.pop_front();
  lock.unlock();
  has_room_.notify_one();
  state_ = ready.after;
  return std::move(ready.batch);
}

int64_t BatchLoader::ready_batches() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int64_t>(queue_.size());
}

void BatchLoader::produce(LoaderState start) {
  try {
    produce_loop(start);
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    failure_ = std::current_exception();
    ready_.notify_all();
  }
}

// Builds batches outside the lock; only the queue hand-off is locked.
void BatchLoader::produce_loop(LoaderState cursor) {
  std::vector<int64_t> order = seeded_permutation(dataset_.count(), epoch_seed(options_.seed, cursor.epoch));
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      has_room_.wait(lock, [this] { return stop_ || static_cast<int64_t>(queue_.size()) < options_.prefetch; });
      if (stop_) return;
    }
    const int64_t size = std::min(options_.batch_size, dataset_.count() - cursor.position);
    Ready ready{gather_batch(dataset_, order.data() + cursor.position, size), {}};
    const int64_t epoch = cursor.epoch;
    cursor = normalised({cursor.epoch, cursor.position + size});
    if (cursor.epoch != epoch) order = seeded_permutation(dataset_.count(), epoch_seed(options_.seed, cursor.epoch));
    ready.after = cursor;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(std::move(ready));
    }
    ready_.notify_one();
  }
}

}  // namespace compressm::data
