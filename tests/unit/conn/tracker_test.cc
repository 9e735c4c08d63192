// ConnectionTracker and DataStream on hand-made capture events.
#include <gtest/gtest.h>

#include "agent/conn/tracker.h"
#include "tests/unit/conn/event_builder.h"

namespace sonde::conn {
namespace {

using sonde::testing::Endpoints;
using sonde::testing::SocketSim;
using protocols::Role;

constexpr std::string_view kReq = "GET /users/1 HTTP/1.1\r\nHost: api\r\n\r\n";
constexpr std::string_view kResp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

SocketSim Server(uint64_t sock = 77, int32_t fd = 5) {
  return SocketSim(100, 101, "nginx", sock, fd, SONDE_ROLE_SERVER,
                   Endpoints{"10.0.0.1", 8080, "10.0.0.2", 40000});
}

TEST(ConnectionTracker, ServerExchangeWithContext) {
  ConnectionTracker t;
  SocketSim s = Server();
  std::vector<ConnRecord> out;
  t.OnEvent(s.Open(1000), out);
  t.OnEvent(s.Read(kReq, 2000), out);
  t.OnEvent(s.Write(kResp, 5000), out);
  ASSERT_EQ(out.size(), 1u);
  const ConnRecord& r = out[0];
  EXPECT_EQ(r.record.path, "/users/1");
  EXPECT_EQ(r.record.status, 200);
  EXPECT_EQ(r.conn.pid, 100u);
  EXPECT_EQ(r.conn.tid, 101u);
  EXPECT_EQ(r.conn.comm, "nginx");
  EXPECT_EQ(r.conn.role, Role::kServer);
  EXPECT_EQ(r.conn.sock_id, 77u);
  EXPECT_EQ(r.conn.tuple.sport, 8080);
  EXPECT_EQ(r.record.request.first_byte_ns, 3000u);  // read exit
  EXPECT_EQ(r.record.response.last_byte_ns, 6000u);
  EXPECT_EQ(*r.record.request.first_tcp_seq, 5'000'000u);
  EXPECT_EQ(*r.record.response.first_tcp_seq, 1'000'000u);
  t.OnEvent(s.CloseEv(7000), out);
  EXPECT_EQ(t.open_connections(), 0u);
  EXPECT_EQ(t.counters().records, 1u);
}

TEST(ConnectionTracker, ReordersBySequence) {
  ConnectionTracker t;
  SocketSim s = Server();
  std::vector<ConnRecord> out;
  t.OnEvent(s.Open(1000), out);
  t.OnEvent(s.Read(kReq, 1500), out);
  t.OnEvent(s.Write(kResp, 1600), out);  // sequence of the egress stream now known
  out.clear();
  t.OnEvent(s.Read(kReq, 2000), out);
  auto part1 = s.Write("HTTP/1.1 200 OK\r\nContent-", 3000);
  auto part2 = s.Write("Length: 2\r\n\r\nok", 4000);
  t.OnEvent(part2, out);  // arrives first
  EXPECT_TRUE(out.empty());
  t.OnEvent(part1, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].record.status, 200);
  EXPECT_EQ(out[0].record.response.bytes, kResp.size());
  EXPECT_EQ(t.counters().reordered_chunks, 1u);
}

TEST(ConnectionTracker, TruncatedBodyCountedByBytes) {
  ConnectionTracker t;
  SocketSim s = Server();
  std::vector<ConnRecord> out;
  t.OnEvent(s.Open(1000), out);
  t.OnEvent(s.Read(kReq, 2000), out);
  std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 50000\r\n\r\n";
  std::string captured = head + std::string(4096 - head.size(), 'x');
  t.OnEvent(s.Data(SONDE_DIR_EGRESS, captured, 3000, 4000, head.size() + 50000), out);
  t.OnEvent(s.Read(kReq, 5000), out);
  t.OnEvent(s.Write(kResp, 6000), out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].record.response.body_bytes, 50000u);
  EXPECT_EQ(out[0].record.response.last_byte_ns, 4000u);
  EXPECT_EQ(out[1].record.status, 200);
  EXPECT_EQ(out[0].record.flags & protocols::kRecordTruncated, 0u);
}

