// Handshake RTT and SRTT against `ss -ti` with real added delay: packets from
// the client host to the server host are held for kDelay by an NFQUEUE helper
// (this kernel has no netem).
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <algorithm>
#include <regex>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "agent/tcp/tcp_collector.h"
#include "tests/kernel/tcp/netns.h"
#include "tests/kernel/tcp/process.h"
#include "tests/kernel/tcp/sockets.h"

namespace sonde::tcp {
namespace {

using namespace std::chrono_literals;
using sonde::testing::Fd;

constexpr auto kDelay = 20ms;

// rtt:<srtt>/<rttvar> and minrtt:<ms> of the one socket ss lists.
struct SsInfo {
  double srtt_ms = -1, minrtt_ms = -1;
};
SsInfo ParseSs(const std::string& out) {
  SsInfo info;
  std::smatch m;
  if (std::regex_search(out, m, std::regex(R"(\brtt:([0-9.]+)/)"))) info.srtt_ms = std::stod(m[1]);
  if (std::regex_search(out, m, std::regex(R"(\bminrtt:([0-9.]+))"))) info.minrtt_ms = std::stod(m[1]);
  return info;
}

double Median(std::vector<double> v) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

uint16_t LocalPort(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

// ss prints one socket as a line with the addresses plus an indented info line.
std::vector<std::string> SplitSockets(const std::string& out) {
  std::vector<std::string> socks;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("ESTAB", 0) == 0) socks.emplace_back();
    if (!socks.empty()) socks.back() += line + "\n";
  }
  return socks;
}

const PairWindow* FindPair(const TcpWindow& w, const std::string& client, uint16_t port, Side side) {
  for (const auto& p : w.pairs)
    if (p.key.client == client && p.key.server_port == port && p.key.side == side) return &p;
  return nullptr;
}

TEST(TcpRttKernelTest, HandshakeAndSrttAgreeWithSsUnderAddedDelay) {
  SONDE_REQUIRE(geteuid() == 0, "root (BPF, netns, NFQUEUE)");
#ifndef SONDE_NFQ_DELAY
  SONDE_REQUIRE(false, "libnetfilter-queue-dev (nfq_delay helper not built)");
#else
  struct stat st;
  SONDE_REQUIRE(stat(SONDE_NFQ_DELAY, &st) == 0, "nfq_delay helper binary");
  auto collector = TcpCollector::Start(
      TcpCollectorOptions{.kernel = {.sample_interval_ns = 5'000'000},
                          .aggregator = {.per_client_ip = true},  // server-side pairs by client address (opt-in)
                          .window_ms = 3'600'000});
  if (!collector.ok()) {
    if (sonde::testing::InCi()) FAIL() << collector.status();
    GTEST_SKIP() << collector.status();
  }
  const std::string tag = std::to_string(getpid() % 100000) + "r";
  sonde::testing::NetnsPair net(tag, 10 + (getpid() + 77) % 200);
  ASSERT_TRUE(net.ok()) << net.setup_output();
  const int queue = 100 + getpid() % 1000;
  auto delay = sonde::testing::ChildProcess::Start(
      {"ip", "netns", "exec", net.client_ns(), SONDE_NFQ_DELAY, std::to_string(queue),
       std::to_string(std::chrono::microseconds(kDelay).count())});
  ASSERT_TRUE(delay.running());
  ASSERT_EQ(delay.ReadLine(), "ready\n");
  int rc = 0;
  // iptables' NFQUEUE target (nft's own "queue" statement is not built into this kernel).
  std::string out = net.Exec(net.client_ns(), "iptables -A OUTPUT -d " + net.server_ip() +
                                                  " -j NFQUEUE --queue-num " + std::to_string(queue),
                             &rc);
  ASSERT_EQ(rc, 0) << out;

  constexpr uint16_t kPort = 8090;
  Fd listener;
  sonde::testing::RunInNetns(net.server_ns(), [&] { listener = sonde::testing::Listen(net.server_ip(), kPort); });
  ASSERT_TRUE(listener.valid());
  // kConns connections, one window read after each, so every handshake is
  // seen on its own (the median is robust to one descheduled packet on a busy
  // machine); the last one then ping-pongs so srtt converges.
  constexpr int kConns = 5;
  std::vector<Fd> server_conns(kConns);
  sonde::testing::ScopedThread server(sonde::testing::StartInNetns(net.server_ns(), [&] {
    for (int i = 0; i < kConns; ++i) server_conns[i] = Fd(accept(listener.get(), nullptr, nullptr));
    char b;
    while (recv(server_conns.back().get(), &b, 1, 0) == 1)
      send(server_conns.back().get(), &b, 1, MSG_NOSIGNAL);
  }), [&] {
    shutdown(listener.get(), SHUT_RDWR);
    for (auto& c : server_conns) if (c.valid()) shutdown(c.get(), SHUT_RDWR);
  });
  std::vector<Fd> clients(kConns);
  std::vector<double> hs_client_ms, hs_server_ms, connect_ms;
  for (int i = 0; i < kConns; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    sonde::testing::RunInNetns(net.client_ns(), [&] { clients[i] = sonde::testing::Connect(net.server_ip(), kPort); });
    ASSERT_TRUE(clients[i].valid());
    connect_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    std::this_thread::sleep_for(50ms);  // the server's final ACK has arrived
    TcpWindow w = (*collector)->ReadNow();
    const PairWindow* c = FindPair(w, net.client_ip(), kPort, Side::kClient);
    const PairWindow* s = FindPair(w, net.client_ip(), kPort, Side::kServer);
    ASSERT_NE(c, nullptr);
    ASSERT_NE(s, nullptr);
    ASSERT_EQ(c->delta.handshake.count, 1u);
    ASSERT_EQ(s->delta.handshake.count, 1u);
    hs_client_ms.push_back(c->delta.handshake.sum_ns / 1e6);
    hs_server_ms.push_back(s->delta.handshake.sum_ns / 1e6);
  }
  Fd& client = clients.back();
  for (int i = 0; i < 25; ++i) {  // ping-pong: srtt converges on the path RTT
    char b = 'p';
    ASSERT_EQ(send(client.get(), &b, 1, MSG_NOSIGNAL), 1);
    ASSERT_EQ(recv(client.get(), &b, 1, 0), 1);
  }
  // The sockets are still open: ss and the agent look at the same ones.
  const std::string port = std::to_string(kPort);
  const SsInfo ss_client = ParseSs(net.Exec(net.client_ns(), "ss -tin dst " + net.server_ip() + ":" + port +
                                                                  " src :" + std::to_string(LocalPort(client.get()))));
  // The agent's srtt gauge is the mean over the pair's open sockets: compare with ss's mean.
  double ss_client_srtt_sum = 0;
  int ss_client_socks = 0;
  for (const auto& line : SplitSockets(net.Exec(net.client_ns(), "ss -tin dst " + net.server_ip() + ":" + port))) {
    SsInfo i = ParseSs(line);
    if (i.srtt_ms > 0) { ss_client_srtt_sum += i.srtt_ms; ++ss_client_socks; }
  }
  const double ss_client_srtt_mean = ss_client_socks ? ss_client_srtt_sum / ss_client_socks : -1;
  std::vector<double> ss_server_min;
  for (const auto& line : SplitSockets(net.Exec(net.server_ns(), "ss -tin src " + net.server_ip() + ":" + port))) {
    SsInfo i = ParseSs(line);
    if (i.minrtt_ms > 0) ss_server_min.push_back(i.minrtt_ms);
  }
  TcpWindow w = (*collector)->ReadNow();
  const PairWindow* c = FindPair(w, net.client_ip(), kPort, Side::kClient);
  ASSERT_NE(c, nullptr);
  const double agent_srtt_client_ms = c->srtt_mean_us() / 1e3;
  const double agent_hs_client_ms = Median(hs_client_ms);
  const double agent_hs_server_ms = Median(hs_server_ms);
  const double ss_server_minrtt = Median(ss_server_min);
  std::cout << "ss: client srtt (mean of " << ss_client_socks << ") " << ss_client_srtt_mean
            << " ms, ping-pong socket srtt " << ss_client.srtt_ms << " ms, its minrtt " << ss_client.minrtt_ms
            << " ms, server minrtt (median) " << ss_server_minrtt << " ms\n"
            << "agent: client handshake (median of " << kConns << ") " << agent_hs_client_ms
            << " ms, server handshake " << agent_hs_server_ms << " ms, client srtt "
            << agent_srtt_client_ms << " ms; connect() median " << Median(connect_ms) << " ms\n";
  ASSERT_GT(ss_client.srtt_ms, 0) << "ss output not understood";
  ASSERT_GT(ss_client.minrtt_ms, 0);
  EXPECT_EQ(c->srtt_samples, static_cast<uint32_t>(kConns));
  EXPECT_EQ(ss_client_socks, kConns);
  EXPECT_NEAR(agent_srtt_client_ms, ss_client_srtt_mean, 0.2 * ss_client_srtt_mean);
  // A handshake is one RTT: it matches the smallest RTT the kernel measured.
  EXPECT_NEAR(agent_hs_client_ms, ss_client.minrtt_ms, 0.2 * ss_client.minrtt_ms);
  ASSERT_GT(ss_server_minrtt, 0);
  EXPECT_NEAR(agent_hs_server_ms, ss_server_minrtt, 0.2 * ss_server_minrtt);
  const double delay_ms = std::chrono::duration<double, std::milli>(kDelay).count();
  EXPECT_GE(agent_hs_client_ms, 0.9 * delay_ms);

  for (auto& f : clients) f.reset();
  server.join();
  // The iptables rule and the queue go with the namespace; stop the helper first.
  delay.Stop();
#endif
}

}  // namespace
}  // namespace sonde::tcp
