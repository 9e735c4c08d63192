// Trace assembly on synthetic A/S/N spans: gateway scenes, re-parenting,
// TCP-sequence and tuple links, skewed clocks, missing parents.
#include <gtest/gtest.h>

#include <map>

#include "server/query/trace_assembler.h"
#include "tests/unit/server/test_util.h"

namespace sonde::server {
namespace {

using testing::MakeSpan;
using testing::SpanId;

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t T0 = 1'700'000'000'000'000'000ull;

struct Scene {
  std::vector<StoredSpan> spans;
  void Add(const testing::SpanSpec& spec, const std::string& host = "h1",
           std::function<void(v1::Span&)> edit = nullptr) {
    StoredSpan s{MakeSpan(spec), host};
    if (edit) edit(s.span);
    spans.push_back(std::move(s));
  }
};

// id -> (parent id or 0, edge, origin)
struct Edge {
  uint64_t parent;
  std::string edge;
  std::string origin;
};

uint64_t IdOf(const StoredSpan& s) {
  uint64_t v = 0;
  for (char c : s.span.span_id()) v = v << 8 | static_cast<unsigned char>(c);
  return v;
}

std::map<uint64_t, Edge> Edges(const AssembledTrace& t) {
  std::map<uint64_t, Edge> out;
  for (const auto& a : t.spans) {
    uint64_t p = a.parent >= 0 ? IdOf(*t.spans[static_cast<size_t>(a.parent)].stored) : 0;
    out[IdOf(*a.stored)] = {p, a.edge, a.edge_origin};
  }
  return out;
}

TEST(TraceAssembler, GatewaySceneFromSequenceAndTimeNesting) {
  // client -> nginx (S server 1, S client 2) -> backend (S server 3, A server 4).
  Scene s;
  s.Add({.id = 1, .kind = v1::SPAN_KIND_SERVER, .service = "nginx", .start_ns = T0, .end_ns = T0 + 10 * kMs, .pid = 10});
  s.Add({.id = 2, .parent = 1, .kind = v1::SPAN_KIND_CLIENT, .service = "nginx",
         .start_ns = T0 + 1 * kMs, .end_ns = T0 + 9 * kMs, .pid = 10},
        "h1", [](v1::Span& p) {
          p.set_parent_reason(v1::LINK_REASON_THREAD);
          p.set_request_tcp_seq(777);
        });
  s.Add({.id = 3, .kind = v1::SPAN_KIND_SERVER, .service = "backend",
         .start_ns = T0 + 2 * kMs, .end_ns = T0 + 8 * kMs, .pid = 20},
        "h1", [](v1::Span& p) { p.set_request_tcp_seq(777); });
  // The backend's OTLP span points at a caller span id we never saw.
  s.Add({.id = 4, .parent = 99, .source = v1::SPAN_SOURCE_APPLICATION, .kind = v1::SPAN_KIND_SERVER,
         .service = "backend", .start_ns = T0 + 3 * kMs, .end_ns = T0 + 7 * kMs, .pid = 20});
  s.Add({.id = 5, .parent = 4, .source = v1::SPAN_SOURCE_APPLICATION, .kind = v1::SPAN_KIND_INTERNAL,
         .service = "backend", .start_ns = T0 + 4 * kMs, .end_ns = T0 + 5 * kMs, .pid = 20});
  AssembledTrace t = AssembleTrace(s.spans);
  auto e = Edges(t);
  EXPECT_EQ(e[1].parent, 0u);
  EXPECT_EQ(e[2].parent, 1u);
  EXPECT_EQ(e[2].edge, "thread");
  EXPECT_EQ(e[2].origin, "agent");
  EXPECT_EQ(e[3].parent, 2u);
  EXPECT_EQ(e[3].edge, "tcp_sequence");
  EXPECT_EQ(e[3].origin, "server");
  EXPECT_EQ(e[4].parent, 3u);
  EXPECT_EQ(e[4].edge, "time_nesting");
  EXPECT_EQ(e[5].parent, 4u);
  EXPECT_EQ(e[5].edge, "otlp_parent");
  ASSERT_EQ(t.roots.size(), 1u);
  EXPECT_EQ(t.order.size(), 5u);
  EXPECT_FALSE(t.spans[3].missing_parent);  // resolved by re-parenting
  EXPECT_EQ(t.spans[4].depth, 4);
}

TEST(TraceAssembler, AppServerSpanMovesUnderSystemServerSpanAndKeepsItsCaller) {
  // Caller app client span 1 (other host) -> callee A server 3 (parent 1);
  // the callee's S server span 2 contains 3 and has no parent.
  Scene s;
  s.Add({.id = 1, .source = v1::SPAN_SOURCE_APPLICATION, .kind = v1::SPAN_KIND_CLIENT,
         .service = "caller", .start_ns = T0, .end_ns = T0 + 20 * kMs, .pid = 1}, "h0");
  s.Add({.id = 2, .kind = v1::SPAN_KIND_SERVER, .service = "callee",
         .start_ns = T0 + 2 * kMs, .end_ns = T0 + 18 * kMs, .pid = 7});
  s.Add({.id = 3, .parent = 1, .source = v1::SPAN_SOURCE_APPLICATION, .kind = v1::SPAN_KIND_SERVER,
         .service = "callee", .start_ns = T0 + 3 * kMs, .end_ns = T0 + 17 * kMs, .pid = 7});
  auto e = Edges(AssembleTrace(s.spans));
  EXPECT_EQ(e[3].parent, 2u);
  EXPECT_EQ(e[3].edge, "time_nesting");
  EXPECT_EQ(e[2].parent, 1u);
  EXPECT_EQ(e[2].edge, "otlp_parent");
  EXPECT_EQ(e[2].origin, "server");
}

TEST(TraceAssembler, DoesNotReparentAcrossProcesses) {
  Scene s;
  s.Add({.id = 1, .kind = v1::SPAN_KIND_SERVER, .start_ns = T0, .end_ns = T0 + 10 * kMs, .pid = 1});
  s.Add({.id = 2, .source = v1::SPAN_SOURCE_APPLICATION, .kind = v1::SPAN_KIND_SERVER,
         .start_ns = T0 + 1 * kMs, .end_ns = T0 + 2 * kMs, .pid = 2});
  auto t = AssembleTrace(s.spans);
  EXPECT_EQ(t.roots.size(), 2u);  // nothing invented
}

TEST(TraceAssembler, TupleMatchAcrossSkewedHosts) {
  // Gateway on h1 calls backend on h2 whose clock is 5 s ahead; no TCP seqs.
  const uint64_t skew = 5000 * kMs;
  Scene s;
  s.Add({.id = 1, .kind = v1::SPAN_KIND_SERVER, .service = "gw", .start_ns = T0, .end_ns = T0 + 10 * kMs, .pid = 1}, "h1");
  s.Add({.id = 2, .parent = 1, .kind = v1::SPAN_KIND_CLIENT, .service = "gw",
         .start_ns = T0 + 1 * kMs, .end_ns = T0 + 9 * kMs, .pid = 1},
        "h1", [](v1::Span& p) {
          p.mutable_client()->set_address("10.0.0.1");
          p.mutable_client()->set_port(40000);
          p.mutable_server()->set_address("10.0.0.2");
          p.mutable_server()->set_port(8080);
        });
  s.Add({.id = 3, .kind = v1::SPAN_KIND_SERVER, .service = "be",
         .start_ns = T0 + skew + 2 * kMs, .end_ns = T0 + skew + 6 * kMs, .pid = 5},
        "h2", [](v1::Span& p) {
          p.mutable_client()->set_address("10.0.0.1");
          p.mutable_client()->set_port(40000);
          p.mutable_server()->set_address("10.0.0.2");
          p.mutable_server()->set_port(8080);
        });
  s.Add({.id = 4, .parent = 3, .kind = v1::SPAN_KIND_INTERNAL, .service = "be",
         .start_ns = T0 + skew + 3 * kMs, .end_ns = T0 + skew + 4 * kMs, .pid = 5}, "h2");
  auto t = AssembleTrace(s.spans);
  auto e = Edges(t);
  EXPECT_EQ(e[3].parent, 2u);
  EXPECT_EQ(e[3].edge, "tuple");
  // The backend subtree is shifted into the client span: child inside parent.
  const auto& client = t.spans[1];
  const auto& server = t.spans[2];
  const auto& inner = t.spans[3];
  EXPECT_NE(server.skew_ns, 0);
  EXPECT_GE(server.start_ns, client.start_ns);
  EXPECT_LE(server.end_ns, client.end_ns);
  EXPECT_EQ(inner.skew_ns, server.skew_ns);  // same host, same correction
  EXPECT_GE(inner.start_ns, server.start_ns);
  EXPECT_LE(inner.end_ns, server.end_ns);
  EXPECT_LE(t.end_ns - t.start_ns, 10 * kMs);
  // Durations are never changed by the correction.
  EXPECT_EQ(server.end_ns - server.start_ns, 4 * kMs);
}

TEST(TraceAssembler, MissingParentsStayRootsAndAreFlagged) {
  Scene s;
  s.Add({.id = 1, .parent = 50, .kind = v1::SPAN_KIND_INTERNAL, .start_ns = T0, .end_ns = T0 + 5});
  s.Add({.id = 2, .parent = 1, .kind = v1::SPAN_KIND_INTERNAL, .start_ns = T0 + 1, .end_ns = T0 + 2});
  s.Add({.id = 3, .parent = 60, .kind = v1::SPAN_KIND_INTERNAL, .start_ns = T0 + 10, .end_ns = T0 + 20});
  auto t = AssembleTrace(s.spans);
  ASSERT_EQ(t.roots.size(), 2u);
  EXPECT_TRUE(t.spans[0].missing_parent);
  EXPECT_FALSE(t.spans[1].missing_parent);
  EXPECT_TRUE(t.spans[2].missing_parent);
  EXPECT_EQ(t.order.size(), 3u);
}

TEST(TraceAssembler, ParentCyclesAreBroken) {
  Scene s;
  s.Add({.id = 1, .parent = 2, .kind = v1::SPAN_KIND_INTERNAL, .start_ns = T0, .end_ns = T0 + 5});
  s.Add({.id = 2, .parent = 1, .kind = v1::SPAN_KIND_INTERNAL, .start_ns = T0 + 1, .end_ns = T0 + 2});
  s.Add({.id = 3, .parent = 3, .kind = v1::SPAN_KIND_INTERNAL, .start_ns = T0 + 1, .end_ns = T0 + 2});
  auto t = AssembleTrace(s.spans);
  EXPECT_EQ(t.order.size(), 3u);  // every span reachable exactly once
  EXPECT_GE(t.roots.size(), 2u);
}

TEST(TraceAssembler, NetworkSpanSitsBetweenClientAndServer) {
  Scene s;
  s.Add({.id = 1, .kind = v1::SPAN_KIND_CLIENT, .start_ns = T0, .end_ns = T0 + 10 * kMs, .pid = 1}, "h1",
        [](v1::Span& p) { p.set_request_tcp_seq(42); });
  s.Add({.id = 2, .source = v1::SPAN_SOURCE_NETWORK, .kind = v1::SPAN_KIND_CLIENT,
         .start_ns = T0 + 1 * kMs, .end_ns = T0 + 9 * kMs, .pid = 0}, "h1",
        [](v1::Span& p) { p.set_request_tcp_seq(42); });
  s.Add({.id = 3, .kind = v1::SPAN_KIND_SERVER, .start_ns = T0 + 2 * kMs, .end_ns = T0 + 8 * kMs, .pid = 2}, "h2",
        [](v1::Span& p) { p.set_request_tcp_seq(42); });
  auto e = Edges(AssembleTrace(s.spans));
  EXPECT_EQ(e[2].parent, 1u);
  EXPECT_EQ(e[3].parent, 2u);
  EXPECT_EQ(e[3].edge, "tcp_sequence");
}

TEST(TraceAssembler, AppServerSpanEndingAfterItsSystemSpanNestsByTraceparentParentId) {
  // The callee's S server span 2 captured traceparent parent 99; its A server
  // span 3 (same parent) ends 20 ms after the last write: not contained in
  // time, tied by the shared parent id. S server span 4 of the same process
  // overlaps too but captured another parent id: not a candidate.
  Scene s;
  s.Add({.id = 2, .parent = 99, .kind = v1::SPAN_KIND_SERVER, .start_ns = T0 + 2 * kMs, .end_ns = T0 + 8 * kMs, .pid = 7},
        "h1", [](v1::Span& p) { p.set_parent_reason(v1::LINK_REASON_TRACEPARENT); });
  s.Add({.id = 3, .parent = 99, .source = v1::SPAN_SOURCE_APPLICATION, .kind = v1::SPAN_KIND_SERVER,
         .start_ns = T0 + 2 * kMs, .end_ns = T0 + 28 * kMs, .pid = 7});
  s.Add({.id = 4, .parent = 77, .kind = v1::SPAN_KIND_SERVER, .start_ns = T0 + 1 * kMs, .end_ns = T0 + 9 * kMs, .pid = 7},
        "h1", [](v1::Span& p) { p.set_parent_reason(v1::LINK_REASON_TRACEPARENT); });
  auto t = AssembleTrace(s.spans);
  auto e = Edges(t);
  EXPECT_EQ(e[3].parent, 2u);
  EXPECT_EQ(e[3].edge, "traceparent");
  EXPECT_EQ(e[3].origin, "server");
  EXPECT_FALSE(t.spans[1].missing_parent);
  EXPECT_EQ(e[4].parent, 0u);

  // Without the shared parent id nothing is invented.
  Scene other;
  other.Add({.id = 2, .parent = 98, .kind = v1::SPAN_KIND_SERVER, .start_ns = T0 + 2 * kMs, .end_ns = T0 + 8 * kMs, .pid = 7},
            "h1", [](v1::Span& p) { p.set_parent_reason(v1::LINK_REASON_TRACEPARENT); });
  other.Add({.id = 3, .parent = 99, .source = v1::SPAN_SOURCE_APPLICATION, .kind = v1::SPAN_KIND_SERVER,
             .start_ns = T0 + 2 * kMs, .end_ns = T0 + 28 * kMs, .pid = 7});
  EXPECT_EQ(AssembleTrace(other.spans).roots.size(), 2u);
}

TEST(TraceAssembler, EmptyInput) {
  std::vector<StoredSpan> none;
  auto t = AssembleTrace(none);
  EXPECT_TRUE(t.spans.empty());
  EXPECT_TRUE(t.roots.empty());
}

}  // namespace
}  // namespace sonde::server