TEST(ConnectionTracker, LostEventBecomesGapWithoutMispairing) {
  ConnectionTracker t;
  SocketSim s = Server();
  std::vector<ConnRecord> out;
  t.OnEvent(s.Open(1000), out);
  t.OnEvent(s.Read(kReq, 2000), out);
  t.OnEvent(s.Write(kResp, 3000), out);
  s.SkipSeq(SONDE_DIR_INGRESS, 40);  // second request lost in the ring buffer
  t.OnEvent(s.Write("HTTP/1.1 503 X\r\nContent-Length: 0\r\n\r\n", 5000), out);
  t.OnEvent(s.Read("GET /third HTTP/1.1\r\n\r\n", 6000), out);  // waits behind the hole
  t.Tick(6000 + 200'000'000, out);                              // reorder window passes
  t.OnEvent(s.Write(kResp, 200'007'000), out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].record.path, "/third");
  EXPECT_EQ(out[1].record.status, 200);
  EXPECT_GE(t.counters().gap_bytes, 40u);
}

TEST(ConnectionTracker, UnknownProtocolIgnored) {
  ConnectionTracker t;
  SocketSim s = Server();
  std::vector<ConnRecord> out;
  t.OnEvent(s.Open(1000), out);
  for (int i = 0; i < 10; ++i) t.OnEvent(s.Read("\x16\x03\x01\x02\x00 tls hello", 2000 + i), out);
  t.OnEvent(s.CloseEv(9000), out);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(t.counters().unknown_protocol, 1u);
  EXPECT_EQ(t.buffered_bytes(), 0u);
}

TEST(ConnectionTracker, PerStreamBoundDropsAndCounts) {
  TrackerOptions o;
  o.stream.max_buffer_bytes = 1000;
  ConnectionTracker t(o);
  SocketSim s = Server();
  std::vector<ConnRecord> out;
  t.OnEvent(s.Open(1000), out);
  t.OnEvent(s.Read("GET /big HTTP/1.1\r\n", 2000), out);
  std::string hdr = "X-Long: " + std::string(600, 'a') + "\r\n";
  t.OnEvent(s.Read(hdr, 3000), out);
  t.OnEvent(s.Read(hdr, 4000), out);
  EXPECT_GE(t.counters().overflow_drops, 1u);
  EXPECT_LE(t.buffered_bytes(), 1000u);
  // The stream resyncs on the next request.
  t.OnEvent(s.Read(kReq, 5000), out);
  t.OnEvent(s.Write(kResp, 6000), out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].record.path, "/users/1");
}

TEST(ConnectionTracker, TotalBudgetDropsAndCounts) {
  TrackerOptions o;
  o.max_memory_bytes = 2000;
  ConnectionTracker t(o);
  std::vector<ConnRecord> out;
  for (int i = 0; i < 10; ++i) {
    SocketSim s = Server(1000 + i, 10 + i);
    t.OnEvent(s.Open(1000), out);
    t.OnEvent(s.Read("GET /partial HTTP/1.1\r\nX-Pad: " + std::string(500, 'p'), 2000), out);
  }
  EXPECT_LE(t.buffered_bytes(), 2000u);
  EXPECT_GE(t.counters().memory_drops, 1u);
}

TEST(ConnectionTracker, IdleExpiryFlushesPending) {
  TrackerOptions o;
  o.idle_timeout_ns = 1'000'000'000;
  ConnectionTracker t(o);
  SocketSim s = Server();
  std::vector<ConnRecord> out;
  t.OnEvent(s.Open(1000), out);
  t.OnEvent(s.Read(kReq, 2000), out);
  t.Tick(500'000'000, out);
  EXPECT_EQ(t.open_connections(), 1u);
  t.Tick(5'000'000'000, out);
  EXPECT_EQ(t.open_connections(), 0u);
  EXPECT_EQ(t.counters().connections_expired, 1u);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].record.flags & protocols::kRecordNoResponse);
}

