// Exchange joiner on hand-made spans: both ends of one exchange in any order,
// DNAT, no sequence numbers under keep-alive, peers off the node, time-outs
// and bounds.
#include "agent/trace/exchange_joiner.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <memory>

namespace sonde::trace {
namespace {

constexpr uint64_t kT0 = 1'700'000'000'000'000'000ull;
constexpr uint64_t kMs = 1'000'000;

struct End {
  const char* ip;
  uint16_t port;
};

// A deferred system span as SpanBuilder::BuildDeferred leaves it: the tuple
// is the socket's (s = this end, d = the peer).
Span MakeSpan(SpanKind kind, End self, End peer, std::optional<uint32_t> seq, uint64_t start, uint64_t end,
              uint8_t id) {
  Span s;
  s.source = SpanSource::kSystem;
  s.kind = kind;
  s.span_id.fill(id);
  s.trace_id.fill(id);
  s.start_unix_ns = kT0 + start;
  s.end_unix_ns = kT0 + end;
  if (seq) {
    s.request_tcp_seq = *seq;
    s.request_seq_valid = true;
  }
  s.deferred = std::make_unique<DeferredDetail>();
  sonde_tuple& t = s.deferred->tuple;
  t.family = AF_INET;
  t.l4_protocol = 6;
  inet_pton(AF_INET, self.ip, t.saddr);
  inet_pton(AF_INET, peer.ip, t.daddr);
  t.sport = self.port;
  t.dport = peer.port;
  return s;
}

struct Harness {
  explicit Harness(JoinerOptions o = {}) : joiner(o) {}
  // The linker emitted `spans` as one group.
  void Emit(std::vector<Span> spans) {
    SpanGroup g;
    for (Span& s : spans) g.push_back(std::make_unique<Span>(std::move(s)));
    joiner.Add(g, deliver);
    EXPECT_TRUE(g.empty()) << "the joiner consumes every group";
  }
  ExchangeJoiner joiner;
  std::vector<std::vector<Span>> groups;  // delivered groups, by value for the checks
  ExchangeJoiner::Deliver deliver = [this](SpanGroup& g) {
    auto& out = groups.emplace_back();
    for (auto& s : g) out.push_back(std::move(*s));
    g.clear();
  };
};

const End kClient{"127.0.0.1", 41000};
const End kServer{"127.0.0.1", 8080};

TEST(ExchangeJoiner, ServerWaitsForItsClientAndLeavesWithItAsOneGroup) {
  Harness h;
  Span client = MakeSpan(SpanKind::kClient, kClient, kServer, 777, 0, 10 * kMs, 1);
  Span server = MakeSpan(SpanKind::kServer, kServer, kClient, 777, 1 * kMs, 9 * kMs, 2);
  std::vector<Span> g;
  g.push_back(server);
  h.joiner.Observe(server);
  h.Emit(std::move(g));
  EXPECT_TRUE(h.groups.empty()) << "held for its client";
  EXPECT_EQ(h.joiner.held_groups(), 1u);
  h.joiner.Observe(client);  // built: the server group attaches to it
  h.Emit({client});          // the linker lets it go
  ASSERT_EQ(h.groups.size(), 1u);
  ASSERT_EQ(h.groups[0].size(), 2u);
  const Span& c = h.groups[0][0];
  const Span& s = h.groups[0][1];
  EXPECT_EQ(c.span_id, client.span_id);
  EXPECT_EQ(s.trace_id, client.trace_id);
  EXPECT_EQ(s.parent_span_id, client.span_id);
  EXPECT_EQ(s.parent_reason, LinkReason::kTcpSequence);
  EXPECT_EQ(h.joiner.counters().links_tcp_sequence, 1u);
  EXPECT_EQ(h.joiner.held_groups(), 0u);
}

TEST(ExchangeJoiner, ClientInsideTheLinkerTakesALaterServerGroupAlong) {
  Harness h;
  Span client = MakeSpan(SpanKind::kClient, kClient, kServer, 5, 0, 10 * kMs, 1);
  Span server = MakeSpan(SpanKind::kServer, kServer, kClient, 5, 1 * kMs, 9 * kMs, 2);
  h.joiner.Observe(client);  // built first, held by the linker
  h.Emit({server});
  EXPECT_TRUE(h.groups.empty());
  h.Emit({client});
  ASSERT_EQ(h.groups.size(), 1u);
  ASSERT_EQ(h.groups[0].size(), 2u);
  EXPECT_EQ(h.groups[0][1].parent_span_id, client.span_id);
  EXPECT_EQ(h.groups[0][1].trace_id, client.trace_id);
}

TEST(ExchangeJoiner, LateServerJoinsTheTraceTheClientLeftWith) {
  Harness h;
  Span client = MakeSpan(SpanKind::kClient, kClient, kServer, 5, 0, 10 * kMs, 1);
  Span server = MakeSpan(SpanKind::kServer, kServer, kClient, 5, 1 * kMs, 9 * kMs, 2);
  h.joiner.Observe(client);
  client.trace_id.fill(0x77);  // the linker gave it its ingress's trace
  h.Emit({client});
  ASSERT_EQ(h.groups.size(), 1u);
  h.Emit({server});
  ASSERT_EQ(h.groups.size(), 2u);
  EXPECT_EQ(h.groups[1][0].trace_id, client.trace_id);
  EXPECT_EQ(h.groups[1][0].parent_span_id, client.span_id);
  EXPECT_EQ(h.joiner.counters().late_links, 1u);
}

// curl -> gateway -> backend: the gateway's group (ingress + egress) joins
// curl's trace and carries the backend's group, which joined the egress.
TEST(ExchangeJoiner, ChainOfHopsBecomesOneTrace) {
  Harness h;
  const End gw_in{"127.0.0.1", 8080}, gw_out{"127.0.0.1", 50000}, be{"127.0.0.1", 9000};
  Span curl = MakeSpan(SpanKind::kClient, kClient, gw_in, 100, 0, 30 * kMs, 1);
  Span ingress = MakeSpan(SpanKind::kServer, gw_in, kClient, 100, 1 * kMs, 29 * kMs, 2);
  Span egress = MakeSpan(SpanKind::kClient, gw_out, be, 200, 2 * kMs, 20 * kMs, 3);
  Span backend = MakeSpan(SpanKind::kServer, be, gw_out, 200, 3 * kMs, 19 * kMs, 4);
  // The linker put the egress into the ingress's trace.
  egress.trace_id = ingress.trace_id;
  egress.parent_span_id = ingress.span_id;
  egress.parent_reason = LinkReason::kTimeNesting;

  h.joiner.Observe(curl);
  h.joiner.Observe(egress);
  h.joiner.Observe(backend);
  h.Emit({backend});
  h.joiner.Observe(ingress);
  h.Emit({ingress, egress});
  h.Emit({curl});
  ASSERT_EQ(h.groups.size(), 1u);
  const auto& g = h.groups[0];
  ASSERT_EQ(g.size(), 4u);
  for (const Span& s : g) EXPECT_EQ(s.trace_id, curl.trace_id);
  auto by_id = [&](uint8_t id) -> const Span& {
    for (const Span& s : g) {
      if (s.span_id[0] == id) return s;
    }
    ADD_FAILURE() << "span " << int(id) << " missing";
    return g[0];
  };
  EXPECT_EQ(by_id(2).parent_span_id, curl.span_id);
  EXPECT_EQ(by_id(3).parent_span_id, ingress.span_id);
  EXPECT_EQ(by_id(4).parent_span_id, egress.span_id);
  EXPECT_EQ(h.joiner.counters().links_tcp_sequence, 2u);
}

TEST(ExchangeJoiner, DnatRewritesTheServerSideOnly) {
  Harness h;
  // The client dialled a service address; the server sees its own pod address.
  Span client = MakeSpan(SpanKind::kClient, {"10.1.0.5", 41000}, {"10.96.0.10", 80}, 9, 0, 10 * kMs, 1);
  Span server = MakeSpan(SpanKind::kServer, {"10.1.0.9", 8080}, {"10.1.0.5", 41000}, 9, 1 * kMs, 9 * kMs, 2);
  h.joiner.Observe(client);
  h.joiner.Observe(server);
  h.Emit({server});
  h.Emit({client});
  ASSERT_EQ(h.groups.size(), 1u);
  ASSERT_EQ(h.groups[0].size(), 2u);
  EXPECT_EQ(h.groups[0][1].parent_span_id, client.span_id);
}

TEST(ExchangeJoiner, WithoutSequenceNumbersTimeNestingPicksTheKeepAliveExchange) {
  Harness h;
  for (uint8_t i = 0; i < 3; ++i) {
    const uint64_t base = i * 20 * kMs;
    Span client = MakeSpan(SpanKind::kClient, kClient, kServer, std::nullopt, base, base + 10 * kMs, 10 + i);
    Span server = MakeSpan(SpanKind::kServer, kServer, kClient, std::nullopt, base + kMs, base + 9 * kMs, 20 + i);
    h.joiner.Observe(server);
    h.Emit({server});
    h.joiner.Observe(client);
    h.Emit({client});
  }
  ASSERT_EQ(h.groups.size(), 3u);
  for (uint8_t i = 0; i < 3; ++i) {
    ASSERT_EQ(h.groups[i].size(), 2u);
    EXPECT_EQ(h.groups[i][1].parent_span_id[0], 10 + i);
    EXPECT_EQ(h.groups[i][1].parent_reason, LinkReason::kTimeNesting);
  }
  // A later client on the same connection is no parent of an earlier server span.
  Span server = MakeSpan(SpanKind::kServer, kServer, kClient, std::nullopt, 100 * kMs, 101 * kMs, 30);
  Span client = MakeSpan(SpanKind::kClient, kClient, kServer, std::nullopt, 200 * kMs, 210 * kMs, 31);
  h.joiner.Observe(client);
  h.Emit({client});
  h.Emit({server});
  EXPECT_EQ(h.joiner.held_groups(), 1u) << "still waiting: the indexed client does not nest it";
}

TEST(ExchangeJoiner, PeerOffTheNodeIsNotHeld) {
  Harness h;
  Span server = MakeSpan(SpanKind::kServer, {"10.0.0.2", 80}, {"192.0.2.7", 5555}, 1, 0, kMs, 1);
  h.joiner.Observe(server);
  h.Emit({server});
  EXPECT_EQ(h.groups.size(), 1u);
  EXPECT_EQ(h.joiner.counters().not_held, 1u);
  // Once that address is seen as a local end (a client socket in another
  // network namespace of this node), its server spans wait.
  Span client = MakeSpan(SpanKind::kClient, {"192.0.2.7", 6000}, {"10.0.0.2", 80}, 50, 2 * kMs, 9 * kMs, 2);
  h.joiner.Observe(client);
  Span server2 = MakeSpan(SpanKind::kServer, {"10.0.0.2", 80}, {"192.0.2.7", 6001}, 60, 3 * kMs, 4 * kMs, 3);
  h.Emit({server2});
  EXPECT_EQ(h.joiner.held_groups(), 1u);
}

TEST(ExchangeJoiner, ServerWithoutItsClientLeavesAtTheDeadline) {
  JoinerOptions o;
  o.hold_ns = 100 * kMs;
  Harness h(o);
  Span server = MakeSpan(SpanKind::kServer, kServer, kClient, 1, 0, kMs, 1);
  const TraceId original = server.trace_id;
  h.Emit({server});
  h.joiner.Flush(kT0 + 50 * kMs, h.deliver);
  EXPECT_TRUE(h.groups.empty());
  h.joiner.Flush(kT0 + 101 * kMs, h.deliver);
  ASSERT_EQ(h.groups.size(), 1u);
  EXPECT_EQ(h.groups[0][0].trace_id, original);
  EXPECT_EQ(h.groups[0][0].parent_reason, LinkReason::kNone);
  EXPECT_EQ(h.joiner.counters().timeouts, 1u);
  EXPECT_EQ(h.joiner.held_groups(), 0u);
}

TEST(ExchangeJoiner, BoundedHeldGroupsAndClientsAreCounted) {
  JoinerOptions o;
  o.max_held_groups = 2;
  o.max_clients = 3;
  Harness h(o);
  for (uint8_t i = 0; i < 5; ++i) {
    h.Emit({MakeSpan(SpanKind::kServer, kServer, {"127.0.0.1", static_cast<uint16_t>(100 + i)}, i, 0, kMs, i)});
  }
  EXPECT_EQ(h.joiner.held_groups(), 2u);
  EXPECT_EQ(h.groups.size(), 3u) << "over the bound: delivered unjoined";
  for (uint8_t i = 0; i < 5; ++i) {
    h.joiner.Observe(MakeSpan(SpanKind::kClient, {"127.0.0.1", static_cast<uint16_t>(200 + i)}, kServer, i, 0,
                              kMs, 50 + i));
  }
  EXPECT_EQ(h.joiner.indexed_clients(), 3u);
  EXPECT_EQ(h.joiner.counters().evicted, 3u + 2u);
  h.joiner.FlushAll(h.deliver);
  EXPECT_EQ(h.groups.size(), 5u) << "nothing is lost";
}

TEST(ExchangeJoiner, ServerSpanWithTheClientsContextGetsTheEdge) {
  Harness h;
  Span client = MakeSpan(SpanKind::kClient, kClient, kServer, 3, 0, 10 * kMs, 1);
  Span server = MakeSpan(SpanKind::kServer, kServer, kClient, 3, kMs, 9 * kMs, 2);
  // Both extracted the same traceparent (the client process sent one).
  for (Span* s : {&client, &server}) {
    s->trace_id.fill(0xAB);
    s->parent_span_id.fill(0xCD);
    s->parent_reason = LinkReason::kTraceparent;
  }
  h.Emit({server});
  h.joiner.Observe(client);
  h.Emit({client});
  ASSERT_EQ(h.groups.size(), 1u);
  ASSERT_EQ(h.groups[0].size(), 2u);
  EXPECT_EQ(h.groups[0][1].parent_span_id, client.span_id);
  EXPECT_EQ(h.groups[0][1].trace_id, client.trace_id);
}

TEST(ExchangeJoiner, DisabledPassesGroupsThrough) {
  JoinerOptions o;
  o.enabled = false;
  Harness h(o);
  Span server = MakeSpan(SpanKind::kServer, kServer, kClient, 1, 0, kMs, 1);
  h.joiner.Observe(server);
  h.Emit({server});
  EXPECT_EQ(h.groups.size(), 1u);
}

}  // namespace
}  // namespace sonde::trace
