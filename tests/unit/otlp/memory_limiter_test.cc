// The OTLP memory limiter's levels (soft, hard, the resident ceiling) and the
// hard limit in the Ingestor: a request admitted under the soft limit whose
// items meet full queues is dropped, counted and answered as retryable.
#include "agent/otlp/memory_limiter.h"

#include <gtest/gtest.h>

#include <atomic>

#include "agent/otlp/ingestor.h"
#include "test_util.h"

namespace sonde::otlp {
namespace {

using namespace sonde::otlp::testing;

TEST(MemoryLimiter, LevelsFollowTheHeldBytes) {
  std::atomic<uint64_t> queued{0};
  MemoryLimiter limiter({.soft_bytes = 100, .hard_bytes = 150, .rss_ceiling_bytes = 0});
  limiter.AddGauge([&] { return queued.load(); });
  EXPECT_EQ(limiter.Check(0), MemoryLevel::kBelow);
  EXPECT_EQ(limiter.Check(100), MemoryLevel::kBelow);
  EXPECT_EQ(limiter.Check(101), MemoryLevel::kSoft);
  queued = 60;
  EXPECT_EQ(limiter.Held(40), 100u);
  EXPECT_EQ(limiter.Check(91), MemoryLevel::kHard);
  queued = 0;
  EXPECT_EQ(limiter.Check(0), MemoryLevel::kBelow);
}

TEST(MemoryLimiter, OffWhenSoftIsZeroAndHardIsNeverBelowSoft) {
  MemoryLimiter off({.soft_bytes = 0, .hard_bytes = 0, .rss_ceiling_bytes = 0});
  EXPECT_EQ(off.Check(UINT64_MAX / 2), MemoryLevel::kBelow);
  MemoryLimiter odd({.soft_bytes = 100, .hard_bytes = 10, .rss_ceiling_bytes = 0});
  EXPECT_EQ(odd.limits().hard_bytes, 100u);
}

TEST(MemoryLimiter, TheAgentsResidentCeilingShedsLikeTheSoftLimit) {
  uint64_t rss = 50;
  MemoryLimiter limiter({.soft_bytes = 1000, .hard_bytes = 2000, .rss_ceiling_bytes = 100}, [&] { return rss; });
  EXPECT_EQ(limiter.Check(0), MemoryLevel::kBelow);
  MemoryLimiter over({.soft_bytes = 1000, .hard_bytes = 2000, .rss_ceiling_bytes = 100}, [] { return 101ull; });
  EXPECT_EQ(over.Check(0), MemoryLevel::kSoft);
}

class CountingSink : public trace::SpanSink {
 public:
  void OnSpan(const trace::Span&) override { ++spans; }
  int spans = 0;
};

TEST(IngestorMemoryLimit, OverTheHardLimitItemsAreDroppedCountedAndRetryable) {
  IngestOptions options;
  options.resolve_sender = false;
  options.memory = {.soft_bytes = 1000, .hard_bytes = 2000, .rss_ceiling_bytes = 0};
  Ingestor ingestor(options, NodeInfo{});
  std::atomic<uint64_t> queued{0};
  ingestor.memory_limiter().AddGauge([&] { return queued.load(); });
  CountingSink sink;
  ingestor.AddSpanSink(&sink);
  const std::string body = MakeTraceRequest(5).SerializeAsString();

  auto ticket = ingestor.Admit(0);  // admitted while the queues are empty
  ASSERT_TRUE(ticket);
  queued = 5000;  // other requests filled the queues meanwhile
  auto result = ingestor.ExportTracesProtobuf(body, PeerInfo{});
  ASSERT_TRUE(result.ok());
  EXPECT_TRUE(result->memory_limited);
  EXPECT_EQ(sink.spans, 0);
  EXPECT_EQ(ingestor.stats().dropped(Signal::kTraces), 5u);
  ticket.reset();

  RejectReason why = RejectReason::kOverloaded;
  EXPECT_FALSE(ingestor.Admit(0, &why));  // new requests are shed
  EXPECT_EQ(why, RejectReason::kMemoryLimit);
  EXPECT_EQ(ingestor.stats().rejects(RejectReason::kMemoryLimit), 1u);

  queued = 0;
  ASSERT_TRUE(ingestor.Admit(0));
  result = ingestor.ExportTracesProtobuf(body, PeerInfo{});
  ASSERT_TRUE(result.ok());
  EXPECT_FALSE(result->memory_limited);
  EXPECT_EQ(sink.spans, 5);

  std::string metrics;
  ingestor.stats().AppendPrometheus(metrics);
  EXPECT_NE(metrics.find("sonde_otlp_items_dropped_total{signal=\"traces\",reason=\"memory_limit\"} 5"),
            std::string::npos)
      << metrics;
}

}  // namespace
}  // namespace sonde::otlp
