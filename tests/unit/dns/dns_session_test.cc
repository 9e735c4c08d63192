// DNS session over UDP (per-datagram peers, several lookups in flight,
// retransmissions, timeouts) and TCP (length-prefixed frames split anywhere,
// gaps); errors; garbage; inference; and record -> span through the real
// tracker, registry and span builder with an unconnected UDP server socket.
#include <gtest/gtest.h>

#include <random>

#include "agent/conn/tracker.h"
#include "agent/protocols/dns/definition.h"
#include "agent/protocols/dns/semantics.h"
#include "agent/protocols/dns/session.h"
#include "agent/trace/span_builder.h"
#include "tests/unit/conn/event_builder.h"
#include "tests/unit/dns/dns_messages.h"

namespace sonde::protocols::dns {
namespace {

namespace d = sonde::testing::dns;

constexpr auto kIn = Direction::kIngress;
constexpr auto kOut = Direction::kEgress;

// One datagram per call, with its peer (what the tracker hands a UDP session).
class Datagrams {
 public:
  explicit Datagrams(Role role) : session_(role, role == Role::kUnknown, Transport::kUdp) {}
  void Send(Direction dir, std::string_view bytes, uint64_t ts, uint16_t peer_port = 53) {
    StreamView view;
    view.bytes = bytes;
    ChunkInfo c;
    c.ts_enter_ns = ts;
    c.ts_exit_ns = ts + 1;
    c.thread_id = 3;
    c.peer.family = 2;
    c.peer.port = peer_port;
    c.peer.addr = {127, 0, 0, 1};
    view.chunks.push_back(c);
    EXPECT_EQ(session_.OnBytes(dir, view), bytes.size());
  }
  std::vector<L7Record> Take(uint64_t now = 0, bool closing = false) {
    std::vector<L7Record> out;
    session_.TakeRecords(now, closing, out);
    return out;
  }
  DnsSession& session() { return session_; }

 private:
  DnsSession session_;
};

TEST(DnsSession, UdpClientPairsByIdAndPeer) {
  Datagrams s(Role::kClient);
  // glibc sends A and AAAA together (sendmmsg); answers come back in any order.
  s.Send(kOut, d::Query(100, "kong.example.test", 1), 1000);
  s.Send(kOut, d::Query(101, "kong.example.test", 28), 1000);
  s.Send(kIn, d::Response(101, "kong.example.test", 28, 0, 0), 3000);
  s.Send(kIn, d::Response(100, "kong.example.test", 1, 0, 2), 4000);
  auto recs = s.Take();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].method, "AAAA");
  EXPECT_EQ(recs[0].response.headers.Find("answers").value_or(""), "0");
  EXPECT_EQ(recs[1].method, "A");
  EXPECT_EQ(recs[1].path, "kong.example.test");
  EXPECT_EQ(recs[1].response.headers.Find("rcode").value_or(""), "NOERROR");
  EXPECT_EQ(recs[1].response.headers.Find("answers").value_or(""), "2");
  EXPECT_EQ(recs[1].request.first_byte_ns, 1000u);  // egress: send entry
  EXPECT_EQ(recs[1].response.last_byte_ns, 4001u);  // ingress: recv exit
  EXPECT_EQ(recs[1].scheme, "udp");
  EXPECT_EQ(recs[1].peer.port, 53);
  EXPECT_EQ(recs[1].flags, 0u);
  SpanDescription desc;
  DnsSemantics().describe(recs[1], false, desc);
  EXPECT_EQ(desc.name, "DNS A");
  EXPECT_EQ(desc.operation, "A");
  EXPECT_EQ(desc.route, "kong.example.test");
  EXPECT_FALSE(desc.error);
}

