// Trace join across agents on hand-made batches: both arrival orders, late
// arrival within the delay, expiry after it, renamed traces' later spans,
// clock skew, DNAT, and the decorator over the SQLite store.
#include "server/ingest/trace_join.h"

#include <gtest/gtest.h>

#include "tests/unit/server/test_util.h"

namespace sonde::server {
namespace {

using testing::MakeSpan;
using testing::SpanId;
using testing::SpanSpec;
using testing::TraceId;

constexpr uint64_t kT0 = 1'700'000'000'000'000'000ull;
constexpr uint64_t kSec = 1'000'000'000ull;

// One side of the exchange 10.0.0.1:40000 -> 10.0.1.2:80, request seq `seq`.
v1::Span Side(v1::SpanKind kind, uint64_t trace, uint64_t id, uint32_t seq, uint64_t start, uint64_t parent = 0,
              const char* server_addr = "10.0.1.2") {
  SpanSpec spec;
  spec.trace = trace;
  spec.id = id;
  spec.parent = parent;
  spec.kind = kind;
  spec.start_ns = start;
  spec.end_ns = start + 1'000'000;
  v1::Span s = MakeSpan(spec);
  s.mutable_client()->set_address("10.0.0.1");
  s.mutable_client()->set_port(40000);
  s.mutable_server()->set_address(server_addr);
  s.mutable_server()->set_port(80);
  s.set_request_tcp_seq(seq);
  return s;
}

v1::Batch BatchOf(std::initializer_list<v1::Span> spans) {
  v1::Batch b;
  for (const auto& s : spans) *b.add_spans() = s;
  return b;
}

TEST(TraceJoin, ServerArrivingAfterItsClientJoinsTheClientsTrace) {
  TraceJoiner j;
  EXPECT_FALSE(j.Rewrite(BatchOf({Side(v1::SPAN_KIND_CLIENT, 1, 11, 777, kT0)}), kT0).has_value());
  // Node B: the server span and its backend call, in the server's own trace.
  v1::Batch b = BatchOf({Side(v1::SPAN_KIND_SERVER, 2, 21, 777, kT0 + 1000),
                         Side(v1::SPAN_KIND_CLIENT, 2, 22, 5, kT0 + 2000, /*parent=*/21)});
  auto out = j.Rewrite(b, kT0 + 20 * kSec);  // flushed 20 s later
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->spans(0).trace_id(), TraceId(1));
  EXPECT_EQ(out->spans(0).parent_span_id(), SpanId(11));
  EXPECT_EQ(out->spans(0).parent_reason(), v1::LINK_REASON_TCP_SEQUENCE);
  EXPECT_EQ(out->spans(1).trace_id(), TraceId(1)) << "the rest of the server's trace follows";
  EXPECT_EQ(out->spans(1).parent_span_id(), SpanId(21));
  // A later batch of node B's trace 2 lands in trace 1 too.
  auto later = j.Rewrite(BatchOf({Side(v1::SPAN_KIND_SERVER, 2, 23, 9, kT0 + 3000, 22)}), kT0 + 21 * kSec);
  ASSERT_TRUE(later.has_value());
  EXPECT_EQ(later->spans(0).trace_id(), TraceId(1));
  EXPECT_EQ(j.counters().joins, 1u);
}

TEST(TraceJoin, ClientArrivingAfterItsServerJoinsTheServersTrace) {
  TraceJoiner j;
  EXPECT_FALSE(j.Rewrite(BatchOf({Side(v1::SPAN_KIND_SERVER, 2, 21, 777, kT0 + 1000)}), kT0).has_value());
  // Node A: curl's trace with a gateway in front (ingress root, egress = the client side).
  v1::Batch a = BatchOf({Side(v1::SPAN_KIND_SERVER, 1, 10, 1, kT0, 0, "10.0.0.1"),
                         Side(v1::SPAN_KIND_CLIENT, 1, 11, 777, kT0 + 500, 10)});
  a.mutable_spans(0)->mutable_client()->set_port(50000);  // another exchange: curl -> gateway
  auto out = j.Rewrite(a, kT0 + 20 * kSec);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->spans(0).trace_id(), TraceId(2));
  EXPECT_EQ(out->spans(1).trace_id(), TraceId(2));
  EXPECT_EQ(out->spans(1).parent_span_id(), SpanId(10)) << "edges inside the renamed trace stay";
  EXPECT_EQ(j.counters().joins, 1u);
}

