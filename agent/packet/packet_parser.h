#pragma once
// Pure parser from captured frame bytes to the fields the flow table needs.
// No state, no allocation: the payload points into the frame.
#include <array>
#include <cstdint>
#include <span>
#include <string>

namespace sonde::packet {

// libpcap link types we understand (values of DLT_*).
enum class LinkType : int {
  kNull = 0,        // BSD loopback: 4-byte host-order family
  kEthernet = 1,    // DLT_EN10MB (Linux lo, veth, eth)
  kRaw = 12,        // DLT_RAW (Linux value 12 from pcap_datalink is mapped to 101 by libpcap)
  kRawIp = 101,     // LINKTYPE_RAW
  kLinuxSll = 113,  // "any" device
  kLinuxSll2 = 276,
};

struct IpAddress {
  std::array<uint8_t, 16> bytes{};  // IPv4 in the first 4 bytes
  uint8_t family = 0;               // 4 or 6
  auto operator<=>(const IpAddress&) const = default;
  std::string ToString() const;
  static IpAddress V4(uint32_t host_order);
};

enum TcpFlags : uint8_t {
  kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10, kUrg = 0x20,
};

struct ParsedPacket {
  uint64_t ts_ns = 0;  // capture timestamp (Unix ns)
  IpAddress src, dst;
  uint16_t sport = 0, dport = 0;
  uint8_t l4_protocol = 0;  // 6 TCP, 17 UDP
  // TCP only.
  uint32_t seq = 0, ack = 0;
  uint8_t flags = 0;
  uint16_t window = 0;         // raw field (unscaled)
  int8_t window_scale = -1;    // option on SYN / SYN-ACK, -1 when absent
  // L4 payload: `payload` is what was captured, `payload_len` what the IP
  // header says was on the wire (larger when the snaplen cut it).
  std::span<const uint8_t> payload;
  uint32_t payload_len = 0;
  bool truncated() const { return payload.size() < payload_len; }
};

enum class ParseStatus : uint8_t {
  kOk,
  kTooShort,      // frame shorter than its headers
  kNotIp,         // ARP, LLDP, ...
  kNotTcpUdp,     // ICMP, ...
  kFragment,      // non-first IP fragment
  kBadHeader,     // inconsistent lengths
  kUnknownLink,
};

// Parses one frame captured on a link of `link`.
ParseStatus ParsePacket(int link, std::span<const uint8_t> frame, uint64_t ts_ns, ParsedPacket& out);

// Parses from the IP header on (used by the link-layer decoders and tests).
ParseStatus ParseIp(std::span<const uint8_t> ip, uint64_t ts_ns, ParsedPacket& out);

}  // namespace sonde::packet
