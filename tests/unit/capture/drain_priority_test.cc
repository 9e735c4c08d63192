#include "agent/capture/drain_priority.h"

#include <sys/resource.h>
#include <unistd.h>

#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <sched.h>

namespace sonde::capture {
namespace {

constexpr uint64_t kMs = 1'000'000;

DrainPriorityOptions Options() {
  DrainPriorityOptions o;
  o.background_nice = 19;
  o.catch_up_nice = -5;
  o.behind_fill = 0.5;
  o.calm_ns = 1000 * kMs;
  return o;
}

TEST(DrainPriorityPolicyTest, StaysInTheBackgroundWhileTheRingBufferDrains) {
  DrainPriorityPolicy p(Options());
  for (uint64_t t = 0; t < 5000 * kMs; t += 10 * kMs) {
    EXPECT_EQ(p.Observe(t, 0.49 * static_cast<double>((t / (10 * kMs)) % 5) / 4), std::nullopt);
  }
  EXPECT_EQ(p.level(), DrainLevel::kBackground);
}

TEST(DrainPriorityPolicyTest, HalfFullMovesItAheadUntilBelowForTheCalmPeriod) {
  DrainPriorityPolicy p(Options());
  EXPECT_EQ(p.Observe(100 * kMs, 0.5), DrainLevel::kCatchUp);
  EXPECT_EQ(p.Observe(110 * kMs, 0.9), std::nullopt);  // still behind: no second move
  EXPECT_EQ(p.Observe(120 * kMs, 0.1), std::nullopt);  // caught up, not for long enough
  EXPECT_EQ(p.Observe(600 * kMs, 0.6), std::nullopt);  // behind again: the calm period restarts
  EXPECT_EQ(p.Observe(1599 * kMs, 0.0), std::nullopt);
  EXPECT_EQ(p.Observe(1600 * kMs, 0.0), DrainLevel::kBackground);
  EXPECT_EQ(p.level(), DrainLevel::kBackground);
  EXPECT_EQ(p.Observe(1610 * kMs, 0.7), DrainLevel::kCatchUp);
}

TEST(DrainPriorityPolicyTest, BehindSoonAfterGoingBackDoublesTheCalmPeriod) {
  DrainPriorityOptions o = Options();
  o.max_calm_ns = 3000 * kMs;
  DrainPriorityPolicy p(o);
  uint64_t t = 0;
  ASSERT_EQ(p.Observe(t, 0.6), DrainLevel::kCatchUp);
  const uint64_t expected[] = {1000, 2000, 3000, 3000};  // capped
  for (uint64_t calm_ms : expected) {
    EXPECT_EQ(p.calm_ns(), calm_ms * kMs);
    t += calm_ms * kMs;
    ASSERT_EQ(p.Observe(t, 0.0), DrainLevel::kBackground);
    t += 50 * kMs;  // starved at once: behind again
    ASSERT_EQ(p.Observe(t, 0.6), DrainLevel::kCatchUp);
  }
  // A long quiet stretch in the background resets it.
  t += 3000 * kMs;
  ASSERT_EQ(p.Observe(t, 0.0), DrainLevel::kBackground);
  t += 10000 * kMs;
  ASSERT_EQ(p.Observe(t, 0.6), DrainLevel::kCatchUp);
  EXPECT_EQ(p.calm_ns(), 1000 * kMs);
}

TEST(DrainPriorityTest, AppliesEachMoveOnceAndCountsCatchUps) {
  std::vector<int> applied;
  DrainPriority p(Options(), [&](int nice) {
    applied.push_back(nice);
    return true;
  });
  EXPECT_EQ(p.nice(), 19);
  p.Observe(100 * kMs, 0.8);
  p.Observe(110 * kMs, 0.8);
  EXPECT_EQ(p.nice(), -5);
  p.Observe(2000 * kMs, 0);
  EXPECT_EQ(p.nice(), 19);
  EXPECT_EQ(applied, (std::vector<int>{-5, 19}));
  EXPECT_EQ(p.catch_ups(), 1u);
}

// The real scheduler: every thread of the process moves (a nice value is per
// thread on Linux), threads started before and after alike.
TEST(DrainPriorityTest, SetProcessNiceMovesEveryThread) {
  if (!CanRegainNice(0)) GTEST_SKIP() << "needs CAP_SYS_NICE (root)";
  std::atomic<pid_t> tid{0};
  std::atomic<bool> done{false};
  std::thread other([&] {
    tid = gettid();
    while (!done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  while (tid == 0) std::this_thread::yield();
  ASSERT_TRUE(SetProcessNice(7, 0));
  EXPECT_EQ(getpriority(PRIO_PROCESS, static_cast<id_t>(tid.load())), 7);
  EXPECT_EQ(getpriority(PRIO_PROCESS, static_cast<id_t>(gettid())), 7);
  ASSERT_TRUE(SetProcessNice(0, tid));  // skipped: keeps 7
  EXPECT_EQ(getpriority(PRIO_PROCESS, static_cast<id_t>(tid.load())), 7);
  EXPECT_EQ(getpriority(PRIO_PROCESS, static_cast<id_t>(gettid())), 0);
  ASSERT_TRUE(SetProcessNice(0, 0));
  done = true;
  other.join();
}

TEST(DrainPriorityTest, IdleBackgroundAndBack) {
  if (!CanRegainNice(0, /*from_idle=*/true)) GTEST_SKIP() << "needs CAP_SYS_NICE (root)";
  std::thread([] {
    ASSERT_TRUE(SetProcessNice(19, 0, /*idle=*/true));
    EXPECT_EQ(sched_getscheduler(0), SCHED_IDLE);
    EXPECT_EQ(getpriority(PRIO_PROCESS, static_cast<id_t>(gettid())), 19);
    ASSERT_TRUE(SetProcessNice(0, 0));
    EXPECT_EQ(sched_getscheduler(0), SCHED_OTHER);
    EXPECT_EQ(getpriority(PRIO_PROCESS, static_cast<id_t>(gettid())), 0);
  }).join();
}

}  // namespace
}  // namespace sonde::capture
