// The span budget's decisions: per trace, forced keeps, the parent's flag.
#include "agent/trace/sampler.h"

#include <gtest/gtest.h>

#include <cstring>

namespace sonde::trace {
namespace {

Span SpanOf(uint8_t trace_byte, uint64_t duration_ns = 1'000'000) {
  Span s;
  s.trace_id[0] = trace_byte;
  s.trace_id[15] = static_cast<uint8_t>(trace_byte * 7 + 1);
  s.start_unix_ns = 1'000'000'000;
  s.end_unix_ns = s.start_unix_ns + duration_ns;
  return s;
}

// The pipeline hands the sampler groups of owned spans.
void Decide(TraceSampler& sampler, const std::vector<Span>& spans, uint64_t now_ns, std::vector<bool>& keep) {
  SpanGroup group;
  for (const Span& s : spans) group.push_back(std::make_unique<Span>(s));
  sampler.Decide(group, now_ns, keep);
}

TEST(TraceSampler, ErrorsSlowAndParentSampledAreKeptWithAnEmptyBudget) {
  TraceSampler sampler({.spans_per_second = 1e-9, .min_spans_per_service = 0, .slow_ns = 500'000'000});
  std::vector<bool> keep;
  std::vector<Span> group{SpanOf(1), SpanOf(1)};
  group[1].status = StatusCode::kError;  // one error keeps its whole group
  Decide(sampler, group, 1, keep);
  EXPECT_EQ(keep, std::vector<bool>({true, true}));

  group = {SpanOf(2, 600'000'000)};
  Decide(sampler, group, 2, keep);
  EXPECT_TRUE(keep[0]);

  group = {SpanOf(3)};
  group[0].parent_sampled = 1;
  Decide(sampler, group, 3, keep);
  EXPECT_TRUE(keep[0]);

  group = {SpanOf(4)};
  group[0].parent_sampled = 0;
  Decide(sampler, group, 4, keep);
  EXPECT_FALSE(keep[0]);

  group = {SpanOf(5)};
  Decide(sampler, group, 5, keep);
  EXPECT_FALSE(keep[0]) << "no budget left";

  const auto& c = sampler.counters();
  EXPECT_EQ(c.kept[static_cast<size_t>(SampleReason::kError)], 2u);
  EXPECT_EQ(c.kept[static_cast<size_t>(SampleReason::kSlow)], 1u);
  EXPECT_EQ(c.kept[static_cast<size_t>(SampleReason::kParentSampled)], 1u);
  EXPECT_EQ(c.dropped_parent_flag, 1u);
  EXPECT_EQ(c.dropped_budget, 1u);
}

TEST(TraceSampler, LaterSpansOfAKeptTraceAreKept) {
  TraceSampler sampler({.spans_per_second = 1e-9, .min_spans_per_service = 0});
  std::vector<bool> keep;
  std::vector<Span> group{SpanOf(9)};
  group[0].status = StatusCode::kError;
  Decide(sampler, group, 10, keep);
  ASSERT_TRUE(keep[0]);
  group = {SpanOf(9)};  // same trace, fine this time: follows the trace's decision
  Decide(sampler, group, 20, keep);
  EXPECT_TRUE(keep[0]);
  EXPECT_EQ(sampler.counters().kept[static_cast<size_t>(SampleReason::kTrace)], 1u);
}

TEST(TraceSampler, BudgetHoldsAtHighOfferedRates) {
  TraceSampler sampler({.spans_per_second = 1000, .min_spans_per_service = 0});
  std::vector<bool> keep;
  uint64_t kept = 0;
  // 100k single-span traces over 2 s (50k spans/s offered).
  for (uint32_t i = 0; i < 100'000; ++i) {
    std::vector<Span> group{SpanOf(0)};
    uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull;  // distinct, random-looking ids
    x ^= x >> 31;
    std::memcpy(group[0].trace_id.data(), &x, sizeof x);
    x *= 0xbf58476d1ce4e5b9ull;
    std::memcpy(group[0].trace_id.data() + 8, &x, sizeof x);
    Decide(sampler, group, 1 + static_cast<uint64_t>(i) * 20'000, keep);
    kept += keep[0];
  }
  EXPECT_GE(kept, 1000u);
  EXPECT_LE(kept, 3100u);  // 2 s of budget plus one burst
}

// Remembered traces are bounded; once the map is full of recent traces new
// ones are forgotten until the next expiry (a quarter of remember_ns), and
// expiry makes room again.
TEST(TraceSampler, RememberedTracesBoundedAndExpiredWhenFull) {
  TraceSampler sampler({.spans_per_second = 1e-9, .min_spans_per_service = 0, .slow_ns = 500'000'000, .remember_ns = 4'000,
                        .max_remembered = 4});
  std::vector<bool> keep;
  for (uint8_t t = 1; t <= 10; ++t) {
    std::vector<Span> slow{SpanOf(t, 600'000'000)};  // forced keep: remembered
    Decide(sampler, slow, 100 + t, keep);
    ASSERT_TRUE(keep[0]);
  }
  EXPECT_EQ(sampler.remembered_traces(), 4u);
  std::vector<Span> later{SpanOf(2)};
  Decide(sampler, later, 200, keep);
  EXPECT_TRUE(keep[0]) << "a remembered trace is still kept";
  later = {SpanOf(9)};
  Decide(sampler, later, 200, keep);
  EXPECT_FALSE(keep[0]) << "forgotten while the map was full";
  // After the traces expired, a new kept trace is remembered again.
  std::vector<Span> slow{SpanOf(20, 600'000'000)};
  Decide(sampler, slow, 10'000, keep);
  EXPECT_EQ(sampler.remembered_traces(), 1u);
}

// A busy service (10,000 traces/s) and a quiet one (5/s) share a 100
// spans/s budget: without a floor the quiet one would keep ~0.05 trace/s;
// with a floor of 10 spans/s per service it keeps every trace, and the busy
// one stays within budget + its own floor.
TEST(TraceSampler, QuietServiceKeepsItsTracesNextToABusyOne) {
  for (const double floor : {0.0, 10.0}) {
    TraceSampler sampler({.spans_per_second = 100, .min_spans_per_service = floor});
    std::vector<bool> keep;
    uint64_t busy_kept = 0, quiet_kept = 0, quiet_offered = 0;
    uint64_t n = 0;
    for (uint64_t t = 0; t < 4'000'000'000; t += 100'000) {  // 4 s, a busy trace every 100 us
      auto trace = [&n](const char* service) {
        Span s = SpanOf(0);
        uint64_t x = ++n * 0x9e3779b97f4a7c15ull;
        x ^= x >> 29;
        std::memcpy(s.trace_id.data(), &x, sizeof x);
        x *= 0xbf58476d1ce4e5b9ull;
        std::memcpy(s.trace_id.data() + 8, &x, sizeof x);
        s.service_name = service;
        return s;
      };
      Decide(sampler, {trace("gateway")}, 1 + t, keep);
      busy_kept += keep[0];
      if (t % 200'000'000 == 0) {  // 5 quiet traces a second
        ++quiet_offered;
        Decide(sampler, {trace("billing")}, 1 + t, keep);
        quiet_kept += keep[0];
      }
    }
    SCOPED_TRACE("floor " + std::to_string(floor));
    EXPECT_LE(busy_kept, 4 * (100 + 10) + 200u);
    if (floor > 0) {
      EXPECT_EQ(quiet_kept, quiet_offered);
      EXPECT_GT(sampler.counters().kept[static_cast<size_t>(SampleReason::kServiceFloor)], 0u);
    } else {
      EXPECT_LE(quiet_kept, 3u);  // the busy service took the budget
    }
  }
}

TEST(TraceSampler, ZeroBudgetMeansEverySpan) {
  TraceSampler sampler({.spans_per_second = 0});
  std::vector<bool> keep;
  std::vector<Span> group{SpanOf(1), SpanOf(2)};
  Decide(sampler, group, 1, keep);
  EXPECT_EQ(keep, std::vector<bool>({true, true}));
}

}  // namespace
}  // namespace sonde::trace
