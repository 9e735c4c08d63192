#include "agent/tcp/tcp_aggregator.h"

#include "agent/tcp/address_class.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cstring>

#include <gtest/gtest.h>

namespace sonde::tcp {
namespace {

sonde_tcp_sock_stats MakeSocket(const char* local, uint16_t lport, const char* remote,
                                uint16_t rport, uint8_t role, const char* comm) {
  sonde_tcp_sock_stats s{};
  s.tuple.family = AF_INET;
  s.tuple.l4_protocol = 6;
  inet_pton(AF_INET, local, s.tuple.saddr);
  inet_pton(AF_INET, remote, s.tuple.daddr);
  s.tuple.sport = lport;
  s.tuple.dport = rport;
  s.role = role;
  std::strncpy(s.comm, comm, sizeof(s.comm) - 1);
  return s;
}

PairKey ClientKey(const char* comm) {
  return PairKey{"10.0.0.1", "10.0.0.2", 8080, Side::kClient, comm};
}

TEST(TcpAggregator, ConnectLifecycleProducesDeltasOnce) {
  TcpAggregator agg;
  auto s = MakeSocket("10.0.0.1", 40000, "10.0.0.2", 8080, SONDE_ROLE_CLIENT, "curl");
  s.start_ns = 1000;
  // Read 1: SYN_SENT only.
  std::vector<SocketSnapshot> snaps = {{7, s}};
  auto w1 = agg.Update(snaps, {}, 1'000'000'000);
  ASSERT_EQ(w1.pairs.size(), 1u);
  EXPECT_EQ(w1.pairs[0].delta.connections_opened, 0u);
  // Read 2: established with a 2 ms handshake, some bytes, a retransmission.
  s.flags |= SONDE_TCP_ESTABLISHED;
  s.handshake_ns = 2'000'000;
  s.srtt_us = 2100;
  s.bytes_acked = 100;
  s.bytes_received = 5000;
  s.retrans_segs = 1;
  snaps = {{7, s}};
  auto w2 = agg.Update(snaps, {}, 2'000'000'000);
  ASSERT_EQ(w2.pairs.size(), 1u);
  const auto& p = w2.pairs[0];
  EXPECT_EQ(p.key, ClientKey("curl"));
  EXPECT_EQ(p.delta.connections_opened, 1u);
  EXPECT_EQ(p.delta.handshake.count, 1u);
  EXPECT_EQ(p.delta.handshake.sum_ns, 2'000'000u);
  EXPECT_EQ(p.delta.bytes_client_to_server, 100u);
  EXPECT_EQ(p.delta.bytes_server_to_client, 5000u);
  EXPECT_EQ(p.delta.retrans_segs, 1u);
  EXPECT_EQ(p.active_connections, 1u);
  EXPECT_EQ(p.srtt_samples, 1u);
  EXPECT_DOUBLE_EQ(p.srtt_mean_us(), 2100.0);
  // Read 3: more bytes, closed.
  s.bytes_acked = 300;
  s.retrans_segs = 4;
  s.flags |= SONDE_TCP_CLOSED;
  snaps = {{7, s}};
  auto w3 = agg.Update(snaps, {}, 3'000'000'000);
  ASSERT_EQ(w3.pairs.size(), 1u);
  EXPECT_EQ(w3.pairs[0].delta.connections_opened, 0u);
  EXPECT_EQ(w3.pairs[0].delta.connections_closed, 1u);
  EXPECT_EQ(w3.pairs[0].delta.bytes_client_to_server, 200u);
  EXPECT_EQ(w3.pairs[0].delta.retrans_segs, 3u);
  EXPECT_EQ(w3.pairs[0].active_connections, 0u);
  // Read 4: the socket is gone (deleted by the reader): nothing new.
  auto w4 = agg.Update({}, {}, 4'000'000'000);
  EXPECT_TRUE(w4.pairs.empty());

  PairCounters totals;
  ASSERT_TRUE(agg.Totals(ClientKey("curl"), &totals));
  EXPECT_EQ(totals.connections_opened, 1u);
  EXPECT_EQ(totals.connections_closed, 1u);
  EXPECT_EQ(totals.retrans_segs, 4u);
  EXPECT_EQ(totals.bytes_client_to_server, 300u);
}

TEST(TcpAggregator, FailedConnectsByReason) {
  TcpAggregator agg;
  auto refused = MakeSocket("10.0.0.1", 40001, "10.0.0.2", 8080, SONDE_ROLE_CLIENT, "c");
  refused.flags = SONDE_TCP_CLOSED | SONDE_TCP_FAILED_REFUSED;
  refused.resets_received = 1;
  auto timeout = MakeSocket("10.0.0.1", 40002, "10.0.0.2", 8080, SONDE_ROLE_CLIENT, "c");
  timeout.flags = SONDE_TCP_CLOSED | SONDE_TCP_FAILED_TIMEOUT;
  timeout.syn_retrans = 2;
  timeout.retrans_segs = 2;
  std::vector<SocketSnapshot> snaps = {{1, refused}, {2, timeout}};
  auto w = agg.Update(snaps, {}, 1);
  ASSERT_EQ(w.pairs.size(), 1u);
  EXPECT_EQ(w.pairs[0].delta.failed_refused, 1u);
  EXPECT_EQ(w.pairs[0].delta.failed_timeout, 1u);
  EXPECT_EQ(w.pairs[0].delta.failed(), 2u);
  EXPECT_EQ(w.pairs[0].delta.connections_opened, 0u);
  EXPECT_EQ(w.pairs[0].delta.connections_closed, 0u);  // never established
  EXPECT_EQ(w.pairs[0].delta.resets_received, 1u);
  EXPECT_EQ(w.pairs[0].delta.syn_retrans, 2u);
}

TEST(TcpAggregator, ServerSideKeyAndOrphanResets) {
  TcpAggregator agg(AggregatorOptions{.per_client_ip = true});
  auto s = MakeSocket("10.0.0.2", 8080, "10.0.0.1", 40000, SONDE_ROLE_SERVER, "nginx");
  s.flags = SONDE_TCP_ESTABLISHED;
  s.bytes_acked = 10;      // server sent
  s.bytes_received = 20;   // client sent
  PairSnapshot orphan{};
  orphan.key.family = AF_INET;
  inet_pton(AF_INET, "10.0.0.2", orphan.key.laddr);
  inet_pton(AF_INET, "10.0.0.9", orphan.key.raddr);
  orphan.key.lport = 9;
  orphan.key.rport = 50000;
  orphan.stats.resets_sent = 2;
  std::vector<SocketSnapshot> snaps = {{3, s}};
  std::vector<PairSnapshot> pairs = {orphan};
  auto w = agg.Update(snaps, pairs, 1);
  ASSERT_EQ(w.pairs.size(), 2u);
  PairCounters t;
  ASSERT_TRUE(agg.Totals(PairKey{"10.0.0.1", "10.0.0.2", 8080, Side::kServer, "nginx"}, &t));
  EXPECT_EQ(t.bytes_client_to_server, 20u);
  EXPECT_EQ(t.bytes_server_to_client, 10u);
  ASSERT_TRUE(agg.Totals(PairKey{"10.0.0.9", "10.0.0.2", 9, Side::kServer, ""}, &t));
  EXPECT_EQ(t.resets_sent, 2u);
  // The same cumulative pair value read again adds nothing.
  agg.Update(snaps, pairs, 2);
  ASSERT_TRUE(agg.Totals(PairKey{"10.0.0.9", "10.0.0.2", 9, Side::kServer, ""}, &t));
  EXPECT_EQ(t.resets_sent, 2u);
}

TEST(AddressClass, ClassesOfV4AndV6) {
  const std::pair<const char*, const char*> cases[] = {
      {"127.0.0.1", "loopback"},        {"127.200.0.9", "loopback"},   {"::1", "loopback"},
      {"10.1.2.3", "private"},          {"172.16.0.1", "private"},     {"172.31.255.255", "private"},
      {"192.168.1.1", "private"},       {"100.64.0.1", "private"},     {"fd12:3456::1", "private"},
      {"169.254.169.254", "link_local"}, {"fe80::1", "link_local"},
      {"172.32.0.1", "public"},         {"172.15.0.1", "public"},      {"100.128.0.1", "public"},
      {"8.8.8.8", "public"},            {"2001:db8::1", "public"},     {"::ffff:10.0.0.1", "private"},
      {"::ffff:1.1.1.1", "public"},     {"", "unknown"},               {"not-an-ip", "unknown"},
  };
  for (const auto& [ip, want] : cases) EXPECT_EQ(AddressClass(ip), want) << ip;
}

// By default, where the client is the remote end its address becomes its
// class: 500 public clients of one nginx make one server-side series, and
// the Prometheus labels say client="public"; the local process's own
// connects keep their server address. --tcp-per-client-ip keeps one pair per
// client.
TEST(TcpAggregator, RemoteClientsAggregateByAddressClass) {
  for (const bool per_ip : {false, true}) {
    TcpAggregator agg(AggregatorOptions{.per_client_ip = per_ip});
    std::vector<SocketSnapshot> snaps;
    for (uint32_t i = 0; i < 500; ++i) {
      const std::string ip = "203.0." + std::to_string(i / 200) + "." + std::to_string(1 + i % 200);
      auto s = MakeSocket("10.0.0.2", 443, ip.c_str(), static_cast<uint16_t>(40000 + i), SONDE_ROLE_SERVER, "nginx");
      s.flags = SONDE_TCP_ESTABLISHED;
      snaps.push_back({1000u + i, s});
    }
    auto lo = MakeSocket("127.0.0.1", 443, "127.0.0.1", 50000, SONDE_ROLE_SERVER, "nginx");
    lo.flags = SONDE_TCP_ESTABLISHED;
    snaps.push_back({1, lo});
    auto up = MakeSocket("10.0.0.2", 41000, "10.0.0.7", 8080, SONDE_ROLE_CLIENT, "nginx");
    up.flags = SONDE_TCP_ESTABLISHED;
    snaps.push_back({2, up});
    PairSnapshot orphan{};  // RST to a visitor probing a closed port
    orphan.key.family = AF_INET;
    inet_pton(AF_INET, "10.0.0.2", orphan.key.laddr);
    inet_pton(AF_INET, "198.51.100.9", orphan.key.raddr);
    orphan.key.lport = 23;
    orphan.stats.resets_sent = 1;
    const std::vector<PairSnapshot> pairs = {orphan};
    const TcpWindow w = agg.Update(snaps, pairs, 1);
    PairCounters t;
    if (!per_ip) {
      EXPECT_EQ(w.pairs.size(), 4u);  // public:443, loopback:443, the upstream connect, the RST
      EXPECT_EQ(agg.AllTotals().size(), 4u);
      ASSERT_TRUE(agg.Totals(PairKey{"public", "10.0.0.2", 443, Side::kServer, "nginx"}, &t));
      EXPECT_EQ(t.connections_opened, 500u);
      ASSERT_TRUE(agg.Totals(PairKey{"loopback", "127.0.0.1", 443, Side::kServer, "nginx"}, &t));
      EXPECT_EQ(t.connections_opened, 1u);
      ASSERT_TRUE(agg.Totals(PairKey{"public", "10.0.0.2", 23, Side::kServer, ""}, &t));
      EXPECT_EQ(t.resets_sent, 1u);
      std::string out;
      agg.AppendPrometheus(out);
      EXPECT_NE(out.find(R"(sonde_tcp_active_connections{client="public",server="10.0.0.2",server_port="443",side="server",process="nginx"} 500)"),
                std::string::npos) << out;
      EXPECT_EQ(out.find("203.0."), std::string::npos);
    } else {
      EXPECT_EQ(w.pairs.size(), 503u);
      ASSERT_TRUE(agg.Totals(PairKey{"203.0.2.100", "10.0.0.2", 443, Side::kServer, "nginx"}, &t));
      EXPECT_EQ(t.connections_opened, 1u);
      ASSERT_TRUE(agg.Totals(PairKey{"198.51.100.9", "10.0.0.2", 23, Side::kServer, ""}, &t));
    }
    // Either way the local process's own connect keeps its addresses.
    ASSERT_TRUE(agg.Totals(PairKey{"10.0.0.2", "10.0.0.7", 8080, Side::kClient, "nginx"}, &t));
    EXPECT_EQ(t.connections_opened, 1u);
  }
}

TEST(TcpAggregator, LateJoinDoesNotCountHistoryOrOpen) {
  TcpAggregator agg;
  auto s = MakeSocket("10.0.0.1", 50000, "10.0.0.2", 443, SONDE_ROLE_UNKNOWN, "x");
  s.flags = SONDE_TCP_ESTABLISHED | SONDE_TCP_LATE_JOIN;
  s.bytes_acked = 1'000'000;
  s.last_sample_ns = 5;
  std::vector<SocketSnapshot> snaps = {{9, s}};
  auto w = agg.Update(snaps, {}, 10);
  ASSERT_EQ(w.pairs.size(), 1u);
  EXPECT_EQ(w.pairs[0].key.side, Side::kUnknown);
  EXPECT_EQ(w.pairs[0].key.server_port, 443);  // lower port taken as the server's
  EXPECT_EQ(w.pairs[0].delta.connections_opened, 0u);
  EXPECT_EQ(w.pairs[0].delta.bytes_client_to_server, 0u);
  s.bytes_acked = 1'000'500;
  snaps = {{9, s}};
  w = agg.Update(snaps, {}, 20);
  EXPECT_EQ(w.pairs[0].delta.bytes_client_to_server, 500u);
}

// Past tcp_max_sockets the kernel's LRU entries are evicted and re-created
// without a role: such sockets of a server on a high port (above its
// clients' ephemeral ports) are keyed by the port seen serving, not one
// series per client port.
TEST(TcpAggregator, UnknownSideJudgedByPortsSeenServing) {
  TcpAggregator agg;
  std::vector<SocketSnapshot> snaps;
  snaps.push_back({1, MakeSocket("127.0.0.1", 45000, "127.0.0.4", 33000, SONDE_ROLE_SERVER, "nginx")});
  for (uint16_t i = 0; i < 50; ++i) {
    auto s = MakeSocket("127.0.0.1", 45000, "127.0.0.4", static_cast<uint16_t>(34000 + i), SONDE_ROLE_UNKNOWN,
                        "nginx");
    s.flags = SONDE_TCP_ESTABLISHED | SONDE_TCP_LATE_JOIN;
    snaps.push_back({100u + i, s});
  }
  // And the client end of one of them, role lost as well.
  auto c = MakeSocket("127.0.0.4", 34001, "127.0.0.1", 45000, SONDE_ROLE_UNKNOWN, "load");
  c.flags = SONDE_TCP_ESTABLISHED | SONDE_TCP_LATE_JOIN;
  snaps.push_back({200, c});
  auto w = agg.Update(snaps, {}, 10);
  ASSERT_EQ(w.pairs.size(), 3u) << "server side known, server side unknown, client side unknown";
  size_t unknown_server_side = 0;
  for (const auto& p : w.pairs) {
    EXPECT_EQ(p.key.server_port, 45000);
    EXPECT_EQ(p.key.server, "127.0.0.1");
    if (p.key.side == Side::kUnknown && p.key.process == "nginx") unknown_server_side = p.active_connections;
  }
  EXPECT_EQ(unknown_server_side, 50u);
  // Without a known server port the lower port is still the server's.
  EXPECT_EQ(PairKeyOf(c, "load").server_port, 34001);
}

// A socket's series key is computed once and kept across windows, but not
// past what changes it: its process filled in later (accept in softirq, pid
// and comm at the first send), or a port learnt to serve after the socket
// of unknown side was first keyed.
TEST(TcpAggregator, CachedKeysFollowTheirInputs) {
  TcpAggregator agg;
  auto s = MakeSocket("127.0.0.1", 45000, "127.0.0.9", 30000, SONDE_ROLE_UNKNOWN, "");
  s.flags = SONDE_TCP_ESTABLISHED | SONDE_TCP_LATE_JOIN;
  std::vector<SocketSnapshot> snaps = {{1, s}};
  auto w = agg.Update(snaps, {}, 10);
  ASSERT_EQ(w.pairs.size(), 1u);
  EXPECT_EQ(w.pairs[0].key.server_port, 30000) << "nothing known: the lower port";
  EXPECT_EQ(w.pairs[0].key.process, "");
  w = agg.Update(snaps, {}, 20);
  ASSERT_EQ(w.pairs.size(), 1u);
  EXPECT_EQ(w.pairs[0].key.server_port, 30000) << "unchanged inputs, same key";
  // Its process appears.
  s.pid = 42;
  std::strncpy(s.comm, "nginx", sizeof(s.comm) - 1);
  snaps = {{1, s}};
  w = agg.Update(snaps, {}, 30);
  ASSERT_EQ(w.pairs.size(), 1u);
  EXPECT_EQ(w.pairs[0].key.process, "nginx");
  // A server-side socket on 45000 shows the port serves: re-keyed.
  auto server = MakeSocket("127.0.0.1", 45000, "127.0.0.9", 30001, SONDE_ROLE_SERVER, "nginx");
  server.flags = SONDE_TCP_ESTABLISHED;
  snaps.push_back({2, server});
  w = agg.Update(snaps, {}, 40);
  ASSERT_EQ(w.pairs.size(), 2u);
  for (const auto& p : w.pairs) {
    EXPECT_EQ(p.key.server_port, 45000);
    EXPECT_EQ(p.active_connections, 1u);
  }
}

TEST(TcpAggregator, PrometheusExposition) {
  TcpAggregator agg;
  auto s = MakeSocket("10.0.0.1", 40000, "10.0.0.2", 8080, SONDE_ROLE_CLIENT, "cu\"rl");
  s.flags = SONDE_TCP_ESTABLISHED;
  s.handshake_ns = 3'000'000;  // 3 ms -> le=0.005 bucket
  s.srtt_us = 1500;
  std::vector<SocketSnapshot> snaps = {{1, s}};
  agg.Update(snaps, {}, 1);
  std::string out;
  agg.AppendPrometheus(out);
  const std::string labels =
      R"(client="10.0.0.1",server="10.0.0.2",server_port="8080",side="client",process="cu\"rl")";
  EXPECT_NE(out.find("# TYPE sonde_tcp_connections_opened_total counter"), std::string::npos);
  EXPECT_NE(out.find("sonde_tcp_connections_opened_total{" + labels + "} 1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("sonde_tcp_handshake_rtt_seconds_bucket{" + labels + ",le=\"0.0025\"} 0\n"),
            std::string::npos);
  EXPECT_NE(out.find("sonde_tcp_handshake_rtt_seconds_bucket{" + labels + ",le=\"0.005\"} 1\n"),
            std::string::npos);
  EXPECT_NE(out.find("sonde_tcp_handshake_rtt_seconds_bucket{" + labels + ",le=\"+Inf\"} 1\n"),
            std::string::npos);
  EXPECT_NE(out.find("sonde_tcp_srtt_seconds{" + labels + "} 0.0015\n"), std::string::npos);
  EXPECT_NE(out.find("sonde_tcp_active_connections{" + labels + "} 1\n"), std::string::npos);
  EXPECT_NE(out.find("reason=\"refused\"} 0\n"), std::string::npos);
}

TEST(TcpAggregator, BoundedSeriesEvictsIdleFirst) {
  TcpAggregator agg(AggregatorOptions{.max_pairs = 2});
  std::vector<SocketSnapshot> snaps;
  for (uint16_t i = 0; i < 3; ++i) {
    auto s = MakeSocket("10.0.0.1", 40000 + i, "10.0.0.2", 8000 + i, SONDE_ROLE_CLIENT, "c");
    s.flags = SONDE_TCP_ESTABLISHED | (i == 0 ? SONDE_TCP_CLOSED : 0);
    snaps.push_back({100u + i, s});
  }
  agg.Update(snaps, {}, 1);
  EXPECT_EQ(agg.AllTotals().size(), 2u);
  EXPECT_EQ(agg.counters().pairs_evicted, 1u);
  PairCounters t;
  EXPECT_FALSE(agg.Totals(PairKey{"10.0.0.1", "10.0.0.2", 8000, Side::kClient, "c"}, &t));
}

// Past max_pairs one scan evicts down to 7/8 of the bound, idle series
// oldest first (one scan per eviction made every update O(pairs)).
TEST(TcpAggregator, EvictsInBatchesIdleOldestFirst) {
  TcpAggregator agg(AggregatorOptions{.max_pairs = 16});
  for (uint16_t i = 0; i < 40; ++i) {
    auto s = MakeSocket("10.0.0.1", 40000 + i, "10.0.0.2", 8000 + i, SONDE_ROLE_CLIENT, "c");
    s.flags = SONDE_TCP_ESTABLISHED | SONDE_TCP_CLOSED;  // idle once closed
    const std::vector<SocketSnapshot> snap{{1000u + i, s}};
    agg.Update(snap, {}, 1 + i);
  }
  const size_t kept = agg.AllTotals().size();
  EXPECT_LE(kept, 16u);
  EXPECT_GE(kept, 14u);
  EXPECT_EQ(agg.counters().pairs_evicted, 40u - kept);
  PairCounters t;
  EXPECT_TRUE(agg.Totals(PairKey{"10.0.0.1", "10.0.0.2", 8039, Side::kClient, "c"}, &t)) << "newest kept";
  EXPECT_FALSE(agg.Totals(PairKey{"10.0.0.1", "10.0.0.2", 8000, Side::kClient, "c"}, &t)) << "oldest evicted";
}

}  // namespace
}  // namespace sonde::tcp
