// Kernel tests for bpf/tcp_health.bpf.c + agent/tcp: real sockets in two
// network namespaces joined by veth, faults from nft, ground truth from the
// kernel's own counters (nstat) and ss.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <regex>
#include <thread>

#include <gtest/gtest.h>

#include "agent/tcp/tcp_collector.h"
#include "tests/kernel/tcp/netns.h"
#include "tests/kernel/tcp/sockets.h"

namespace sonde::tcp {
namespace {

using namespace std::chrono_literals;
using sonde::testing::Fd;
using sonde::testing::NetnsPair;
using sonde::testing::Run;

// The netns addresses are 10.205.x.y: on the server side, where the client is
// the remote end, the default key holds its address class, not the address
// (docs/tcp-metrics.md, "Labels and cardinality"); the server address keeps
// the series this test's own.
const std::string kRemoteClientClass = "private";

// Sum of the totals of every series of (client, server:port, side), any process.
PairCounters Sum(const TcpAggregator& agg, const std::string& client, const std::string& server,
                 uint16_t port, Side side) {
  PairCounters sum;
  for (const auto& [k, c] : agg.AllTotals()) {
    if (k.client == client && k.server == server && k.server_port == port && k.side == side)
      sum.Add(c);
  }
  return sum;
}

uint64_t Nstat(const NetnsPair& net, const std::string& ns, const std::string& counter) {
  // -a: absolute values, -z: print zeros, -s: do not update the history file.
  std::string out = net.Exec(ns, "nstat -azs " + counter);
  std::smatch m;
  std::regex re(counter + R"(\s+(\d+))");
  if (std::regex_search(out, m, re)) return std::stoull(m[1]);
  return 0;
}

class TcpHealthKernelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SONDE_REQUIRE(geteuid() == 0, "root (BPF, netns)");
    struct stat st;
    SONDE_REQUIRE(stat("/sys/kernel/btf/vmlinux", &st) == 0, "kernel BTF");
    SONDE_REQUIRE(system("command -v nft >/dev/null && command -v nstat >/dev/null && command -v ss >/dev/null") == 0,
                  "nft, nstat, ss (scripts/setup.sh)");
    auto c = TcpCollector::Start(TcpCollectorOptions{.kernel = {.sample_interval_ns = 10'000'000},
                                                     .window_ms = 3'600'000});
    if (!c.ok()) {
      if (sonde::testing::InCi()) FAIL() << c.status();
      GTEST_SKIP() << c.status();
    }
    collector_ = std::move(*c);
    const std::string tag = std::to_string(getpid() % 100000);
    net_ = std::make_unique<NetnsPair>(tag, 10 + (getpid() % 200));
    ASSERT_TRUE(net_->ok()) << net_->setup_output();
  }
  void TearDown() override {
    collector_.reset();  // detach before the namespaces go
    net_.reset();
  }
  // Reads twice: the second read picks up sockets closed during the first.
  const TcpAggregator& Read() {
    std::this_thread::sleep_for(200ms);
    collector_->ReadNow();
    return collector_->aggregator();
  }

  std::unique_ptr<TcpCollector> collector_;
  std::unique_ptr<NetnsPair> net_;
};

TEST_F(TcpHealthKernelTest, ConnectsAcceptsBytesAndCloses) {
  constexpr int kConns = 5;
  constexpr size_t kBytes = 200 * 1024;
  Fd listener;
  sonde::testing::RunInNetns(net_->server_ns(), [&] { listener = sonde::testing::Listen(net_->server_ip(), 8080); });
  ASSERT_TRUE(listener.valid());
  std::atomic<size_t> received{0};
  sonde::testing::ScopedThread server(sonde::testing::StartInNetns(net_->server_ns(), [&] {
    for (int i = 0; i < kConns; ++i) {
      Fd c(accept(listener.get(), nullptr, nullptr));
      received += sonde::testing::DrainToEof(c.get());
    }
  }), [&] { shutdown(listener.get(), SHUT_RDWR); });
  sonde::testing::RunInNetns(net_->client_ns(), [&] {
    for (int i = 0; i < kConns; ++i) {
      Fd fd = sonde::testing::Connect(net_->server_ip(), 8080);
      ASSERT_TRUE(fd.valid());
      ASSERT_TRUE(sonde::testing::SendAll(fd.get(), kBytes));
      shutdown(fd.get(), SHUT_WR);
      char b;
      recv(fd.get(), &b, 1, 0);  // wait for the server's FIN
    }
  });
  server.join();
  ASSERT_EQ(received.load(), kConns * kBytes);
  const auto& agg = Read();
  auto client = Sum(agg, net_->client_ip(), net_->server_ip(), 8080, Side::kClient);
  auto srv = Sum(agg, kRemoteClientClass, net_->server_ip(), 8080, Side::kServer);
  EXPECT_EQ(client.connections_opened, uint64_t{kConns});
  EXPECT_EQ(srv.connections_opened, uint64_t{kConns});
  EXPECT_EQ(client.connections_closed, uint64_t{kConns});
  EXPECT_EQ(srv.connections_closed, uint64_t{kConns});
  EXPECT_EQ(client.handshake.count, uint64_t{kConns});
  EXPECT_EQ(client.failed(), 0u);
  // bytes_acked also counts the FIN's sequence number: allow one per connection.
  EXPECT_GE(client.bytes_client_to_server, kConns * kBytes);
  EXPECT_LE(client.bytes_client_to_server, kConns * (kBytes + 2));
  EXPECT_GE(srv.bytes_client_to_server, kConns * kBytes);
  EXPECT_LE(srv.bytes_client_to_server, kConns * (kBytes + 2));
  std::string prom;
  collector_->AppendPrometheus(prom);
  EXPECT_NE(prom.find("sonde_tcp_connections_opened_total{client=\"" + net_->client_ip()), std::string::npos);
}

