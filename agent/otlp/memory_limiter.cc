#include "agent/otlp/memory_limiter.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>

namespace sonde::otlp {
namespace {

uint64_t ReadStatmRss() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long long size = 0, resident = 0;
  const int n = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  return n == 2 ? resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) : 0;
}

int64_t MonotonicNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

MemoryLimiter::MemoryLimiter(MemoryLimits limits, std::function<uint64_t()> rss)
    : limits_(limits), rss_(rss ? std::move(rss) : ReadStatmRss) {
  if (limits_.hard_bytes < limits_.soft_bytes) limits_.hard_bytes = limits_.soft_bytes;
}

uint64_t MemoryLimiter::Held(uint64_t inflight) const {
  uint64_t held = inflight;
  for (const auto& gauge : gauges_) held += gauge();
  return held;
}

bool MemoryLimiter::OverRssCeiling() const {
  if (limits_.rss_ceiling_bytes == 0) return false;
  const int64_t now = MonotonicNs();
  if (now - rss_read_ns_.load(std::memory_order_relaxed) > 100'000'000) {
    rss_read_ns_.store(now, std::memory_order_relaxed);
    rss_bytes_.store(rss_(), std::memory_order_relaxed);
  }
  return rss_bytes_.load(std::memory_order_relaxed) > limits_.rss_ceiling_bytes;
}

MemoryLevel MemoryLimiter::Check(uint64_t inflight) const {
  if (!enabled()) return MemoryLevel::kBelow;
  const uint64_t held = Held(inflight);
  if (held > limits_.hard_bytes) return MemoryLevel::kHard;
  if (held > limits_.soft_bytes || OverRssCeiling()) return MemoryLevel::kSoft;
  return MemoryLevel::kBelow;
}

}  // namespace sonde::otlp