TEST(DnsSession, UdpServerKeepsPeersApart) {
  Datagrams s(Role::kServer);
  // Two clients use the same id: the peer tells them apart.
  s.Send(kIn, d::Query(7, "a.test"), 100, 40001);
  s.Send(kIn, d::Query(7, "b.test"), 110, 40002);
  s.Send(kOut, d::Response(7, "b.test"), 200, 40002);
  s.Send(kOut, d::Response(7, "a.test", 1, 3, 0), 210, 40001);
  auto recs = s.Take();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].path, "b.test");
  EXPECT_EQ(recs[0].peer.port, 40002);
  EXPECT_EQ(recs[1].path, "a.test");
  EXPECT_EQ(recs[1].peer.port, 40001);
  EXPECT_EQ(ResponseCode(recs[1]), "NXDOMAIN");
  SpanDescription desc;
  DnsSemantics().describe(recs[1], true, desc);
  EXPECT_TRUE(desc.error);
  EXPECT_EQ(desc.status_message, "NXDOMAIN");
}

TEST(DnsSession, ServfailIsAnErrorAndRetransmissionsCountOnce) {
  Datagrams s(Role::kClient);
  s.Send(kOut, d::Query(9, "down.test"), 100);
  s.Send(kOut, d::Query(9, "down.test"), 1'000'100);  // resent after a timeout
  s.Send(kIn, d::Response(9, "down.test", 1, 2, 0), 1'000'500);
  auto recs = s.Take();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].request.first_byte_ns, 100u);  // the lookup started with the first copy
  EXPECT_EQ(ResponseCode(recs[0]), "SERVFAIL");
  SpanDescription desc;
  DnsSemantics().describe(recs[0], false, desc);
  EXPECT_TRUE(desc.error);
  std::vector<Attribute> attrs;
  DnsSemantics().attributes(recs[0], desc, ExchangeAddresses{}, attrs);
  bool error_type = false;
  for (const auto& a : attrs) {
    if (a.key == "error.type") error_type = std::get<std::string>(a.value) == "servfail";
  }
  EXPECT_TRUE(error_type);
}