TEST_F(TcpHealthKernelTest, RefusedAndTimedOutConnectsAreFailures) {
  // Refused: nothing listens on 9. Timed out: SYNs to 9999 are dropped.
  int rc = 0;
  net_->Exec(net_->server_ns(),
             "sh -c \"nft add table inet sd5 && nft add chain inet sd5 in '{ type filter hook input priority 0; }' && "
             "nft add rule inet sd5 in tcp dport 9999 drop\"",
             &rc);
  ASSERT_EQ(rc, 0);
  int refused_err = 0, timeout_err = 0;
  auto t0 = std::chrono::steady_clock::now();
  sonde::testing::RunInNetns(net_->client_ns(), [&] {
    Fd a = sonde::testing::Connect(net_->server_ip(), 9, &refused_err);
    Fd b = sonde::testing::Connect(net_->server_ip(), 9999, &timeout_err, /*syn_count=*/1);
  });
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  EXPECT_EQ(refused_err, ECONNREFUSED);
  EXPECT_EQ(timeout_err, ETIMEDOUT);
  // The client namespace saw only these two connects: its retransmissions are the SYN retries.
  const uint64_t client_retrans = Nstat(*net_, net_->client_ns(), "TcpRetransSegs");
  const auto& agg = Read();
  auto refused = Sum(agg, net_->client_ip(), net_->server_ip(), 9, Side::kClient);
  EXPECT_EQ(refused.failed_refused, 1u);
  EXPECT_EQ(refused.resets_received, 1u);
  EXPECT_EQ(refused.connections_opened, 0u);
  auto timed_out = Sum(agg, net_->client_ip(), net_->server_ip(), 9999, Side::kClient);
  EXPECT_EQ(timed_out.failed_timeout, 1u);
  EXPECT_GE(timed_out.syn_retrans, 1u);  // TCP_SYNCNT=1
  EXPECT_EQ(timed_out.syn_retrans, client_retrans);
  // The server host sent the RST without a socket: counted on its side of the pair.
  auto orphan = Sum(agg, kRemoteClientClass, net_->server_ip(), 9, Side::kServer);
  EXPECT_EQ(orphan.resets_sent, 1u);
  std::string prom;
  collector_->AppendPrometheus(prom);
  EXPECT_NE(prom.find("server_port=\"9999\",side=\"client\""), std::string::npos);
}

TEST_F(TcpHealthKernelTest, LingerZeroCloseSendsReset) {
  Fd listener;
  sonde::testing::RunInNetns(net_->server_ns(), [&] { listener = sonde::testing::Listen(net_->server_ip(), 8081); });
  ASSERT_TRUE(listener.valid());
  sonde::testing::ScopedThread server(sonde::testing::StartInNetns(net_->server_ns(), [&] {
    Fd c(accept(listener.get(), nullptr, nullptr));
    sonde::testing::DrainToEof(c.get());  // ends with ECONNRESET
  }), [&] { shutdown(listener.get(), SHUT_RDWR); });
  sonde::testing::RunInNetns(net_->client_ns(), [&] {
    Fd fd = sonde::testing::Connect(net_->server_ip(), 8081);
    ASSERT_TRUE(fd.valid());
    sonde::testing::SendAll(fd.get(), 1000);
    std::this_thread::sleep_for(50ms);
    sonde::testing::AbortiveClose(fd);
  });
  server.join();
  const auto& agg = Read();
  auto client = Sum(agg, net_->client_ip(), net_->server_ip(), 8081, Side::kClient);
  auto srv = Sum(agg, kRemoteClientClass, net_->server_ip(), 8081, Side::kServer);
  EXPECT_EQ(client.resets_sent, 1u);
  EXPECT_EQ(srv.resets_received, 1u);
  EXPECT_EQ(client.connections_closed, 1u);
  EXPECT_EQ(srv.connections_closed, 1u);
}