TEST(TraceJoin, SidesFurtherApartThanTheDelayDoNotJoin) {
  TraceJoinOptions o;
  o.delay_ns = 5 * kSec;
  TraceJoiner j(o);
  j.Rewrite(BatchOf({Side(v1::SPAN_KIND_CLIENT, 1, 11, 777, kT0)}), kT0);
  EXPECT_FALSE(j.Rewrite(BatchOf({Side(v1::SPAN_KIND_SERVER, 2, 21, 777, kT0 + 1000)}), kT0 + 6 * kSec));
  EXPECT_EQ(j.counters().joins, 0u);
}

TEST(TraceJoin, SameKeyFarApartInTimeIsNotTheSameExchange) {
  TraceJoiner j;
  j.Rewrite(BatchOf({Side(v1::SPAN_KIND_CLIENT, 1, 11, 777, kT0)}), kT0);
  EXPECT_FALSE(j.Rewrite(BatchOf({Side(v1::SPAN_KIND_SERVER, 2, 21, 777, kT0 + 30 * kSec)}), kT0 + kSec));
  EXPECT_EQ(j.counters().skewed, 1u);
}

TEST(TraceJoin, DnatAndOnNodeJoinedSpans) {
  TraceJoiner j;
  // The client dialled a service address; the server reports its pod address.
  j.Rewrite(BatchOf({Side(v1::SPAN_KIND_CLIENT, 1, 11, 42, kT0, 0, "10.96.0.10")}), kT0);
  auto out = j.Rewrite(BatchOf({Side(v1::SPAN_KIND_SERVER, 2, 21, 42, kT0 + 10)}), kT0 + kSec);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->spans(0).trace_id(), TraceId(1));
  // A server span its agent already joined (it has a parent) is left alone.
  j.Rewrite(BatchOf({Side(v1::SPAN_KIND_CLIENT, 3, 31, 43, kT0)}), kT0);
  EXPECT_FALSE(j.Rewrite(BatchOf({Side(v1::SPAN_KIND_SERVER, 4, 41, 43, kT0 + 10, /*parent=*/40)}), kT0 + kSec));
}

TEST(TraceJoin, RequestRecordsFollowTheirSpansTrace) {
  TraceJoiner j;
  j.Rewrite(BatchOf({Side(v1::SPAN_KIND_CLIENT, 1, 11, 777, kT0)}), kT0);
  v1::Batch b = BatchOf({Side(v1::SPAN_KIND_SERVER, 2, 21, 777, kT0 + 1000)});
  b.add_requests()->set_trace_id(TraceId(2));
  auto out = j.Rewrite(b, kT0 + kSec);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->requests(0).trace_id(), TraceId(1));
}

TEST(TraceJoin, BoundedIndexCountsEvictions) {
  TraceJoinOptions o;
  o.max_entries = 10;
  TraceJoiner j(o);
  for (uint32_t i = 0; i < 50; ++i) j.Rewrite(BatchOf({Side(v1::SPAN_KIND_CLIENT, i + 1, i + 100, i, kT0)}), kT0);
  EXPECT_LE(j.entries(), 10u);
  EXPECT_EQ(j.counters().evicted, 40u);
}

// A server span of process `pid`: S from the agent, or the SDK's A span.
v1::Span ProcessServer(v1::SpanSource source, uint64_t trace, uint64_t id, uint32_t pid, const std::string& path,
                       uint64_t start, uint64_t end, uint64_t parent = 0) {
  SpanSpec spec;
  spec.trace = trace;
  spec.id = id;
  spec.parent = parent;
  spec.source = source;
  spec.kind = v1::SPAN_KIND_SERVER;
  spec.pid = pid;
  spec.start_ns = start;
  spec.end_ns = end;
  v1::Span s = MakeSpan(spec);
  if (!path.empty()) {
    auto* a = s.add_attributes();
    a->set_key("url.path");
    a->set_string_value(path);
  }
  return s;
}

constexpr uint64_t kMs = 1'000'000;

TEST(TraceJoin, ApplicationTraceWithoutHeaderJoinsTheSystemSpansTrace) {
  TraceJoiner j;
  EXPECT_FALSE(j.Rewrite(BatchOf({ProcessServer(v1::SPAN_SOURCE_SYSTEM, 1, 11, 100, "/a", kT0, kT0 + 10 * kMs)}),
                         kT0, "node-b"));
  // The SDK's own trace 9: its root server span and a child, 5 s later.
  v1::Batch app = BatchOf({ProcessServer(v1::SPAN_SOURCE_APPLICATION, 9, 91, 100, "/a", kT0 + kMs, kT0 + 9 * kMs),
                           ProcessServer(v1::SPAN_SOURCE_APPLICATION, 9, 92, 100, "", kT0 + 2 * kMs, kT0 + 3 * kMs, 91)});
  auto out = j.Rewrite(app, kT0 + 5 * kSec, "node-b");
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->spans(0).trace_id(), TraceId(1));
  EXPECT_EQ(out->spans(1).trace_id(), TraceId(1));
  EXPECT_EQ(j.counters().app_joins, 1u);
}

