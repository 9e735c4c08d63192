// Span building and gateway linking on synthetic event streams.
#include <gtest/gtest.h>

#include <map>

#include "agent/conn/tracker.h"
#include "agent/trace/linker.h"
#include "agent/trace/span_builder.h"
#include "agent/trace/trace_headers.h"
#include "tests/unit/conn/event_builder.h"

namespace sonde::trace {
namespace {

using sonde::testing::Endpoints;
using sonde::testing::SocketSim;

constexpr uint64_t kOffset = 1'700'000'000'000'000'000ull;

struct Harness {
  Harness() {
    clock.SetOffset(kOffset);
  }
  void Feed(const std::vector<uint8_t>& ev) {
    std::vector<conn::ConnRecord> recs;
    tracker.OnEvent(ev, recs);
    for (auto& r : recs) {
      linker.Add(std::make_unique<Span>(builder.Build(r)), [this](SpanPtr&& s) { spans.push_back(std::move(*s)); });
    }
  }
  void Finish() {
    linker.FlushAll([this](SpanPtr&& s) { spans.push_back(std::move(*s)); });
  }
  const Span* ByPath(std::string_view path, SpanKind kind) const {
    for (const auto& s : spans) {
      const std::string* p = StringAttribute(s, "url.path");
      if (s.kind == kind && p && *p == path) return &s;
    }
    return nullptr;
  }
  core::MonotonicToRealtime clock;
  conn::ConnectionTracker tracker;
  SpanBuilder builder{clock, 1234};
  GatewayLinker linker;
  std::vector<Span> spans;
};

SocketSim Downstream(uint64_t sock, int fd, uint16_t port) {
  return SocketSim(300, 300, "nginx", sock, fd, SONDE_ROLE_SERVER,
                   Endpoints{"127.0.0.1", 8080, "127.0.0.1", port});
}
SocketSim Upstream() {
  return SocketSim(300, 300, "nginx", 999, 20, SONDE_ROLE_CLIENT,
                   Endpoints{"127.0.0.1", 50000, "127.0.0.1", 9000});
}
std::string Req(std::string_view path, std::string_view extra = "") {
  return "GET " + std::string(path) + " HTTP/1.1\r\nHost: api\r\n" + std::string(extra) + "\r\n";
}
std::string Resp(int status, std::string_view extra = "") {
  return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: 0\r\n" +
         std::string(extra) + "\r\n";
}

TEST(SpanBuilder, ServerSpanAttributesAndStatus) {
  Harness h;
  SocketSim s = Downstream(1, 5, 40000);
  h.Feed(s.Open(100));
  h.Feed(s.Read(Req("/users/42?q=1", "User-Agent: curl/8\r\nAuthorization: x\r\n"), 1000, 500));
  h.Feed(s.Write(Resp(503), 9000, 500));
  ASSERT_EQ(h.spans.size(), 1u);
  const Span& sp = h.spans[0];
  EXPECT_EQ(sp.kind, SpanKind::kServer);
  EXPECT_EQ(sp.name, "GET /users/{id}");
  EXPECT_EQ(sp.start_unix_ns, kOffset + 1500);
  EXPECT_EQ(sp.end_unix_ns, kOffset + 9500);
  EXPECT_EQ(sp.status, StatusCode::kError);
  EXPECT_EQ(*StringAttribute(sp, "http.route"), "/users/{id}");
  EXPECT_EQ(*StringAttribute(sp, "url.path"), "/users/42");
  EXPECT_EQ(IntAttribute(sp, "http.response.status_code"), 503);
  EXPECT_EQ(*StringAttribute(sp, "server.address"), "api");
  EXPECT_EQ(IntAttribute(sp, "server.port"), 8080);
  EXPECT_EQ(*StringAttribute(sp, "client.address"), "127.0.0.1");
  EXPECT_EQ(*StringAttribute(sp, "network.protocol.version"), "1.1");
  EXPECT_EQ(*StringAttribute(sp, "user_agent.original"), "curl/8");
  EXPECT_EQ(sp.comm, "nginx");
  EXPECT_EQ(sp.parent_reason, LinkReason::kNone);
  EXPECT_NE(sp.trace_id, TraceId{});
}

TEST(SpanBuilder, ClientFourHundredIsErrorServerIsNot) {
  Harness h;
  SocketSim srv = Downstream(1, 5, 40000);
  h.Feed(srv.Read(Req("/x"), 1000));
  h.Feed(srv.Write(Resp(404), 2000));
  SocketSim cli(400, 400, "curl", 2, 3, SONDE_ROLE_CLIENT, Endpoints{"127.0.0.1", 40001, "127.0.0.1", 8080});
  h.Feed(cli.Write(Req("/x"), 1000));
  h.Feed(cli.Read(Resp(404), 2000));
  h.Finish();
  ASSERT_EQ(h.spans.size(), 2u);
  for (const auto& s : h.spans) {
    EXPECT_EQ(s.status, s.kind == SpanKind::kClient ? StatusCode::kError : StatusCode::kUnset);
  }
}

TEST(SpanBuilder, IncomingTraceparentGivesIdentity) {
  Harness h;
  SocketSim s = Downstream(1, 5, 40000);
  h.Feed(s.Read(Req("/t", "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"), 1000));
  h.Feed(s.Write(Resp(200), 2000));
  ASSERT_EQ(h.spans.size(), 1u);
  EXPECT_EQ(ToHex(h.spans[0].trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(ToHex(h.spans[0].parent_span_id), "00f067aa0ba902b7");
  EXPECT_EQ(h.spans[0].parent_reason, LinkReason::kTraceparent);
}

// A recycled span (one that carried a context, an error, attributes and
// headers) must build exactly what a fresh one does: nothing carried over.
TEST(SpanBuilder, RecycledSpanCarriesNothingOver) {
  core::MonotonicToRealtime clock;
  clock.SetOffset(kOffset);
  conn::ConnectionTracker tracker;
  auto records = [&](SocketSim& s, const std::string& req, const std::string& resp) {
    std::vector<conn::ConnRecord> recs;
    tracker.OnEvent(s.Read(req, 1000), recs);
    tracker.OnEvent(s.Write(resp, 2000), recs);
    return recs;
  };
  SocketSim first = Downstream(1, 5, 40000);
  SocketSim second = Downstream(2, 6, 40001);
  auto busy = records(first,
                      Req("/users/42?token=x", "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
                                               "User-Agent: curl/8\r\n"),
                      Resp(503));
  auto plain = records(second, Req("/a"), Resp(200));
  ASSERT_EQ(busy.size(), 1u);
  ASSERT_EQ(plain.size(), 1u);
  conn::ConnRecord plain_copy = plain[0];
  conn::ConnRecord busy_copy = busy[0];

  SpanBuilder recycling(clock, 7);
  SpanPtr used = recycling.BuildDeferredPtr(std::move(busy[0]));
  SpanBuilder::Complete(*used);
  used->attributes.push_back({"extra", std::string("x")});
  recycling.Recycle(std::move(used));
  SpanPtr again = recycling.BuildDeferredPtr(std::move(plain[0]));
  SpanBuilder::Complete(*again);

  SpanBuilder fresh_builder(clock, 7);
  SpanPtr burn = fresh_builder.BuildDeferredPtr(std::move(busy_copy));  // the same ids drawn
  SpanPtr fresh = fresh_builder.BuildDeferredPtr(std::move(plain_copy));
  SpanBuilder::Complete(*fresh);

  EXPECT_EQ(again->trace_id, fresh->trace_id);
  EXPECT_EQ(again->parent_span_id, SpanId{});
  EXPECT_EQ(again->parent_reason, LinkReason::kNone);
  EXPECT_EQ(again->parent_sampled, -1);
  EXPECT_EQ(again->status, StatusCode::kUnset);
  EXPECT_EQ(again->name, "GET /a");
  EXPECT_EQ(again->url_path, "/a");
  EXPECT_EQ(again->url_query, "");
  EXPECT_EQ(again->http_status, 200);
  ASSERT_EQ(again->attributes.size(), fresh->attributes.size());
  for (size_t i = 0; i < fresh->attributes.size(); ++i) {
    EXPECT_EQ(again->attributes[i].key, fresh->attributes[i].key);
    EXPECT_EQ(again->attributes[i].value, fresh->attributes[i].value);
  }
  EXPECT_EQ(again->request_headers.size(), fresh->request_headers.size());
  EXPECT_EQ(StringAttribute(*again, "user_agent.original"), nullptr);
}

// Two downstream requests interleaved over one upstream keepalive
// connection, answered out of order, all on one thread.
TEST(GatewayLinker, TimeNestingWithInterleavedRequests) {
  Harness h;
  SocketSim a = Downstream(1, 5, 40000), b = Downstream(2, 6, 40001);
  SocketSim up = Upstream();
  h.Feed(a.Read(Req("/a/1"), 1000));
  h.Feed(b.Read(Req("/b/2"), 1500));
  h.Feed(up.Write(Req("/a/1"), 2000));
  h.Feed(up.Read(Resp(200), 3000));
  h.Feed(up.Write(Req("/b/2"), 3500));
  h.Feed(up.Read(Resp(201), 4000));
  h.Feed(b.Write(Resp(201), 4500));
  h.Feed(a.Write(Resp(200), 5000));
  h.Finish();
  ASSERT_EQ(h.spans.size(), 4u);
  for (std::string_view p : {"/a/1", "/b/2"}) {
    const Span* in = h.ByPath(p, SpanKind::kServer);
    const Span* out = h.ByPath(p, SpanKind::kClient);
    ASSERT_TRUE(in && out) << p;
    EXPECT_EQ(out->parent_span_id, in->span_id) << p;
    EXPECT_EQ(out->trace_id, in->trace_id) << p;
    EXPECT_EQ(out->parent_reason, LinkReason::kTimeNesting);
    EXPECT_EQ(*StringAttribute(*out, "sonde.link.ingress_span_id"), ToHex(in->span_id));
  }
  EXPECT_EQ(h.linker.counters().links[static_cast<int>(LinkReason::kTimeNesting)], 2u);
}

TEST(GatewayLinker, HeaderEvidenceBeatsNesting) {
  Harness h;
  SocketSim a = Downstream(1, 5, 40000), b = Downstream(2, 6, 40001), c = Downstream(3, 7, 40002);
  SocketSim up = Upstream();
  const std::string tp = "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n";
  // Path rewritten upstream, so only the headers can tie them.
  h.Feed(a.Read(Req("/kong/x", tp), 1000));
  h.Feed(b.Read(Req("/kong/y"), 1100));
  h.Feed(c.Read(Req("/kong/z", "X-Request-Id: rid-7\r\n"), 1200));
  h.Feed(up.Write(Req("/other1", tp), 2000));
  h.Feed(up.Read(Resp(200), 2100));
  h.Feed(up.Write(Req("/other2", "X-Kong-Request-Id: k-55\r\n"), 2200));
  h.Feed(up.Read(Resp(200), 2300));
  h.Feed(up.Write(Req("/other3", "X-Request-Id: rid-7\r\n"), 2400));
  h.Feed(up.Read(Resp(200), 2500));
  h.Feed(c.Write(Resp(200), 3000));
  h.Feed(b.Write(Resp(200, "X-Kong-Request-Id: k-55\r\n"), 3100));
  h.Feed(a.Write(Resp(200), 3200));
  h.Finish();
  auto check = [&](std::string_view in_path, std::string_view out_path, LinkReason reason) {
    const Span* in = h.ByPath(in_path, SpanKind::kServer);
    const Span* out = h.ByPath(out_path, SpanKind::kClient);
    ASSERT_TRUE(in && out);
    EXPECT_EQ(out->trace_id, in->trace_id) << out_path;
    EXPECT_EQ(*StringAttribute(*out, "sonde.link.reason"), LinkReasonName(reason)) << out_path;
    EXPECT_EQ(*StringAttribute(*out, "sonde.link.ingress_span_id"), ToHex(in->span_id));
  };
  check("/kong/x", "/other1", LinkReason::kTraceparent);
  check("/kong/y", "/other2", LinkReason::kKongRequestId);
  check("/kong/z", "/other3", LinkReason::kRequestId);
}

TEST(GatewayLinker, PrefersNoLinkOverWrongLink) {
  Harness h;
  SocketSim a = Downstream(1, 5, 40000), b = Downstream(2, 6, 40001);
  SocketSim up1 = Upstream();
  SocketSim up2(300, 300, "nginx", 1000, 21, SONDE_ROLE_CLIENT, Endpoints{"127.0.0.1", 50001, "127.0.0.1", 9000});
  // Same path, overlapping upstream calls, both nested in both ingresses.
  h.Feed(a.Read(Req("/same"), 1000, 10));
  h.Feed(b.Read(Req("/same"), 1100, 10));
  h.Feed(up1.Write(Req("/same"), 2000));
  h.Feed(up2.Write(Req("/same"), 2100));
  h.Feed(up1.Read(Resp(200), 3000));
  h.Feed(up2.Read(Resp(200), 3100));
  h.Feed(b.Write(Resp(200), 4000));
  h.Feed(a.Write(Resp(200), 4100));
  // Unrelated path nested in time: not similar enough.
  SocketSim c = Downstream(3, 7, 40002);
  h.Feed(c.Read(Req("/front"), 10000));
  h.Feed(up1.Write(Req("/unrelated"), 11000));
  h.Feed(up1.Read(Resp(200), 12000));
  h.Feed(c.Write(Resp(200), 13000));
  h.Finish();
  for (const auto& s : h.spans) {
    if (s.kind == SpanKind::kClient) {
      EXPECT_EQ(StringAttribute(s, "sonde.link.reason"), nullptr);
      EXPECT_EQ(s.parent_reason, LinkReason::kNone);
    }
  }
  EXPECT_GE(h.linker.counters().ambiguous, 1u);
  EXPECT_EQ(h.linker.counters().unlinked_egress, 3u);
}

TEST(GatewayLinker, EgressReleasedAfterHold) {
  GatewayLinker linker(LinkerOptions{.hold_ns = 1000, .client_only_hold_ns = 1000});
  Span s;
  s.kind = SpanKind::kClient;
  s.pid = 5;
  s.end_unix_ns = 100;
  std::vector<Span> out;
  auto emit = [&](SpanPtr&& sp) { out.push_back(std::move(*sp)); };
  linker.Add(std::make_unique<Span>(s), emit);
  linker.Flush(500, emit);
  EXPECT_TRUE(out.empty());
  linker.Flush(1200, emit);
  EXPECT_EQ(out.size(), 1u);
  EXPECT_EQ(linker.pending(), 0u);
}

// A span of process `pid` carrying an x-request-id (the linker's exact evidence).
SpanPtr RequestIdSpan(uint32_t pid, SpanKind kind, uint64_t start, uint64_t end, std::string_view request_id) {
  auto s = std::make_unique<Span>();
  s->kind = kind;
  s->pid = pid;
  s->start_unix_ns = start;
  s->end_unix_ns = end;
  s->request_headers.Add("x-request-id", request_id);
  return s;
}

// A gateway whose ingress the agent cannot see (TLS it does not decrypt):
// its egress spans wait only briefly until one links; after that the full
// hold, until enough of them in a row time out unlinked again -- then also
// the ones already queued under the full hold leave.
TEST(GatewayLinker, EgressIsHeldLongOnlyWhileItsProcessIngressIsSeen) {
  GatewayLinker linker(LinkerOptions{.hold_ns = 5000, .unseen_ingress_after = 3, .unseen_ingress_hold_ns = 100});
  std::vector<std::string> out;
  auto emit = [&](SpanPtr&& sp) { out.push_back(std::string(FindHeader(sp->request_headers, "x-request-id").value_or(""))); };
  auto span = [](SpanKind kind, uint64_t start, uint64_t end, std::string_view id) {
    return RequestIdSpan(9, kind, start, end, id);
  };
  linker.Add(span(SpanKind::kServer, 0, 10, "a"), emit);  // pid 9 serves; nothing linked yet
  linker.Add(span(SpanKind::kClient, 100, 105, "unseen"), emit);
  EXPECT_EQ(linker.counters().unseen_ingress_egress, 1u);
  linker.Flush(205, emit);
  EXPECT_EQ(out.back(), "unseen") << "released after the short hold";

  // One links: the ingress is seen, egress spans wait the full hold.
  linker.Add(span(SpanKind::kClient, 1001, 1005, "seen"), emit);
  linker.Add(span(SpanKind::kServer, 1000, 1010, "seen"), emit);
  EXPECT_EQ(linker.counters().links[static_cast<size_t>(LinkReason::kRequestId)], 1u);
  uint64_t t = 2000;
  for (const char* id : {"lost1", "lost2", "lost3"}) {
    linker.Add(span(SpanKind::kClient, t, t + 5, id), emit);
    t += 10;
  }
  linker.Add(span(SpanKind::kClient, 3000, 3005, "queued"), emit);
  EXPECT_EQ(linker.counters().unseen_ingress_egress, 2u) << "`unseen` and `seen` (before its link)";
  linker.Flush(2000 + 5 + 200, emit);
  EXPECT_EQ(linker.pending(), 4u) << "the full hold";
  // The three lost ones time out: the ingress is unseen again, and `queued`
  // (deadline 8005 under the full hold) leaves by the short one.
  linker.Flush(2025 + 5000, emit);
  EXPECT_EQ(linker.pending(), 0u);
  EXPECT_EQ(out.back(), "queued");
  linker.Add(span(SpanKind::kClient, 9000, 9005, "short"), emit);
  EXPECT_EQ(linker.counters().unseen_ingress_egress, 3u);
}

// Once a process's egress spans keep timing out unlinked, only one of its
// server spans in `unseen_ingress_scan_every` is compared with them -- enough
// to find a link when its ingress becomes visible again.
TEST(GatewayLinker, UnseenIngressProcessComparesOneServerSpanInN) {
  GatewayLinker linker(LinkerOptions{
      .hold_ns = 5000, .unseen_ingress_after = 2, .unseen_ingress_hold_ns = 100, .unseen_ingress_scan_every = 4});
  std::vector<Span> out;
  auto emit = [&](SpanPtr&& sp) { out.push_back(std::move(*sp)); };
  auto span = [](SpanKind kind, uint64_t start, uint64_t end, std::string_view id) {
    return RequestIdSpan(11, kind, start, end, id);
  };
  linker.Add(span(SpanKind::kServer, 0, 10, "a"), emit);
  linker.Add(span(SpanKind::kClient, 20, 25, "lost1"), emit);
  linker.Add(span(SpanKind::kClient, 30, 35, "lost2"), emit);
  linker.Flush(1000, emit);  // two timeouts: the ingress is unseen
  linker.Add(span(SpanKind::kClient, 2001, 2005, "back"), emit);
  for (int i = 0; i < 3; ++i) linker.Add(span(SpanKind::kServer, 2000, 2010, "back"), emit);
  EXPECT_EQ(linker.counters().unseen_ingress_unscanned, 3u);
  EXPECT_EQ(linker.counters().links[static_cast<size_t>(LinkReason::kRequestId)], 0u);
  linker.Add(span(SpanKind::kServer, 2000, 2010, "back"), emit);  // the fourth is compared
  EXPECT_EQ(linker.counters().links[static_cast<size_t>(LinkReason::kRequestId)], 1u);
  linker.Add(span(SpanKind::kServer, 3000, 3010, "more"), emit);  // linked again: every one compared
  EXPECT_EQ(linker.counters().unseen_ingress_unscanned, 3u);
}

// A process that never serves (a load generator, curl) is a pure client once
// it has been seen for pure_client_after_ns: its spans are not held, while a
// serving process's egress still waits for its ingress.
TEST(GatewayLinker, PureClientSpansAreNotHeld) {
  GatewayLinker linker(LinkerOptions{.hold_ns = 5000, .client_only_hold_ns = 5000, .pure_client_after_ns = 1000});
  std::vector<Span> out;
  auto emit = [&](SpanPtr&& sp) { out.push_back(std::move(*sp)); };
  auto client_span = [](uint32_t pid, uint64_t end) {
    auto s = std::make_unique<Span>();
    s->kind = SpanKind::kClient;
    s->pid = pid;
    s->end_unix_ns = end;
    return s;
  };
  linker.Add(client_span(7, 100), emit);  // first sight: may still turn out to be a gateway
  EXPECT_TRUE(out.empty());
  linker.Add(client_span(7, 1200), emit);  // seen 1.1 us without serving: a pure client
  EXPECT_EQ(out.size(), 1u);
  EXPECT_EQ(linker.counters().pure_client_egress, 1u);

  auto server = std::make_unique<Span>();  // pid 8 serves
  server->kind = SpanKind::kServer;
  server->pid = 8;
  server->start_unix_ns = 0;
  server->end_unix_ns = 50;
  linker.Add(std::move(server), emit);
  const size_t before = out.size();
  linker.Add(client_span(8, 5000), emit);  // a gateway's egress waits for its ingress
  EXPECT_EQ(out.size(), before);
  EXPECT_EQ(linker.pending(), 2u);  // pid 7's first span and pid 8's egress
}

// Egress spans whose ingress was lost wait until their hold ends; an ingress
// only considers the waiting spans that can nest in it (the queue's recent
// end), and still finds its own among thousands of stale ones.
TEST(GatewayLinker, StaleEgressSpansAreNotCandidates) {
  GatewayLinker linker(LinkerOptions{.hold_ns = 10'000'000'000, .reorder_window_ns = 1'000'000'000});
  std::vector<Span> out;
  auto emit = [&](SpanPtr&& sp) { out.push_back(std::move(*sp)); };
  auto span = [](SpanKind kind, uint64_t start, uint64_t end) {
    auto s = std::make_unique<Span>();
    s->kind = kind;
    s->pid = 9;
    s->start_unix_ns = start;
    s->end_unix_ns = end;
    s->url_path = "/same";
    return s;
  };
  constexpr uint64_t kSec = 1'000'000'000;
  auto server = span(SpanKind::kServer, 0, 1);  // the process serves
  linker.Add(std::move(server), emit);
  for (uint64_t i = 0; i < 10'000; ++i) linker.Add(span(SpanKind::kClient, 10 * kSec + i, 10 * kSec + i + 5), emit);
  linker.Add(span(SpanKind::kClient, 20 * kSec + 100, 20 * kSec + 200), emit);  // nests in the ingress below
  out.clear();
  linker.Add(span(SpanKind::kServer, 20 * kSec, 20 * kSec + 300), emit);
  ASSERT_EQ(out.size(), 2u);  // the ingress and its egress
  EXPECT_EQ(out[1].start_unix_ns, 20 * kSec + 100);
  EXPECT_EQ(out[1].parent_reason, LinkReason::kTimeNesting);
  EXPECT_EQ(linker.pending(), 10'000u);
}

// Egress records completed late by a timer (their end long past) sit behind
// a real candidate in the queue: the scan steps over them instead of taking
// the first old one as the end of the candidates. A queue swollen by lost
// ingress records (overload) is scanned only back to a run of old spans.
TEST(GatewayLinker, ScanStepsOverLateArrivalsAndStopsAtOldSpans) {
  GatewayLinker linker(LinkerOptions{.hold_ns = 10'000'000'000, .reorder_window_ns = 100'000'000});
  std::vector<Span> out;
  auto emit = [&](SpanPtr&& sp) { out.push_back(std::move(*sp)); };
  auto span = [](SpanKind kind, uint64_t start, uint64_t end, const char* path) {
    auto s = std::make_unique<Span>();
    s->kind = kind;
    s->pid = 9;
    s->start_unix_ns = start;
    s->end_unix_ns = end;
    s->url_path = path;
    return s;
  };
  constexpr uint64_t kSec = 1'000'000'000;
  linker.Add(span(SpanKind::kServer, 0, 1, "/first"), emit);  // the process serves
  // 50,000 egress spans of ingress records that were lost, over 5 s.
  for (uint64_t i = 0; i < 50'000; ++i) {
    linker.Add(span(SpanKind::kClient, kSec + i * 100'000, kSec + i * 100'000 + 50, "/lost"), emit);
  }
  linker.Add(span(SpanKind::kClient, 20 * kSec + 100, 20 * kSec + 200, "/mine"), emit);  // nests below
  for (int i = 0; i < 10; ++i) {  // completed late by a timer: ended seconds ago
    linker.Add(span(SpanKind::kClient, 2 * kSec + i, 2 * kSec + i + 1, "/late"), emit);
  }
  out.clear();
  linker.Add(span(SpanKind::kServer, 20 * kSec, 20 * kSec + 300, "/mine"), emit);
  ASSERT_EQ(out.size(), 2u);  // the ingress and its egress
  EXPECT_EQ(out[1].url_path, "/mine");
  EXPECT_EQ(out[1].parent_reason, LinkReason::kTimeNesting);
  EXPECT_EQ(linker.pending(), 50'010u);
}

}  // namespace
}  // namespace sonde::trace
