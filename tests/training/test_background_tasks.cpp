// BackgroundTasks runs tasks in order off the calling thread, and drain()
// waits for them and reports the first failure.
#include <gtest/gtest.h>

#include <stdexcept>
#include <thread>
#include <vector>

#include "training/background_tasks.h"

namespace compressm::training {
namespace {

TEST(BackgroundTasks, RunsInOrderOnAnotherThread) {
  BackgroundTasks tasks;
  std::vector<int> seen;
  std::thread::id worker;
  for (int i = 0; i < 100; ++i)
    tasks.post([&seen, &worker, i] {
      seen.push_back(i);
      worker = std::this_thread::get_id();
    });
  tasks.drain();
  ASSERT_EQ(seen.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(seen[i], i);
  EXPECT_NE(worker, std::this_thread::get_id());
}

TEST(BackgroundTasks, DrainRethrowsTheFirstFailureOnceAndGoesOn) {
  BackgroundTasks tasks;
  int after = 0;
  tasks.post([] { throw std::runtime_error("disk full"); });
  tasks.post([] { throw std::runtime_error("second"); });
  tasks.post([&after] { after = 1; });
  try {
    tasks.drain();
    FAIL() << "no failure reported";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "disk full");
  }
  EXPECT_EQ(after, 1);
  EXPECT_NO_THROW(tasks.drain());
}

TEST(BackgroundTasks, DestructorRunsWhatIsQueued) {
  int ran = 0;
  {
    BackgroundTasks tasks;
    for (int i = 0; i < 10; ++i) tasks.post([&ran] { ++ran; });
  }
  EXPECT_EQ(ran, 10);
}

}  // namespace
}  // namespace compressm::training
