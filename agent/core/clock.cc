#include "agent/core/clock.h"

#include <time.h>

#include <limits>

namespace sonde::core {
namespace {
uint64_t Read(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}
}  // namespace

uint64_t MonotonicNowNs() { return Read(CLOCK_MONOTONIC); }
uint64_t RealtimeNowNs() { return Read(CLOCK_REALTIME); }

void MonotonicToRealtime::Refresh() {
  // Bracket the realtime read between two monotonic reads and keep the
  // tightest bracket, so a preemption between reads does not skew the offset.
  uint64_t best_width = std::numeric_limits<uint64_t>::max();
  uint64_t best_offset = 0;
  for (int i = 0; i < 3; ++i) {
    const uint64_t m1 = MonotonicNowNs();
    const uint64_t r = RealtimeNowNs();
    const uint64_t m2 = MonotonicNowNs();
    if (m2 - m1 < best_width) {
      best_width = m2 - m1;
      best_offset = r - (m1 + (m2 - m1) / 2);
    }
  }
  offset_ns_.store(best_offset, std::memory_order_relaxed);
}

}  // namespace sonde::core
