#pragma once
// The OTLP memory limiter (issue #17), like the OpenTelemetry Collector's
// memory_limiter: the bytes OTLP work holds anywhere in the agent -- request
// bodies being read and decoded by the receivers, and converted spans waiting
// in queues downstream (each queue registers a gauge: the pipeline's inbox,
// the exporter's queue) -- are compared with
// two limits:
//   soft: new OTLP requests are shed (HTTP 503 + Retry-After, gRPC
//         RESOURCE_EXHAUSTED + RetryInfo): senders back off and retry;
//   hard: items of requests already admitted are dropped before they are
//         queued, and counted (the request still answers 503 /
//         RESOURCE_EXHAUSTED, so a retrying sender loses nothing).
// The agent's resident-memory ceiling (--memory-limit-mb, conn::MemoryCeiling)
// also counts: past it OTLP work is shed as above the soft limit, so OTLP
// does not grow the process while the tracker is shedding its own state.
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace sonde::otlp {

struct MemoryLimits {
  uint64_t soft_bytes = 256u << 20;  // 0: no limiter
  uint64_t hard_bytes = 320u << 20;  // >= soft_bytes
  uint64_t rss_ceiling_bytes = 0;    // the agent's resident ceiling; 0: none
};

enum class MemoryLevel : uint8_t { kBelow = 0, kSoft = 1, kHard = 2 };

class MemoryLimiter {
 public:
  // `rss` reads the process's resident set size (bytes); tests inject one.
  explicit MemoryLimiter(MemoryLimits limits, std::function<uint64_t()> rss = nullptr);

  // A queue holding OTLP-derived data: its bytes now. Register before the
  // receivers start; called on every check, from any thread.
  void AddGauge(std::function<uint64_t()> bytes) { gauges_.push_back(std::move(bytes)); }

  // Bytes held: `inflight` (the receivers' admitted bodies) plus every gauge.
  uint64_t Held(uint64_t inflight) const;
  MemoryLevel Check(uint64_t inflight) const;

  const MemoryLimits& limits() const { return limits_; }
  bool enabled() const { return limits_.soft_bytes != 0; }

 private:
  bool OverRssCeiling() const;

  MemoryLimits limits_;
  std::function<uint64_t()> rss_;
  std::vector<std::function<uint64_t()>> gauges_;
  // /proc/self/statm is read at most every 100 ms, whatever the request rate.
  mutable std::atomic<int64_t> rss_read_ns_{0};
  mutable std::atomic<uint64_t> rss_bytes_{0};
};

}  // namespace sonde::otlp
