#pragma once
// Span budget: which system/network spans leave the agent. RED counts every
// request before this stage; spans are what is expensive to build, serialise,
// ship and store, so production agents keep a bounded number per second.
//
// The decision is per trace, not per span: the first span of a trace decides
// and later spans of the same trace on this node (the gateway's egress after
// its ingress, the backend's server span once linked) follow, so a kept trace
// is complete. Always kept, whatever the budget: errors, slow requests, and
// traces whose incoming context says "sampled". An incoming "not sampled"
// flag is honoured (dropped unless error or slow).
//
// Fair to quiet services: a busy service offering thousands of traces a
// second would otherwise take the whole budget, and a quiet one on the same
// node would ship almost none. Each service (of the group's first span) has a
// floor of its own: traces the budget refuses are still kept up to
// min_spans_per_service a second per service.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "agent/trace/span.h"

namespace sonde::trace {

struct SamplerOptions {
  double spans_per_second = 500;    // budget of spans kept by rate; <= 0: keep every span
  double min_spans_per_service = 10;  // per-service floor past the budget; 0: none
  uint64_t slow_ns = 500'000'000;   // spans at least this long are always kept
  bool honour_parent_flag = true;   // traceparent/b3 sampled flag decides when present
  uint64_t remember_ns = 10'000'000'000;  // how long a kept trace stays kept (> linker hold)
  size_t max_remembered = 200'000;        // kept traces remembered at most
};

enum class SampleReason : uint8_t {
  kBudget = 0,        // kept within the rate budget
  kError = 1,         // span status error
  kSlow = 2,          // duration >= slow_ns
  kParentSampled = 3, // incoming context sampled
  kTrace = 4,         // an earlier span of the same trace was kept
  kUnlimited = 5,     // no budget configured
  kApplication = 6,   // an OTLP app span: sampled by its SDK already
  kServiceFloor = 7,  // the budget was spent by busier services: the service's own floor
  kCount = 8,
};
std::string_view SampleReasonName(SampleReason r);

struct SamplerCounters {
  uint64_t kept[static_cast<size_t>(SampleReason::kCount)] = {};
  uint64_t dropped_budget = 0;         // left out: budget spent
  uint64_t dropped_parent_flag = 0;    // left out: incoming context not sampled
};

class TraceSampler {
 public:
  explicit TraceSampler(SamplerOptions options = {});

  // Decides for a group of spans emitted together (an ingress span with the
  // egress spans linked to it): a span that must be kept keeps its whole
  // trace. Sets keep[i] for each span. `now_ns`: any monotonic clock.
  void Decide(const SpanGroup& spans, uint64_t now_ns, std::vector<bool>& keep);

  const SamplerCounters& counters() const { return counters_; }
  size_t remembered_traces() const { return kept_.size(); }

 private:
  bool Forced(const Span& span, SampleReason* reason) const;
  // Budget decision by trace id: keep when the id's hash is under the current
  // keep fraction. The same trace decides the same way on every agent whose
  // fraction is alike, and a token bucket caps bursts (the fraction follows
  // the span rate of the previous quarter second).
  bool WithinBudget(const TraceId& id, uint64_t now_ns, size_t spans);
  void Remember(uint64_t key, uint64_t now_ns);
  // Within the floor of `service` (a token bucket per service).
  bool WithinServiceFloor(std::string_view service, uint64_t now_ns, size_t spans);
  struct Bucket {
    double tokens = 0;
    uint64_t last_refill_ns = 0;
  };
  absl::flat_hash_map<std::string, Bucket> service_floor_;  // bounded (cleared past 4,096 services)

  SamplerOptions options_;
  SamplerCounters counters_;
  double keep_fraction_ = 1.0;
  double tokens_ = 0;
  uint64_t window_start_ns_ = 0;
  uint64_t window_spans_ = 0;
  uint64_t last_refill_ns_ = 0;
  absl::flat_hash_map<uint64_t, uint64_t> kept_;  // trace key -> expiry
  uint64_t last_expiry_ns_ = 0;
};

}  // namespace sonde::trace