TEST_F(TcpHealthKernelTest, ReceiverThatStopsReadingCausesZeroWindow) {
  Fd listener;
  sonde::testing::RunInNetns(net_->server_ns(),
                             [&] { listener = sonde::testing::Listen(net_->server_ip(), 8082, /*rcvbuf=*/4096); });
  ASSERT_TRUE(listener.valid());
  Fd accepted;
  sonde::testing::ScopedThread server(sonde::testing::StartInNetns(net_->server_ns(), [&] {
    accepted = Fd(accept(listener.get(), nullptr, nullptr));  // never reads
  }), [&] { shutdown(listener.get(), SHUT_RDWR); });
  sonde::testing::RunInNetns(net_->client_ns(), [&] {
    Fd fd = sonde::testing::Connect(net_->server_ip(), 8082);
    ASSERT_TRUE(fd.valid());
    std::vector<char> buf(16384, 'z');
    auto deadline = std::chrono::steady_clock::now() + 2s;
    while (std::chrono::steady_clock::now() < deadline) {
      ssize_t w = send(fd.get(), buf.data(), buf.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (w < 0) std::this_thread::sleep_for(20ms);
    }
    // Let a zero-window probe or two go out and be answered with window 0.
    std::this_thread::sleep_for(500ms);
    sonde::testing::AbortiveClose(fd);
  });
  server.join();
  const auto& agg = Read();
  auto client = Sum(agg, net_->client_ip(), net_->server_ip(), 8082, Side::kClient);
  EXPECT_GE(client.zero_window_events, 1u);
  std::string info = net_->Exec(net_->server_ns(), "nstat -azs TcpExtTCPToZeroWindowAdv");
  EXPECT_NE(info.find("TcpExtTCPToZeroWindowAdv"), std::string::npos);
  EXPECT_GE(Nstat(*net_, net_->server_ns(), "TcpExtTCPToZeroWindowAdv"), 1u);
}

TEST_F(TcpHealthKernelTest, RetransmissionsAgreeWithNstat) {
  // 3 % of the server's segments are lost on the way to the client (dropped at
  // the client's input hook: a drop in the sender's own output hook is an
  // xmit error that TCP re-sends as new data, not a retransmission). One
  // segment per skb so the rule drops segments, not 64 KB GSO batches.
  int rc = 0;
  net_->Exec(net_->server_ns(), "ip link set dev sd5v" + std::to_string(getpid() % 100000) + "s gso_max_segs 1", &rc);
  ASSERT_EQ(rc, 0);
  net_->Exec(net_->client_ns(),
             "sh -c \"nft add table inet sd5 && nft add chain inet sd5 in '{ type filter hook input priority 0; }' && "
             "nft add rule inet sd5 in tcp sport 8083 numgen random mod 100 '<' 3 drop\"",
             &rc);
  ASSERT_EQ(rc, 0);
  const uint64_t before = Nstat(*net_, net_->server_ns(), "TcpRetransSegs");
  Fd listener;
  sonde::testing::RunInNetns(net_->server_ns(), [&] { listener = sonde::testing::Listen(net_->server_ip(), 8083); });
  ASSERT_TRUE(listener.valid());
  constexpr int kConns = 4;
  constexpr size_t kBytes = 8 << 20;
  sonde::testing::ScopedThread server(sonde::testing::StartInNetns(net_->server_ns(), [&] {
    for (int i = 0; i < kConns; ++i) {
      Fd c(accept(listener.get(), nullptr, nullptr));
      sonde::testing::SendAll(c.get(), kBytes);
      shutdown(c.get(), SHUT_WR);
      char b;
      recv(c.get(), &b, 1, 0);
    }
  }), [&] { shutdown(listener.get(), SHUT_RDWR); });
  sonde::testing::RunInNetns(net_->client_ns(), [&] {
    for (int i = 0; i < kConns; ++i) {
      Fd fd = sonde::testing::Connect(net_->server_ip(), 8083);
      ASSERT_TRUE(fd.valid());
      EXPECT_EQ(sonde::testing::DrainToEof(fd.get()), kBytes);
    }
  });
  server.join();
  std::this_thread::sleep_for(300ms);
  const uint64_t kernel = Nstat(*net_, net_->server_ns(), "TcpRetransSegs") - before;
  const auto& agg = Read();
  auto srv = Sum(agg, kRemoteClientClass, net_->server_ip(), 8083, Side::kServer);
  const uint64_t agent = srv.retrans_segs + srv.synack_retrans;
  std::cout << "retransmitted segments: agent " << agent << " (" << srv.retrans_segs << " data + "
            << srv.synack_retrans << " SYN/ACK), nstat TcpRetransSegs delta " << kernel << "\n";
  ASSERT_GT(kernel, 20u) << "the drop rule did not bite";
  EXPECT_NEAR(static_cast<double>(agent), static_cast<double>(kernel), 0.10 * kernel);
}

}  // namespace
}  // namespace sonde::tcp