TEST(DnsSession, UnansweredQueryTimesOut) {
  Datagrams s(Role::kClient);
  s.Send(kOut, d::Query(1, "slow.test"), 1'000'000'000);
  EXPECT_TRUE(s.Take(2'000'000'000).empty());
  auto recs = s.Take(1'000'000'000 + DnsSession::kQueryTimeoutNs + 1);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_TRUE(recs[0].flags & kRecordNoResponse);
  SpanDescription desc;
  DnsSemantics().describe(recs[0], false, desc);
  EXPECT_EQ(desc.status_message, "timeout");
}

TEST(DnsSession, ResponseToAnotherQuestionIsNotPaired) {
  Datagrams s(Role::kClient);
  s.Send(kOut, d::Query(5, "one.test"), 100);
  s.Send(kIn, d::Response(5, "two.test"), 200);  // spoofed / stale
  s.Send(kIn, d::Response(77, "one.test"), 210);  // wrong id
  EXPECT_TRUE(s.Take().empty());
  EXPECT_EQ(s.session().counters().unpaired, 2u);
}

TEST(DnsSession, TcpFramesSplitAnywhereAndPipelined) {
  const std::string queries = d::Tcp(d::Query(1, "x.test")) + d::Tcp(d::Query(2, "y.test", 16));
  const std::string answers = d::Tcp(d::Response(1, "x.test")) + d::Tcp(d::Response(2, "y.test", 16, 0, 0));
  for (size_t split = 1; split < answers.size(); ++split) {
    DnsSession session(Role::kClient, false, Transport::kTcp);
    auto feed = [&](Direction dir, std::string_view bytes, uint64_t ts, std::string& pending) {
      pending.append(bytes);
      StreamView view;
      view.bytes = pending;
      ChunkInfo c;
      c.ts_enter_ns = ts;
      c.ts_exit_ns = ts + 1;
      view.chunks.push_back(c);
      pending.erase(0, session.OnBytes(dir, view));
    };
    std::string out_buf, in_buf;
    feed(kOut, std::string_view(queries).substr(0, split % queries.size()), 10, out_buf);
    feed(kOut, std::string_view(queries).substr(split % queries.size()), 11, out_buf);
    feed(kIn, std::string_view(answers).substr(0, split), 20, in_buf);
    feed(kIn, std::string_view(answers).substr(split), 21, in_buf);
    std::vector<L7Record> recs;
    session.TakeRecords(0, false, recs);
    ASSERT_EQ(recs.size(), 2u) << split;
    EXPECT_EQ(recs[0].path, "x.test");
    EXPECT_EQ(recs[1].method, "TXT");
    EXPECT_EQ(recs[1].scheme, "tcp");
    EXPECT_EQ(session.counters().parse_errors, 0u);
  }
}

TEST(DnsSession, GarbageAndTruncatedDatagramsMakeNoRecords) {
  std::mt19937 rng(4);
  for (int round = 0; round < 100; ++round) {
    Datagrams s(round % 2 ? Role::kClient : Role::kServer);
    for (int i = 0; i < 50; ++i) {
      std::string junk(rng() % 600, '\0');
      for (char& c : junk) c = static_cast<char>(rng());
      s.Send(rng() % 2 ? kIn : kOut, junk, i);
    }
    EXPECT_TRUE(s.Take(0, true).empty()) << round;
    EXPECT_GT(s.session().counters().parse_errors, 25u) << round;  // counted, not silently skipped
  }
  Datagrams s(Role::kClient);
  const std::string q = d::Query(3, "cut.example.test");
  s.Send(kOut, q.substr(0, 20), 1);  // cut inside the question
  EXPECT_TRUE(s.Take(0, true).empty());
  EXPECT_EQ(s.session().counters().parse_errors, 1u);
}

TEST(DnsSession, TcpGarbageAndGapsMakeNoBogusRecords) {
  std::mt19937 rng(7);
  for (int round = 0; round < 100; ++round) {
    DnsSession session(round % 2 ? Role::kClient : Role::kServer, round % 3 == 0, Transport::kTcp);
    std::string pending[2];
    for (int i = 0; i < 40; ++i) {
      const int d = static_cast<int>(rng() % 2);
      std::string junk(rng() % 300, '\0');
      for (char& c : junk) c = static_cast<char>(rng());
      pending[d] += junk;
      StreamView view;
      view.bytes = pending[d];
      ChunkInfo c;
      c.ts_enter_ns = c.ts_exit_ns = static_cast<uint64_t>(i);
      view.chunks.push_back(c);
      const size_t used = session.OnBytes(d ? kIn : kOut, view);
      ASSERT_LE(used, pending[d].size());
      pending[d].erase(0, used);
      if (rng() % 8 == 0) {
        session.OnGap(d ? kIn : kOut, rng() % 1000 + 1);
        pending[d].clear();
      }
    }
    std::vector<L7Record> recs;
    session.TakeRecords(0, true, recs);
    EXPECT_TRUE(recs.empty()) << round;
  }
  // A real frame after garbage and a gap is found again.
  DnsSession session(Role::kClient, false, Transport::kTcp);
  std::string bytes = std::string("\x00\x05junk!", 7);
  StreamView view;
  ChunkInfo c;
  view.chunks.push_back(c);
  view.bytes = bytes;
  session.OnBytes(kOut, view);
  session.OnGap(kOut, 100);
  const std::string q = d::Tcp(d::Query(42, "again.test")), r = d::Tcp(d::Response(42, "again.test"));
  view.bytes = q;
  EXPECT_EQ(session.OnBytes(kOut, view), q.size());
  view.bytes = r;
  EXPECT_EQ(session.OnBytes(kIn, view), r.size());
  std::vector<L7Record> recs;
  session.TakeRecords(0, false, recs);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].path, "again.test");
  EXPECT_EQ(session.counters().parse_errors, 1u);  // the 5-byte "frame" is too short for a header
  EXPECT_EQ(session.counters().resyncs, 1u);
}

TEST(DnsInfer, StrictQueriesAndResponsesWithRole) {
  const std::string q = d::Query(1, "example.test");
  EXPECT_EQ(InferUdp(q, kOut, Role::kUnknown), InferResult::kYes);
  EXPECT_EQ(InferUdp(q, kIn, Role::kClient), InferResult::kNo);
  EXPECT_EQ(InferRole(q, kIn), Role::kServer);
  EXPECT_EQ(InferUdp(d::Response(1, "example.test"), kIn, Role::kUnknown), InferResult::kNo);
  EXPECT_EQ(InferUdp(d::Response(1, "example.test"), kIn, Role::kClient), InferResult::kYes);
  EXPECT_EQ(InferTcp(d::Tcp(q), kOut, Role::kClient), InferResult::kYes);
  EXPECT_EQ(InferTcp(d::Tcp(q).substr(0, 9), kOut, Role::kClient), InferResult::kMaybeNeedMore);
  EXPECT_EQ(InferTcp("GET / HTTP/1.1\r\n", kOut, Role::kClient), InferResult::kNo);
  EXPECT_EQ(InferUdp(std::string("\x16\xfe\xfd\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00", 14), kOut,
                     Role::kUnknown),
            InferResult::kNo);
}

// An unconnected UDP server socket (dnsmasq): one socket, many clients, the
// peer of each datagram in the event's tuple.
TEST(DnsSpan, UnconnectedServerSocketThroughTheTracker) {
  core::MonotonicToRealtime clock;
  conn::ConnectionTracker tracker;
  trace::SpanBuilder builder{clock, 1};
  std::vector<trace::Span> spans;
  sonde::testing::SocketSim sock(20, 20, "dnsmasq", 55, 4, SONDE_ROLE_UNKNOWN,
                                 sonde::testing::Endpoints{"0.0.0.0", 5353, "0.0.0.0", 0});
  auto datagram = [&](sonde_direction dir, const std::string& bytes, uint64_t ts, uint16_t peer_port) {
    std::vector<uint8_t> ev = sock.Data(dir, bytes, ts, ts + 100, 0, /*seq=*/false);
    auto* d = reinterpret_cast<sonde_data_event*>(ev.data());
    d->tuple.l4_protocol = 17;
    d->tuple.dport = peer_port;
    const uint8_t peer[4] = {10, 1, 2, static_cast<uint8_t>(peer_port % 200)};
    std::memcpy(d->tuple.daddr, peer, 4);
    d->syscall = dir == SONDE_DIR_EGRESS ? SONDE_SYS_SENDMSG : SONDE_SYS_RECVMSG;
    std::vector<conn::ConnRecord> recs;
    tracker.OnEvent(ev, recs);
    for (auto& r : recs) spans.push_back(builder.Build(r));
  };
  datagram(SONDE_DIR_INGRESS, d::Query(11, "svc.test"), 1000, 40001);
  datagram(SONDE_DIR_INGRESS, d::Query(12, "nope.test"), 1100, 40002);
  datagram(SONDE_DIR_EGRESS, d::Response(11, "svc.test"), 1200, 40001);
  datagram(SONDE_DIR_EGRESS, d::Response(12, "nope.test", 1, 3, 0), 1300, 40002);
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(tracker.counters().connections_replaced, 0u);  // new peers are not new sockets
  EXPECT_EQ(spans[0].protocol, L7Protocol::kDns);
  EXPECT_EQ(spans[0].kind, trace::SpanKind::kServer);
  EXPECT_EQ(spans[0].name, "DNS A");
  EXPECT_EQ(spans[0].peer.port, 40001);
  EXPECT_EQ(spans[1].peer.port, 40002);
  EXPECT_EQ(*trace::StringAttribute(spans[0], "dns.question.name"), "svc.test");
  EXPECT_EQ(*trace::StringAttribute(spans[0], "network.peer.address"), "10.1.2.1");
  EXPECT_EQ(*trace::StringAttribute(spans[1], "network.peer.address"), "10.1.2.2");
  EXPECT_EQ(*trace::StringAttribute(spans[1], "sonde.dns.response_code"), "NXDOMAIN");
  EXPECT_EQ(spans[1].status, trace::StatusCode::kError);
  EXPECT_NE(spans[0].status, trace::StatusCode::kError);
}

}  // namespace
}  // namespace sonde::protocols::dns
