// Capture + flow path on one core at a fixed offered load: a sender thread
// paces UDP datagrams (200 B payload, 256 destination ports) from the root
// namespace over a veth into a namespace; PacketCapture on the root end feeds
// the flow table on a thread pinned to one CPU. Reports processed packets/s
// and the capture drop rate from pcap_stats. Needs root.
#include <arpa/inet.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "agent/packet/flow_table.h"
#include "agent/packet/pcap_capture.h"

namespace sonde::packet {
namespace {

int Sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); }

struct Veth {
  std::string ns = "sd5bench" + std::to_string(getpid() % 100000);
  std::string dev = "vsd5b" + std::to_string(getpid() % 100000);
  bool ok = false;
  Veth() {
    Sh("ip link del " + dev);
    Sh("ip netns del " + ns);
    ok = Sh("sh -c 'set -e; ip netns add " + ns + "; ip link add " + dev + " type veth peer name " + dev +
            "p; ip link set " + dev + "p netns " + ns + "; ip addr add 10.207.0.1/30 dev " + dev +
            "; ip link set " + dev + " up; ip -n " + ns + " addr add 10.207.0.2/30 dev " + dev +
            "p; ip -n " + ns + " link set " + dev + "p up'") == 0;
    // Drop the datagrams at the far end's input quietly (no ICMP storm back).
    Sh("ip netns exec " + ns + " sh -c \"nft add table inet b && nft add chain inet b in '{ type filter hook input priority 0; }' && nft add rule inet b in udp dport 30000-30255 drop\"");
  }
  ~Veth() {
    Sh("ip link del " + dev);
    Sh("ip netns del " + ns);
  }
};

void BM_CaptureAtOfferedLoad(benchmark::State& state) {
  if (geteuid() != 0) {
    state.SkipWithError("needs root (AF_PACKET, netns)");
    return;
  }
  static Veth veth;
  if (!veth.ok) {
    state.SkipWithError("veth set-up failed");
    return;
  }
  const int64_t offered_pps = state.range(0);  // 0: as fast as the sender can
  constexpr auto kDuration = std::chrono::seconds(2);
  for (auto _ : state) {
    CaptureOptions opts;
    opts.interfaces = {veth.dev};
    opts.filter = "udp portrange 30000-30255";
    opts.snaplen = 256;
    auto cap = PacketCapture::Open(opts);
    if (!cap.ok()) {
      state.SkipWithError(std::string(cap.status().message()).c_str());
      return;
    }
    std::atomic<bool> sending{true};
    std::atomic<uint64_t> processed{0};
    std::thread consumer([&] {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(0, &set);
      sched_setaffinity(0, sizeof(set), &set);
      FlowTable table;
      int idle = 0;
      while (sending || idle < 5) {
        auto n = (*cap)->Poll(20, [&](const ParsedPacket& p, const std::string&) {
          table.OnPacket(p);
          processed.fetch_add(1, std::memory_order_relaxed);
        });
        idle = (n.ok() && *n == 0) ? idle + 1 : 0;
      }
    });
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    std::vector<char> payload(200, 'u');
    std::vector<sockaddr_in> dst(256);
    for (int i = 0; i < 256; ++i) {
      dst[i].sin_family = AF_INET;
      dst[i].sin_port = htons(static_cast<uint16_t>(30000 + i));
      inet_pton(AF_INET, "10.207.0.2", &dst[i].sin_addr);
    }
    constexpr int kBatch = 64;
    std::vector<mmsghdr> msgs(kBatch);
    std::vector<iovec> iov(kBatch);
    uint64_t sent = 0;
    const auto start = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - start < kDuration) {
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (offered_pps > 0 && sent >= elapsed * offered_pps) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        continue;
      }
      for (int i = 0; i < kBatch; ++i) {
        iov[i] = {payload.data(), payload.size()};
        msgs[i] = {};
        msgs[i].msg_hdr.msg_name = &dst[(sent + i) % 256];
        msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_in);
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
      }
      const int n = sendmmsg(fd, msgs.data(), kBatch, 0);
      if (n > 0) sent += static_cast<uint64_t>(n);
    }
    const double send_secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    close(fd);
    sending = false;
    consumer.join();
    const auto stats = (*cap)->Stats();
    const uint64_t dropped = stats.empty() ? 0 : stats[0].dropped;
    const uint64_t received = stats.empty() ? 0 : stats[0].received;
    state.counters["offered_pps"] = sent / send_secs;
    state.counters["processed_pps"] = processed.load() / send_secs;
    state.counters["captured"] = static_cast<double>(processed.load());
    state.counters["sent"] = static_cast<double>(sent);
    state.counters["pcap_recv"] = static_cast<double>(received);
    state.counters["pcap_drop"] = static_cast<double>(dropped);
    state.counters["drop_rate_pct"] = sent ? 100.0 * (sent > processed ? sent - processed.load() : 0) / sent : 0;
  }
}
BENCHMARK(BM_CaptureAtOfferedLoad)->Arg(50'000)->Arg(200'000)->Arg(0)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace sonde::packet

BENCHMARK_MAIN();
