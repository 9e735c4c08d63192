#include "agent/core/clock.h"

#include <gtest/gtest.h>

namespace sonde::core {
namespace {

TEST(Clock, MonotonicConvertsToNow) {
  MonotonicToRealtime conv;
  const uint64_t unix_now = RealtimeNowNs();
  const uint64_t converted = conv.ToUnixNs(MonotonicNowNs());
  const int64_t diff = static_cast<int64_t>(converted - unix_now);
  EXPECT_LT(std::llabs(diff), 5'000'000) << "conversion off by " << diff << " ns";
}

TEST(Clock, InjectedOffsetIsUsed) {
  MonotonicToRealtime conv;
  conv.SetOffset(1000);
  EXPECT_EQ(conv.ToUnixNs(5), 1005u);
}

}  // namespace
}  // namespace sonde::core