TEST(TraceJoin, SystemSpanArrivingAfterTheApplicationsJoinsItsTrace) {
  TraceJoiner j;
  j.Rewrite(BatchOf({ProcessServer(v1::SPAN_SOURCE_APPLICATION, 9, 91, 100, "/a", kT0 + kMs, kT0 + 12 * kMs)}), kT0,
            "h");
  // The agent's batch: curl's client span and the S server span, one trace 1.
  v1::Batch sys = BatchOf({ProcessServer(v1::SPAN_SOURCE_SYSTEM, 1, 11, 100, "/a", kT0, kT0 + 10 * kMs, 10)});
  SpanSpec curl;
  curl.trace = 1;
  curl.id = 10;
  curl.kind = v1::SPAN_KIND_CLIENT;
  curl.pid = 300;
  *sys.add_spans() = MakeSpan(curl);
  auto out = j.Rewrite(sys, kT0 + kSec, "h");
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->spans(0).trace_id(), TraceId(9));
  EXPECT_EQ(out->spans(1).trace_id(), TraceId(9)) << "the whole request joins the application's trace";
}

TEST(TraceJoin, ApplicationJoinNeedsOneCandidateOfTheSameProcess) {
  TraceJoiner j;
  // Two concurrent requests in process 100: told apart by their paths.
  j.Rewrite(BatchOf({ProcessServer(v1::SPAN_SOURCE_SYSTEM, 1, 11, 100, "/a", kT0, kT0 + 10 * kMs),
                     ProcessServer(v1::SPAN_SOURCE_SYSTEM, 2, 21, 100, "/b", kT0, kT0 + 10 * kMs)}),
            kT0, "h");
  auto out = j.Rewrite(BatchOf({ProcessServer(v1::SPAN_SOURCE_APPLICATION, 9, 91, 100, "/b", kT0 + kMs, kT0 + 9 * kMs)}),
                       kT0 + kSec, "h");
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->spans(0).trace_id(), TraceId(2));
  // Without a path both could hold it: left alone, counted.
  EXPECT_FALSE(j.Rewrite(BatchOf({ProcessServer(v1::SPAN_SOURCE_APPLICATION, 8, 81, 100, "", kT0 + kMs, kT0 + 9 * kMs)}),
                         kT0 + kSec, "h"));
  EXPECT_EQ(j.counters().app_ambiguous, 1u);
  // Another process or another host: never.
  EXPECT_FALSE(j.Rewrite(BatchOf({ProcessServer(v1::SPAN_SOURCE_APPLICATION, 7, 71, 101, "/a", kT0 + kMs, kT0 + 9 * kMs)}),
                         kT0 + kSec, "h"));
  EXPECT_FALSE(j.Rewrite(BatchOf({ProcessServer(v1::SPAN_SOURCE_APPLICATION, 6, 61, 100, "/a", kT0 + kMs, kT0 + 9 * kMs)}),
                         kT0 + kSec, "other-host"));
  // An A span that does not fit inside the S span in time.
  EXPECT_FALSE(j.Rewrite(BatchOf({ProcessServer(v1::SPAN_SOURCE_APPLICATION, 5, 51, 100, "/a", kT0 + kMs, kT0 + 900 * kMs)}),
                         kT0 + kSec, "h"));
}

TEST(TraceJoin, DecoratorStoresOneTraceInTheSqliteStore) {
  testing::TempDir dir;
  StorageOptions so;
  so.path = (dir.path() / "sonde.db").string();
  auto inner = OpenStorage(so);
  ASSERT_TRUE(inner.ok()) << inner.status();
  JoiningStorage store(std::move(*inner), {});
  const uint64_t now = testing::NowNs();
  v1::Batch a = BatchOf({Side(v1::SPAN_KIND_CLIENT, 1, 11, 777, now)});
  a.set_sequence(1);
  v1::Batch b = BatchOf({Side(v1::SPAN_KIND_SERVER, 2, 21, 777, now + 1000)});
  b.set_sequence(1);
  ASSERT_TRUE(store.WriteBatch({"node-b", "b", "agent-b"}, b).ok());
  ASSERT_TRUE(store.WriteBatch({"node-a", "a", "agent-a"}, a).ok());
  auto trace = store.Trace(TraceId(2));
  ASSERT_TRUE(trace.ok());
  EXPECT_EQ(trace->size(), 2u) << "client (node A) and server (node B) in one trace";
  auto search = store.SearchTraces({});
  ASSERT_TRUE(search.ok());
  EXPECT_EQ(search->size(), 1u);
}

}  // namespace
}  // namespace sonde::server
