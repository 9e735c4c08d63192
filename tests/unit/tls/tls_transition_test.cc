// The ciphertext -> plaintext switch of a TLS socket as user space sees it
// (TlsTransitions + ConnectionTracker), and what TLS changes on spans and RED.
#include "agent/capture/tls_transition.h"

#include <gtest/gtest.h>

#include "agent/conn/tracker.h"
#include "agent/core/clock.h"
#include "agent/metrics/red.h"
#include "agent/trace/span_builder.h"
#include "tests/unit/conn/event_builder.h"

namespace sonde::capture {
namespace {

using sonde::testing::Endpoints;
using sonde::testing::SocketSim;

constexpr std::string_view kReq = "GET /pay/42 HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer x\r\n\r\n";
constexpr std::string_view kResp = "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";

SocketSim Server(uint64_t sock = 77, int32_t fd = 5) {
  return SocketSim(100, 101, "nginx", sock, fd, SONDE_ROLE_SERVER, Endpoints{"10.0.0.1", 443, "10.0.0.2", 40000});
}

// What the TLS uprobes emit: plaintext, no TCP sequence, SSL_read/SSL_write.
std::vector<uint8_t> Plain(SocketSim& s, sonde_direction dir, std::string_view data, uint64_t ts) {
  std::vector<uint8_t> buf = s.Data(dir, data, ts, ts + 500, 0, /*seq=*/false);
  auto* ev = reinterpret_cast<sonde_data_event*>(buf.data());
  ev->flags |= SONDE_DATA_TLS;
  ev->syscall = dir == SONDE_DIR_EGRESS ? SONDE_SYS_SSL_WRITE : SONDE_SYS_SSL_READ;
  return buf;
}

// A TLS record header and some noise: what a handshake looks like to a syscall.
std::string Ciphertext(int i) {
  std::string c = "\x16\x03\x03";
  c.push_back('\x00');
  c.push_back(static_cast<char>(40 + i));
  for (int k = 0; k < 40 + i; ++k) c.push_back(static_cast<char>((k * 37 + i) & 0xff));
  return c;
}

struct Harness {
  TlsTransitions transitions;
  conn::ConnectionTracker tracker;
  std::vector<conn::ConnRecord> out;
  std::vector<uint8_t> markers;  // syscall of every conn event delivered
  void Feed(const std::vector<uint8_t>& buf) {
    transitions.Deliver(RawEvent(buf.data(), buf.size()), [&](RawEvent ev) {
      if (const auto* c = AsConnEvent(ev)) markers.push_back(c->syscall);
      tracker.OnEvent(ev, out);
    });
  }
  int MarkerCount() const {
    int n = 0;
    for (uint8_t m : markers) n += m == SONDE_SYS_TLS_START;
    return n;
  }
};

TEST(TlsTransition, HandshakeCiphertextGivesWayToPlaintext) {
  Harness h;
  SocketSim s = Server();
  h.Feed(s.Open(1000));
  // A long handshake: enough calls for the tracker to give up on the socket.
  for (int i = 0; i < 12; ++i) {
    h.Feed(i % 2 ? s.Write(Ciphertext(i), 2000 + i * 100) : s.Read(Ciphertext(i), 2000 + i * 100));
  }
  EXPECT_EQ(h.tracker.unclaimed_sockets(), std::vector<uint64_t>{77});
  EXPECT_FALSE(h.transitions.SeenPlaintext(77));  // so the source keeps the kernel copying
  h.tracker.unclaimed_sockets().clear();
  EXPECT_EQ(h.MarkerCount(), 0);

  h.Feed(Plain(s, SONDE_DIR_INGRESS, kReq, 10'000));
  EXPECT_TRUE(h.transitions.SeenPlaintext(77));
  h.Feed(Plain(s, SONDE_DIR_EGRESS, kResp, 20'000));
  h.Feed(Plain(s, SONDE_DIR_INGRESS, kReq, 30'000));
  h.Feed(Plain(s, SONDE_DIR_EGRESS, kResp, 40'000));
  EXPECT_EQ(h.MarkerCount(), 1);
  ASSERT_EQ(h.out.size(), 2u);
  for (const auto& r : h.out) {
    EXPECT_EQ(r.record.path, "/pay/42");
    EXPECT_EQ(r.record.status, 201);
    EXPECT_TRUE(r.conn.tls);
    EXPECT_EQ(r.conn.role, protocols::Role::kServer);
    EXPECT_EQ(r.conn.sock_id, 77u);
    EXPECT_FALSE(r.record.request.first_tcp_seq.has_value());
  }
  EXPECT_EQ(h.out[0].record.request.first_byte_ns, 10'500u);
  EXPECT_TRUE(h.tracker.unclaimed_sockets().empty());
}

TEST(TlsTransition, PlaintextWithoutHandshakeSeen) {
  // A connection whose handshake predates the agent: plaintext is all there is.
  Harness h;
  SocketSim s = Server(88, 9);
  h.Feed(Plain(s, SONDE_DIR_INGRESS, kReq, 1000));
  h.Feed(Plain(s, SONDE_DIR_EGRESS, kResp, 2000));
  EXPECT_EQ(h.MarkerCount(), 1);  // harmless: nothing to close
  ASSERT_EQ(h.out.size(), 1u);
  EXPECT_TRUE(h.out[0].conn.tls);
}

TEST(TlsTransition, OneMarkerPerSocketLifetime) {
  Harness h;
  SocketSim a = Server(1, 5), b = Server(2, 6);
  h.Feed(Plain(a, SONDE_DIR_INGRESS, kReq, 1000));
  h.Feed(Plain(b, SONDE_DIR_INGRESS, kReq, 1100));
  h.Feed(Plain(a, SONDE_DIR_EGRESS, kResp, 2000));
  h.Feed(Plain(b, SONDE_DIR_EGRESS, kResp, 2100));
  EXPECT_EQ(h.MarkerCount(), 2);
  h.Feed(a.CloseEv(3000));  // the inode may now name a new socket
  EXPECT_FALSE(h.transitions.SeenPlaintext(1));
  h.Feed(Plain(a, SONDE_DIR_INGRESS, kReq, 4000));
  EXPECT_EQ(h.MarkerCount(), 3);
  EXPECT_EQ(h.transitions.transitions(), 3u);
}

TEST(TlsTransition, PlainSocketsUntouched) {
  Harness h;
  SocketSim s = Server();
  h.Feed(s.Open(1000));
  h.Feed(s.Read(kReq, 2000));
  h.Feed(s.Write(kResp, 3000));
  EXPECT_EQ(h.MarkerCount(), 0);
  ASSERT_EQ(h.out.size(), 1u);
  EXPECT_FALSE(h.out[0].conn.tls);
}

TEST(TlsTransition, BoundedSetForgetsWhenFull) {
  TlsTransitions t(/*max_sockets=*/2);
  sonde_conn_event start;
  for (uint64_t sock : {1, 2, 3}) {
    SocketSim s = Server(sock, 5);
    auto buf = Plain(s, SONDE_DIR_INGRESS, kReq, 1000);
    EXPECT_TRUE(t.OnData(*AsDataEvent(RawEvent(buf.data(), buf.size())), &start));
    EXPECT_EQ(start.sock_id, sock);
    EXPECT_EQ(start.syscall, SONDE_SYS_TLS_START);
  }
  EXPECT_EQ(t.resets(), 1u);
  EXPECT_TRUE(t.SeenPlaintext(3));
}

conn::ConnRecord Record(protocols::L7Protocol protocol, bool tls) {
  conn::ConnRecord cr;
  cr.record.protocol = protocol;
  cr.record.method = "GET";
  cr.record.path = "/x";
  cr.record.status = 200;
  cr.record.request.first_byte_ns = 1000;
  cr.record.response.last_byte_ns = 2000;
  cr.record.response.complete = true;
  cr.conn.role = protocols::Role::kServer;
  cr.conn.comm = "nginx";
  cr.conn.tls = tls;
  return cr;
}

TEST(TlsSpans, UrlSchemeOnHttpFamilySpansOnly) {
  core::MonotonicToRealtime clock;
  trace::SpanBuilder builder(clock, 1);
  auto scheme = [&](protocols::L7Protocol p, bool tls) {
    const trace::Span s = builder.Build(Record(p, tls));
    const std::string* v = trace::StringAttribute(s, "url.scheme");
    return v ? *v : std::string("<none>");
  };
  EXPECT_EQ(scheme(protocols::L7Protocol::kHttp1, true), "https");
  EXPECT_EQ(scheme(protocols::L7Protocol::kHttp1, false), "http");
  EXPECT_EQ(scheme(protocols::L7Protocol::kHttp2, true), "https");
  EXPECT_EQ(scheme(protocols::L7Protocol::kRedis, true), "<none>");
}

TEST(TlsSpans, RedSeriesSplitByScheme) {
  core::MonotonicToRealtime clock;
  trace::SpanBuilder builder(clock, 1);
  metrics::RedAggregator red;
  for (int i = 0; i < 3; ++i) red.OnSpan(builder.Build(Record(protocols::L7Protocol::kHttp1, true)));
  red.OnSpan(builder.Build(Record(protocols::L7Protocol::kHttp1, false)));
  const auto totals = red.Totals();
  ASSERT_EQ(totals.size(), 2u);
  std::map<std::string, uint64_t> by_scheme;
  for (const auto& [key, series] : totals) by_scheme[key.scheme] += series.count;
  EXPECT_EQ(by_scheme, (std::map<std::string, uint64_t>{{"http", 1}, {"https", 3}}));
  std::string text;
  red.AppendPrometheus(text);
  EXPECT_NE(text.find("url_scheme=\"https\""), std::string::npos) << text;
  EXPECT_NE(text.find("url_scheme=\"http\""), std::string::npos) << text;
}

}  // namespace
}  // namespace sonde::capture
