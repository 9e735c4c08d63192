#include "agent/packet/flow_table.h"

#include <gtest/gtest.h>

#include "tests/unit/packet/packet_builder.h"

namespace sonde::packet {
namespace {
using testing::Frame;
using testing::TcpSeg;

constexpr uint64_t kMs = 1'000'000;

// Client 10.0.0.1:40000 <-> server 10.0.0.2:80, ISNs 1000 / 5000.
class FlowTableTest : public ::testing::Test {
 protected:
  void Send(bool from_client, uint32_t seq, uint32_t ack, uint8_t flags, uint64_t ts,
            std::string payload = {}, uint16_t window = 65535) {
    TcpSeg s;
    if (!from_client) {
      s.src = "10.0.0.2"; s.dst = "10.0.0.1"; s.sport = 80; s.dport = 40000;
    }
    s.seq = seq; s.ack = ack; s.flags = flags; s.window = window; s.payload = std::move(payload);
    frames_.push_back(Frame(s));
    ParsedPacket p;
    ASSERT_EQ(ParsePacket(1, frames_.back(), ts, p), ParseStatus::kOk);
    table_.OnPacket(p, "veth0");
  }
  void Handshake(uint64_t t0) {
    Send(true, 1000, 0, kSyn, t0);
    Send(false, 5000, 1001, kSyn | kAck, t0 + 3 * kMs);
    Send(true, 1001, 5001, kAck, t0 + 5 * kMs);
  }
  const FlowStats& Flow() {
    TcpSeg s;
    auto f = Frame(s);
    ParsedPacket p;
    EXPECT_EQ(ParsePacket(1, f, 0, p), ParseStatus::kOk);
    const FlowStats* st = table_.Find(FlowKey::Of(p));
    EXPECT_NE(st, nullptr);
    return *st;
  }
  FlowTable table_;
  std::vector<std::vector<uint8_t>> frames_;
};

TEST_F(FlowTableTest, HandshakeRttFromEachSide) {
  Handshake(100 * kMs);
  const auto& f = Flow();
  EXPECT_TRUE(f.saw_syn);
  EXPECT_TRUE(f.handshake_done);
  EXPECT_EQ(f.client.ToString(), "10.0.0.1");
  EXPECT_EQ(f.server_port, 80);
  EXPECT_EQ(f.rtt_server_side_ns, 3 * kMs);
  EXPECT_EQ(f.rtt_client_side_ns, 2 * kMs);
  EXPECT_EQ(f.handshake_ns, 5 * kMs);
  EXPECT_EQ(f.start_ns, 100 * kMs);
}

TEST_F(FlowTableTest, SynAndSynAckRetransmissions) {
  Send(true, 1000, 0, kSyn, 5 * kMs);
  Send(true, 1000, 0, kSyn, 1005 * kMs);  // SYN retry after 1 s
  Send(false, 5000, 1001, kSyn | kAck, 1006 * kMs);
  Send(false, 5000, 1001, kSyn | kAck, 2006 * kMs);  // SYN/ACK retry
  Send(true, 1001, 5001, kAck, 2007 * kMs);
  const auto& f = Flow();
  EXPECT_EQ(f.syn_retransmissions, 1u);
  EXPECT_EQ(f.synack_retransmissions, 1u);
  EXPECT_EQ(f.to_server.syns, 2u);
  // RTTs are measured from the last SYN / SYN/ACK.
  EXPECT_EQ(f.rtt_server_side_ns, 1 * kMs);
  EXPECT_EQ(f.rtt_client_side_ns, 1 * kMs);
  EXPECT_EQ(f.handshake_ns, 2002 * kMs);
}

TEST_F(FlowTableTest, RetransmissionSpuriousAndOutOfOrder) {
  Handshake(0);
  const std::string k100(100, 'a');
  Send(true, 1001, 5001, kAck, 10 * kMs, k100);
  Send(true, 1101, 5001, kAck, 11 * kMs, k100);
  // Server acks only the first segment; the client retransmits the second
  // (real) and then the first (spurious: it was acked).
  Send(false, 5001, 1101, kAck, 12 * kMs);
  Send(true, 1101, 5001, kAck, 300 * kMs, k100);
  Send(true, 1001, 5001, kAck, 301 * kMs, k100);
  // Reordering: 1401 arrives before 1301, 1 ms later.
  Send(true, 1201, 5001, kAck, 400 * kMs, k100);
  Send(true, 1401, 5001, kAck, 401 * kMs, k100);
  Send(true, 1301, 5001, kAck, 402 * kMs, k100);
  // A gap filled much later is a retransmission, not reordering.
  Send(true, 1601, 5001, kAck, 500 * kMs, k100);
  Send(true, 1501, 5001, kAck, 800 * kMs, k100);
  const auto& f = Flow();
  EXPECT_EQ(f.to_server.retransmissions, 3u);
  EXPECT_EQ(f.to_server.spurious_retransmissions, 1u);
  EXPECT_EQ(f.to_server.out_of_order, 1u);
  EXPECT_EQ(f.to_server.packets, 2u + 9u);  // SYN + ACK + 9 data
  EXPECT_EQ(f.to_server.bytes, 900u);
  EXPECT_EQ(f.to_client.retransmissions, 0u);
}

TEST_F(FlowTableTest, ZeroWindowTransitionsAndResetBySide) {
  Handshake(0);
  Send(false, 5001, 1001, kAck, 10 * kMs, {}, 0);
  Send(false, 5001, 1001, kAck, 20 * kMs, {}, 0);     // still zero: same event
  Send(false, 5001, 1001, kAck, 30 * kMs, {}, 1000);
  Send(false, 5001, 1001, kAck, 40 * kMs, {}, 0);     // second event
  Send(true, 1001, 5001, kRst | kAck, 50 * kMs);
  const auto& f = Flow();
  EXPECT_EQ(f.to_client.zero_window_events, 2u);
  EXPECT_EQ(f.to_client.zero_window_packets, 3u);
  EXPECT_EQ(f.to_server.zero_window_events, 0u);
  EXPECT_EQ(f.to_server.resets, 1u);
  EXPECT_EQ(f.to_client.resets, 0u);
  EXPECT_EQ(f.end, FlowEnd::kReset);
  EXPECT_EQ(f.end_ns, 50 * kMs);
}

TEST_F(FlowTableTest, FinCloseThenExpiry) {
  std::vector<FlowStats> ended;
  table_.set_on_flow_end([&](const FlowStats& f) { ended.push_back(f); });
  Handshake(0);
  Send(true, 1001, 5001, kFin | kAck, 10 * kMs);
  Send(false, 5001, 1002, kFin | kAck, 11 * kMs);
  Send(true, 1002, 5002, kAck, 12 * kMs);
  EXPECT_EQ(Flow().end, FlowEnd::kFin);
  EXPECT_EQ(table_.Expire(12 * kMs + 1000 * kMs), 0u);  // lingering
  EXPECT_EQ(table_.Expire(12 * kMs + 3000 * kMs), 1u);
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].end, FlowEnd::kFin);
  EXPECT_EQ(ended[0].to_server.fins, 1u);
  EXPECT_EQ(table_.size(), 0u);
}

TEST(FlowTableBounds, EvictsLeastRecentlyUsedAndGuessesRoles) {
  FlowTable table(FlowTableOptions{.max_flows = 2});
  std::vector<FlowStats> ended;
  table.set_on_flow_end([&](const FlowStats& f) { ended.push_back(f); });
  for (uint16_t port : {50001, 50002, 50003}) {
    TcpSeg s;  // mid-stream data, no SYN seen
    s.sport = port; s.dport = 443; s.payload = "x";
    auto f = Frame(s);
    ParsedPacket p;
    ASSERT_EQ(ParsePacket(1, f, port, p), ParseStatus::kOk);
    table.OnPacket(p);
  }
  EXPECT_EQ(table.size(), 2u);
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].client_port, 50001);  // the oldest went
  EXPECT_EQ(ended[0].server_port, 443);    // lower port taken as the server
  EXPECT_FALSE(ended[0].saw_syn);
  EXPECT_EQ(ended[0].end, FlowEnd::kEvicted);
  EXPECT_EQ(table.counters().flows_evicted, 1u);
}

}  // namespace
}  // namespace sonde::packet
