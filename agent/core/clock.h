#pragma once
// Converts CLOCK_MONOTONIC timestamps (what BPF records) to Unix time. The
// offset drifts with NTP slews, so it is re-measured periodically.
#include <atomic>
#include <cstdint>

namespace sonde::core {

uint64_t MonotonicNowNs();
uint64_t RealtimeNowNs();

class MonotonicToRealtime {
 public:
  MonotonicToRealtime() { Refresh(); }
  // Re-measure the offset (cheap: two clock reads, best of three).
  void Refresh();
  uint64_t ToUnixNs(uint64_t monotonic_ns) const {
    return monotonic_ns + offset_ns_.load(std::memory_order_relaxed);
  }
  int64_t offset_ns() const { return static_cast<int64_t>(offset_ns_.load()); }
  // Tests and recorded files inject a fixed offset.
  void SetOffset(uint64_t offset_ns) { offset_ns_.store(offset_ns); }

 private:
  std::atomic<uint64_t> offset_ns_{0};
};

}  // namespace sonde::core
