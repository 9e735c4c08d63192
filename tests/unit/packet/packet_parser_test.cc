#include "agent/packet/packet_parser.h"

#include <gtest/gtest.h>

#include "tests/unit/packet/packet_builder.h"

namespace sonde::packet {
namespace {
using testing::Frame;
using testing::TcpSeg;

TEST(PacketParser, Ipv4TcpWithOptionsAndPayload) {
  TcpSeg s;
  s.seq = 1000; s.ack = 2000; s.flags = kSyn | kAck; s.window = 512; s.wscale = 7;
  s.payload = "hello";
  auto f = Frame(s);
  ParsedPacket p;
  ASSERT_EQ(ParsePacket(1, f, 42, p), ParseStatus::kOk);
  EXPECT_EQ(p.ts_ns, 42u);
  EXPECT_EQ(p.src.ToString(), "10.0.0.1");
  EXPECT_EQ(p.dst.ToString(), "10.0.0.2");
  EXPECT_EQ(p.sport, 40000);
  EXPECT_EQ(p.dport, 80);
  EXPECT_EQ(p.seq, 1000u);
  EXPECT_EQ(p.ack, 2000u);
  EXPECT_EQ(p.flags, kSyn | kAck);
  EXPECT_EQ(p.window, 512);
  EXPECT_EQ(p.window_scale, 7);
  EXPECT_EQ(std::string(p.payload.begin(), p.payload.end()), "hello");
  EXPECT_EQ(p.payload_len, 5u);
  EXPECT_FALSE(p.truncated());
}

TEST(PacketParser, Ipv6AndVlanAndUdp) {
  TcpSeg s;
  s.v6 = true; s.src = "fd00::1"; s.dst = "fd00::2"; s.payload = "xyz"; s.vlan = true;
  auto f = Frame(s);
  ParsedPacket p;
  ASSERT_EQ(ParsePacket(1, f, 0, p), ParseStatus::kOk);
  EXPECT_EQ(p.src.family, 6);
  EXPECT_EQ(p.dst.ToString(), "fd00::2");
  EXPECT_EQ(p.payload_len, 3u);
  TcpSeg u;
  u.proto = 17; u.sport = 5353; u.dport = 53; u.payload = "dns";
  auto g = Frame(u);
  ASSERT_EQ(ParsePacket(1, g, 0, p), ParseStatus::kOk);
  EXPECT_EQ(p.l4_protocol, 17);
  EXPECT_EQ(p.dport, 53);
  EXPECT_EQ(p.payload_len, 3u);
}

TEST(PacketParser, SnaplenTruncationKeepsWireLength) {
  TcpSeg s;
  s.payload = std::string(1000, 'a');
  auto f = Frame(s);
  f.resize(14 + 20 + 20 + 100);  // captured 100 payload bytes
  ParsedPacket p;
  ASSERT_EQ(ParsePacket(1, f, 0, p), ParseStatus::kOk);
  EXPECT_EQ(p.payload.size(), 100u);
  EXPECT_EQ(p.payload_len, 1000u);
  EXPECT_TRUE(p.truncated());
}

TEST(PacketParser, LinuxCookedAndRaw) {
  TcpSeg s;
  s.payload = "abc";
  auto eth = Frame(s);
  std::vector<uint8_t> ip(eth.begin() + 14, eth.end());
  ParsedPacket p;
  ASSERT_EQ(ParsePacket(101, ip, 0, p), ParseStatus::kOk);
  EXPECT_EQ(p.payload_len, 3u);
  std::vector<uint8_t> sll(16, 0);
  sll[14] = 0x08; sll[15] = 0x00;
  sll.insert(sll.end(), ip.begin(), ip.end());
  ASSERT_EQ(ParsePacket(113, sll, 0, p), ParseStatus::kOk);
  EXPECT_EQ(p.dport, 80);
}

TEST(PacketParser, RejectsWhatItCannotUse) {
  ParsedPacket p;
  std::vector<uint8_t> arp(60, 0);
  arp[12] = 0x08; arp[13] = 0x06;
  EXPECT_EQ(ParsePacket(1, arp, 0, p), ParseStatus::kNotIp);
  TcpSeg s;
  auto f = Frame(s);
  f[14 + 6] = 0x00; f[14 + 7] = 0x10;  // fragment offset 16
  EXPECT_EQ(ParsePacket(1, f, 0, p), ParseStatus::kFragment);
  auto g = Frame(s);
  g[14 + 9] = 1;  // ICMP
  EXPECT_EQ(ParsePacket(1, g, 0, p), ParseStatus::kNotTcpUdp);
  auto h = Frame(s);
  h.resize(30);
  EXPECT_EQ(ParsePacket(1, h, 0, p), ParseStatus::kTooShort);
  EXPECT_EQ(ParsePacket(999, h, 0, p), ParseStatus::kUnknownLink);
}

}  // namespace
}  // namespace sonde::packet
