#include "agent/trace/sampler.h"

#include <algorithm>
#include <cstring>

namespace sonde::trace {
namespace {

constexpr uint64_t kWindowNs = 250'000'000;

uint64_t TraceKey(const TraceId& id) {
  uint64_t a, b;
  std::memcpy(&a, id.data(), 8);
  std::memcpy(&b, id.data() + 8, 8);
  return a ^ (b * 0x9e3779b97f4a7c15ull);
}

// Uniform in [0, 1) from the trace id, the same on every agent (ids are random).
double TraceFraction(const TraceId& id) {
  uint64_t x = TraceKey(id);
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return static_cast<double>(x >> 11) * 0x1.0p-53;
}

}  // namespace

std::string_view SampleReasonName(SampleReason r) {
  switch (r) {
    case SampleReason::kBudget: return "budget";
    case SampleReason::kError: return "error";
    case SampleReason::kSlow: return "slow";
    case SampleReason::kParentSampled: return "parent_sampled";
    case SampleReason::kTrace: return "trace";
    case SampleReason::kUnlimited: return "unlimited";
    case SampleReason::kApplication: return "application";
    case SampleReason::kServiceFloor: return "service_floor";
    default: return "unknown";
  }
}

TraceSampler::TraceSampler(SamplerOptions options) : options_(options) {
  tokens_ = options_.spans_per_second;
}

bool TraceSampler::Forced(const Span& span, SampleReason* reason) const {
  if (span.status == StatusCode::kError) {
    *reason = SampleReason::kError;
    return true;
  }
  if (options_.slow_ns != 0 && span.duration_ns() >= options_.slow_ns) {
    *reason = SampleReason::kSlow;
    return true;
  }
  return false;
}

bool TraceSampler::WithinBudget(const TraceId& id, uint64_t now_ns, size_t spans) {
  const double rate = options_.spans_per_second;
  if (last_refill_ns_ != 0 && now_ns > last_refill_ns_) {
    tokens_ = std::min(rate, tokens_ + rate * static_cast<double>(now_ns - last_refill_ns_) / 1e9);
  }
  last_refill_ns_ = now_ns;
  if (TraceFraction(id) >= keep_fraction_) return false;
  if (tokens_ < static_cast<double>(spans)) return false;
  tokens_ -= static_cast<double>(spans);
  return true;
}

bool TraceSampler::WithinServiceFloor(std::string_view service, uint64_t now_ns, size_t spans) {
  const double rate = options_.min_spans_per_service;
  if (rate <= 0) return false;
  const absl::string_view name(service.data(), service.size());  // absl's own string_view here
  if (service_floor_.size() >= 4096 && !service_floor_.contains(name)) service_floor_.clear();
  auto [it, inserted] = service_floor_.try_emplace(name);
  Bucket& b = it->second;
  if (inserted) {
    b.tokens = rate;
  } else if (now_ns > b.last_refill_ns) {
    b.tokens = std::min(rate, b.tokens + rate * static_cast<double>(now_ns - b.last_refill_ns) / 1e9);
  }
  b.last_refill_ns = now_ns;
  if (b.tokens < static_cast<double>(spans)) return false;
  b.tokens -= static_cast<double>(spans);
  return true;
}

void TraceSampler::Remember(uint64_t key, uint64_t now_ns) {
  // Expiry scans the whole map: at most once per quarter of remember_ns. (It
  // used to run on every call while the map was full of recent traces -- a
  // full scan per kept span, most of the agent's CPU when many spans are
  // kept, e.g. slow ones; issue #22.)
  if (now_ns - last_expiry_ns_ > options_.remember_ns / 4) {
    for (auto it = kept_.begin(); it != kept_.end();) {
      auto cur = it++;
      if (cur->second <= now_ns) kept_.erase(cur);
    }
    last_expiry_ns_ = now_ns;
  }
  if (kept_.size() >= options_.max_remembered && !kept_.contains(key)) return;  // full of recent traces: forget this one
  kept_[key] = now_ns + options_.remember_ns;
}

void TraceSampler::Decide(const SpanGroup& spans, uint64_t now_ns, std::vector<bool>& keep) {
  keep.assign(spans.size(), false);
  if (spans.empty()) return;
  if (options_.spans_per_second <= 0) {
    keep.assign(spans.size(), true);
    counters_.kept[static_cast<size_t>(SampleReason::kUnlimited)] += spans.size();
    return;
  }
  // The keep fraction follows the offered span rate of the last window.
  window_spans_ += spans.size();
  if (window_start_ns_ == 0) window_start_ns_ = now_ns;
  if (now_ns - window_start_ns_ >= kWindowNs) {
    const double offered = static_cast<double>(window_spans_) * 1e9 / static_cast<double>(now_ns - window_start_ns_);
    keep_fraction_ = offered <= options_.spans_per_second ? 1.0 : options_.spans_per_second / offered;
    window_start_ns_ = now_ns;
    window_spans_ = 0;
  }

  // One decision for the group, keyed by its first span's trace.
  const TraceId& trace = spans.front()->trace_id;
  const uint64_t key = TraceKey(trace);
  SampleReason reason = SampleReason::kBudget;
  bool decided = false, kept = false;
  for (const auto& s : spans) {
    if (Forced(*s, &reason)) {
      decided = kept = true;
      break;
    }
  }
  if (!decided && spans.front()->source == SpanSource::kApplication) {
    // The application's own SDK sampled it; its trace stays kept here too.
    decided = kept = true;
    reason = SampleReason::kApplication;
  }
  if (!decided) {
    if (auto it = kept_.find(key); it != kept_.end() && it->second > now_ns) {
      decided = kept = true;
      reason = SampleReason::kTrace;
    }
  }
  if (!decided && options_.honour_parent_flag) {
    for (const auto& s : spans) {
      if (s->parent_sampled < 0) continue;
      decided = true;
      kept = s->parent_sampled == 1;
      reason = SampleReason::kParentSampled;
      if (!kept) counters_.dropped_parent_flag += spans.size();
      break;
    }
  }
  if (!decided) {
    kept = WithinBudget(trace, now_ns, spans.size());
    reason = SampleReason::kBudget;
    if (!kept && WithinServiceFloor(spans.front()->service_name, now_ns, spans.size())) {
      kept = true;
      reason = SampleReason::kServiceFloor;
    }
    if (!kept) counters_.dropped_budget += spans.size();
  }
  if (!kept) return;
  keep.assign(spans.size(), true);
  counters_.kept[static_cast<size_t>(reason)] += spans.size();
  Remember(key, now_ns);
  for (const auto& s : spans) {
    if (s->trace_id != trace) Remember(TraceKey(s->trace_id), now_ns);
  }
}

}  // namespace sonde::trace