// The peer's RST moves the socket to CLOSE on another CPU while the server's
// write of the response is still on its way into the ring buffer: the write
// must still be paired with its request.
TEST(ConnectionTracker, StateCloseWaitsForInFlightSyscalls) {
  TrackerOptions o;
  o.state_close_grace_ns = 100'000'000;
  ConnectionTracker t(o);
  SocketSim s = Server();
  std::vector<ConnRecord> out;
  t.OnEvent(s.Open(1000), out);
  t.OnEvent(s.Read(kReq, 2000), out);
  t.OnEvent(s.StateCloseEv(4000), out);
  EXPECT_EQ(t.open_connections(), 1u) << "a state close is not final while the fd is open";
  t.OnEvent(s.Write(kResp, 3500), out);  // entered before the RST, exits after it
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].record.status, 200);
  t.Tick(50'000'000, out);
  EXPECT_EQ(t.open_connections(), 1u);
  t.Tick(200'000'000, out);
  EXPECT_EQ(t.open_connections(), 0u) << "closed once the grace period passed";
  EXPECT_EQ(out.size(), 1u);
}

TEST(ConnectionTracker, StateCloseThenFdCloseIsFinalAtOnce) {
  ConnectionTracker t;
  SocketSim s = Server();
  std::vector<ConnRecord> out;
  t.OnEvent(s.Open(1000), out);
  t.OnEvent(s.Read(kReq, 2000), out);
  t.OnEvent(s.StateCloseEv(4000), out);
  t.OnEvent(s.CloseEv(5000), out);
  EXPECT_EQ(t.open_connections(), 0u);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].record.flags & protocols::kRecordNoResponse);
}

TEST(ConnectionTracker, FdReuseStartsNewGeneration) {
  ConnectionTracker t;
  std::vector<ConnRecord> out;
  SocketSim a = Server(500, 9);
  t.OnEvent(a.Open(1000), out);
  t.OnEvent(a.Read(kReq, 2000), out);  // no response, close never seen
  SocketSim b = Server(501, 9);  // same pid and fd, new socket
  t.OnEvent(b.Read(kReq, 3000), out);
  ASSERT_EQ(out.size(), 1u);  // the old connection was flushed
  EXPECT_TRUE(out[0].record.flags & protocols::kRecordNoResponse);
  EXPECT_EQ(t.counters().connections_replaced, 1u);
  t.OnEvent(b.Write(kResp, 4000), out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].conn.sock_id, 501u);
}

TEST(ConnectionTracker, LateJoinInfersRole) {
  ConnectionTracker t;
  SocketSim s(200, 201, "curl", 900, 3, SONDE_ROLE_UNKNOWN, Endpoints{"10.0.0.2", 40000, "10.0.0.1", 80});
  std::vector<ConnRecord> out;
  t.OnEvent(s.Write("GET /x HTTP/1.1\r\n\r\n", 1000), out);
  t.OnEvent(s.Read(kResp, 2000), out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].conn.role, Role::kClient);
}

TEST(ConnectionTracker, MalformedEventsCounted) {
  ConnectionTracker t;
  std::vector<ConnRecord> out;
  std::vector<uint8_t> junk(10, 0xff);
  t.OnEvent(junk, out);
  SocketSim s = Server();
  auto ev = s.Read(kReq, 1000);
  ev.resize(sizeof(sonde_data_event) + 3);  // payload_len says more than present
  t.OnEvent(ev, out);
  EXPECT_EQ(t.counters().malformed_events, 2u);
}

}  // namespace
}  // namespace sonde::conn
