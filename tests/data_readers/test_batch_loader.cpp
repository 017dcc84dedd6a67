// BatchLoader: epoch coverage, determinism, exact resumption, shutdown with
// an unconsumed queue, prefetch; SequentialBatches for evaluation.
#include "data/batch_loader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

namespace {

using compressm::data::Batch;
using compressm::data::BatchLoader;
using compressm::data::Dataset;
using compressm::data::LoaderOptions;
using compressm::data::LoaderState;
using compressm::data::SequentialBatches;

// Example i has inputs {i, i + 0.5} (seq_len 2, one channel) and label i % 10.
Dataset numbered(int64_t count) {
  Dataset d;
  d.seq_len = 2;
  d.channels = 1;
  d.num_classes = 10;
  for (int64_t i = 0; i < count; ++i) {
    d.inputs.push_back(static_cast<float>(i));
    d.inputs.push_back(static_cast<float>(i) + 0.5f);
    d.labels.push_back(static_cast<int32_t>(i % 10));
  }
  return d;
}

// The example ids of a batch, checking inputs and labels agree.
std::vector<int64_t> ids(const Batch& batch) {
  std::vector<int64_t> out;
  EXPECT_EQ(batch.inputs.size(), static_cast<size_t>(batch.size * 2));
  for (int64_t k = 0; k < batch.size; ++k) {
    const int64_t i = static_cast<int64_t>(batch.inputs[k * 2]);
    EXPECT_EQ(batch.inputs[k * 2 + 1], i + 0.5f);
    EXPECT_EQ(batch.labels[k], i % 10);
    out.push_back(i);
  }
  return out;
}

std::vector<std::vector<int64_t>> take(BatchLoader& loader, int count) {
  std::vector<std::vector<int64_t>> out;
  for (int b = 0; b < count; ++b) out.push_back(ids(loader.next()));
  return out;
}

LoaderOptions options(int64_t batch_size, uint64_t seed, bool drop_last) {
  LoaderOptions o;
  o.batch_size = batch_size;
  o.seed = seed;
  o.drop_last = drop_last;
  return o;
}

TEST(BatchLoader, EachEpochCoversEveryExampleOnce) {
  const Dataset d = numbered(23);
  BatchLoader loader(d, options(5, 1, /*drop_last=*/false));
  EXPECT_EQ(loader.batches_per_epoch(), 5);
  std::vector<int64_t> previous;
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    std::vector<int64_t> seen;
    for (int b = 0; b < 5; ++b) {
      const std::vector<int64_t> batch = ids(loader.next());
      EXPECT_EQ(batch.size(), b < 4 ? 5u : 3u);
      seen.insert(seen.end(), batch.begin(), batch.end());
    }
    EXPECT_EQ(loader.state(), (LoaderState{epoch + 1, 0}));
    EXPECT_NE(seen, previous);  // a new order each epoch
    previous = seen;
    std::sort(seen.begin(), seen.end());
    for (int64_t i = 0; i < 23; ++i) EXPECT_EQ(seen[i], i);
  }
}

TEST(BatchLoader, DropLastSkipsThePartialBatch) {
  const Dataset d = numbered(23);
  BatchLoader loader(d, options(5, 1, true));
  EXPECT_EQ(loader.batches_per_epoch(), 4);
  std::vector<int64_t> seen;
  for (int b = 0; b < 4; ++b) {
    const std::vector<int64_t> batch = ids(loader.next());
    ASSERT_EQ(batch.size(), 5u);
    seen.insert(seen.end(), batch.begin(), batch.end());
  }
  EXPECT_EQ(loader.state(), (LoaderState{1, 0}));
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(std::unique(seen.begin(), seen.end()), seen.end());
}

TEST(BatchLoader, DeterministicForASeed) {
  const Dataset d = numbered(40);
  BatchLoader a(d, options(6, 3, true)), b(d, options(6, 3, true)), c(d, options(6, 4, true));
  const auto from_a = take(a, 20), from_b = take(b, 20), from_c = take(c, 20);
  EXPECT_EQ(from_a, from_b);
  EXPECT_NE(from_a, from_c);
}

TEST(BatchLoader, ResumingFromAStateGivesTheSameBatches) {
  const Dataset d = numbered(23);
  for (bool drop_last : {true, false}) {
    BatchLoader reference(d, options(5, 8, drop_last));
    std::vector<LoaderState> states = {reference.state()};
    std::vector<std::vector<int64_t>> batches;
    for (int b = 0; b < 16; ++b) {
      batches.push_back(ids(reference.next()));
      states.push_back(reference.state());
    }
    for (int k = 0; k < 8; ++k) {
      SCOPED_TRACE("drop_last " + std::to_string(drop_last) + ", resume after " + std::to_string(k));
      LoaderOptions resumed_options = options(5, 8, drop_last);
      resumed_options.start = states[k];
      BatchLoader resumed(d, resumed_options);
      EXPECT_EQ(resumed.state(), states[k]);
      for (int b = k; b < 16; ++b) {
        ASSERT_EQ(ids(resumed.next()), batches[b]);
        ASSERT_EQ(resumed.state(), states[b + 1]);
      }
    }
  }
}

