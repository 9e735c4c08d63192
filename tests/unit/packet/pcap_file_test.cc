// Round trip through real pcap files: frames written with libpcap's dumper
// (as tcpdump would), read back with ReadPcapFile into the flow table.
#include <pcap/pcap.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "agent/packet/flow_table.h"
#include "agent/packet/pcap_capture.h"
#include "tests/unit/packet/packet_builder.h"

namespace sonde::packet {
namespace {
using testing::Frame;
using testing::TcpSeg;

TEST(PcapFile, GeneratedCaptureReplaysIntoFlowTable) {
  const std::string path = ::testing::TempDir() + "/sonde_packet_" + std::to_string(getpid()) + ".pcap";
  {
    std::unique_ptr<pcap_t, void (*)(pcap_t*)> dead(
        pcap_open_dead_with_tstamp_precision(DLT_EN10MB, 65535, PCAP_TSTAMP_PRECISION_NANO), &pcap_close);
    ASSERT_TRUE(dead);
    std::unique_ptr<pcap_dumper_t, void (*)(pcap_dumper_t*)> dump(pcap_dump_open(dead.get(), path.c_str()),
                                                                  &pcap_dump_close);
    ASSERT_TRUE(dump);
    auto write = [&](const TcpSeg& s, uint64_t ts_ns, size_t snap = 65535) {
      auto f = Frame(s);
      pcap_pkthdr h{};
      h.ts.tv_sec = static_cast<time_t>(ts_ns / 1'000'000'000);
      h.ts.tv_usec = static_cast<suseconds_t>(ts_ns % 1'000'000'000);  // ns precision file
      h.len = static_cast<bpf_u_int32>(f.size());
      h.caplen = static_cast<bpf_u_int32>(std::min(f.size(), snap));
      pcap_dump(reinterpret_cast<u_char*>(dump.get()), &h, f.data());
    };
    const uint64_t t0 = 1'700'000'000'123'456'789ull;
    TcpSeg syn; syn.seq = 10; syn.flags = kSyn; write(syn, t0);
    TcpSeg synack; synack.src = "10.0.0.2"; synack.dst = "10.0.0.1"; synack.sport = 80; synack.dport = 40000;
    synack.seq = 90; synack.ack = 11; synack.flags = kSyn | kAck; write(synack, t0 + 250'000);
    TcpSeg ack; ack.seq = 11; ack.ack = 91; write(ack, t0 + 400'000);
    TcpSeg data = ack; data.payload = std::string(3000, 'd'); write(data, t0 + 500'000, 200);  // snaplen 200
    TcpSeg rst = synack; rst.flags = kRst; rst.seq = 91; write(rst, t0 + 900'000);
  }
  FlowTable table;
  std::vector<FlowStats> ended;
  table.set_on_flow_end([&](const FlowStats& f) { ended.push_back(f); });
  size_t packets = 0;
  ASSERT_TRUE(ReadPcapFile(path, [&](const ParsedPacket& p, const std::string& ifname) {
    ++packets;
    EXPECT_EQ(ifname, "file");
    table.OnPacket(p, ifname);
  }).ok());
  unlink(path.c_str());
  EXPECT_EQ(packets, 5u);
  table.Flush(0);
  ASSERT_EQ(ended.size(), 1u);
  const FlowStats& f = ended[0];
  EXPECT_EQ(f.start_ns, 1'700'000'000'123'456'789ull);  // nanosecond timestamps survive
  EXPECT_EQ(f.rtt_server_side_ns, 250'000u);
  EXPECT_EQ(f.rtt_client_side_ns, 150'000u);
  EXPECT_EQ(f.to_server.bytes, 3000u);  // wire length, not the 200 captured
  EXPECT_EQ(f.to_client.resets, 1u);
  EXPECT_EQ(f.end, FlowEnd::kReset);
}

TEST(PcapFile, MissingFileIsAnError) {
  EXPECT_FALSE(ReadPcapFile("/nonexistent.pcap", [](const ParsedPacket&, const std::string&) {}).ok());
}

}  // namespace
}  // namespace sonde::packet