TEST(BatchLoader, StartStateIsNormalised) {
  const Dataset d = numbered(23);
  LoaderOptions o = options(5, 1, true);
  o.start = {2, 21};  // fewer than a full batch left
  EXPECT_EQ(BatchLoader(d, o).state(), (LoaderState{3, 0}));
  o.drop_last = false;
  EXPECT_EQ(BatchLoader(d, o).state(), (LoaderState{2, 21}));
  o.start = {2, 23};
  EXPECT_EQ(BatchLoader(d, o).state(), (LoaderState{3, 0}));
}

TEST(BatchLoader, DestructorDoesNotHangWithAnUnconsumedQueue) {
  const Dataset d = numbered(100);
  for (int consumed : {0, 1, 3}) {
    LoaderOptions o = options(4, 1, true);
    o.prefetch = 2;
    BatchLoader loader(d, o);
    for (int b = 0; b < consumed; ++b) loader.next();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let the queue fill
  }  // each destructor must return
  SUCCEED();
}

// The producer works ahead of the consumer: while the consumer computes, the
// next `prefetch` batches get ready (a loader without its thread has none).
TEST(BatchLoader, PreparesBatchesAheadWhileTheConsumerComputes) {
  const Dataset d = numbered(2000);
  LoaderOptions o = options(50, 1, true);
  o.prefetch = 3;
  BatchLoader loader(d, o);
  const std::vector<int64_t> first = ids(loader.next());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (loader.ready_batches() < 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // "compute"
  EXPECT_EQ(loader.ready_batches(), 3);  // never more than prefetch
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(loader.ready_batches(), 3);
  // The batches prepared ahead are the ones the stream hands out next.
  BatchLoader fresh(d, o);
  EXPECT_EQ(ids(fresh.next()), first);
  for (int b = 0; b < 3; ++b) EXPECT_EQ(ids(loader.next()), ids(fresh.next()));
  EXPECT_GE(loader.wait_seconds(), 0.0);
}

// A failure on the producer thread reaches the consumer: next() hands out
// what was ready, then rethrows the producer's exception (every later call
// too), and the loader still closes. The failure: the dataset emptied while
// the producer waited for room (the loader's contract forbids it; here it
// is the one way to make gather_batch throw on the producer thread). The
// emptying happens before next() takes the loader's lock, the producer's
// next read after it: no race.
TEST(BatchLoader, AProducerFailureIsRethrownByNextAndTheLoaderStillCloses) {
  Dataset d = numbered(10);
  LoaderOptions o = options(4, 1, true);
  o.prefetch = 1;
  {
    BatchLoader loader(d, o);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (loader.ready_batches() < 1 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ASSERT_EQ(loader.ready_batches(), 1);
    d.inputs.clear();
    d.labels.clear();
    EXPECT_EQ(ids(loader.next()).size(), 4u);  // prepared before the dataset was emptied
    std::vector<std::string> messages;
    for (int call = 0; call < 2; ++call) {
      try {
        loader.next();
        ADD_FAILURE() << "call " << call << ": next() returned a batch of an empty dataset";
      } catch (const std::exception& e) {  // the producer's (a batch of 0 - 4 examples: std::length_error)
        messages.push_back(e.what());
      }
    }
    ASSERT_EQ(messages.size(), 2u);
    EXPECT_FALSE(messages[0].empty());
    EXPECT_EQ(messages[1], messages[0]) << "the same failure again";
  }  // the destructor returns
}

TEST(BatchLoader, RejectsInvalidOptions) {
  const Dataset d = numbered(10);
  EXPECT_THROW(BatchLoader(Dataset{}, options(2, 0, false)), std::invalid_argument);
  EXPECT_THROW(BatchLoader(d, options(0, 0, false)), std::invalid_argument);
  EXPECT_THROW(BatchLoader(d, options(11, 0, true)), std::invalid_argument);
  LoaderOptions o = options(2, 0, false);
  o.prefetch = 0;
  EXPECT_THROW(BatchLoader(d, o), std::invalid_argument);
  o = options(2, 0, false);
  o.start = {0, 11};
  EXPECT_THROW(BatchLoader(d, o), std::invalid_argument);
  Dataset broken = numbered(10);
  broken.inputs.pop_back();
  EXPECT_THROW(BatchLoader(broken, options(2, 0, false)), std::invalid_argument);
  BatchLoader fine(d, options(11, 0, false));  // one partial batch per epoch
  EXPECT_EQ(ids(fine.next()).size(), 10u);
}

TEST(SequentialBatches, InOrderWithAPartialLastBatch) {
  const Dataset d = numbered(23);
  const SequentialBatches batches(d, 5);
  ASSERT_EQ(batches.num_batches(), 5);
  int64_t next = 0;
  for (int64_t b = 0; b < batches.num_batches(); ++b) {
    for (int64_t i : ids(batches.batch(b))) EXPECT_EQ(i, next++);
  }
  EXPECT_EQ(next, 23);
  EXPECT_THROW(batches.batch(5), std::out_of_range);
  EXPECT_THROW(SequentialBatches(d, 0), std::invalid_argument);
}

}  // namespace
