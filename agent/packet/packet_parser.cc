#include "agent/packet/packet_parser.h"

#include <arpa/inet.h>

#include <cstring>

#include "agent/capture/tuple_format.h"

namespace sonde::packet {
namespace {

uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t Be32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}

constexpr uint16_t kEthIpv4 = 0x0800;
constexpr uint16_t kEthIpv6 = 0x86dd;
constexpr uint16_t kEthVlan = 0x8100;
constexpr uint16_t kEthQinQ = 0x88a8;

ParseStatus ParseByEtherType(uint16_t type, std::span<const uint8_t> rest, uint64_t ts,
                             ParsedPacket& out) {
  // Up to two VLAN tags.
  for (int i = 0; i < 2 && (type == kEthVlan || type == kEthQinQ); ++i) {
    if (rest.size() < 4) return ParseStatus::kTooShort;
    type = Be16(rest.data() + 2);
    rest = rest.subspan(4);
  }
  if (type != kEthIpv4 && type != kEthIpv6) return ParseStatus::kNotIp;
  return ParseIp(rest, ts, out);
}

ParseStatus ParseL4(uint8_t proto, std::span<const uint8_t> l4, uint32_t l4_len_on_wire,
                    ParsedPacket& out) {
  out.l4_protocol = proto;
  if (proto == 17) {
    if (l4.size() < 8) return ParseStatus::kTooShort;
    out.sport = Be16(l4.data());
    out.dport = Be16(l4.data() + 2);
    out.payload_len = l4_len_on_wire >= 8 ? l4_len_on_wire - 8 : 0;
    out.payload = l4.subspan(8, std::min<size_t>(l4.size() - 8, out.payload_len));
    return ParseStatus::kOk;
  }
  if (proto != 6) return ParseStatus::kNotTcpUdp;
  if (l4.size() < 20) return ParseStatus::kTooShort;
  const uint8_t* t = l4.data();
  out.sport = Be16(t);
  out.dport = Be16(t + 2);
  out.seq = Be32(t + 4);
  out.ack = Be32(t + 8);
  const size_t doff = (t[12] >> 4) * 4u;
  out.flags = t[13];
  out.window = Be16(t + 14);
  if (doff < 20 || doff > l4_len_on_wire) return ParseStatus::kBadHeader;
  if (l4.size() < doff) return ParseStatus::kTooShort;
  // Options: only the window scale matters here.
  for (size_t i = 20; i < doff;) {
    const uint8_t kind = t[i];
    if (kind == 0) break;
    if (kind == 1) { ++i; continue; }
    if (i + 1 >= doff) break;
    const uint8_t len = t[i + 1];
    if (len < 2 || i + len > doff) break;
    if (kind == 3 && len == 3) out.window_scale = static_cast<int8_t>(t[i + 2]);
    i += len;
  }
  out.payload_len = l4_len_on_wire - static_cast<uint32_t>(doff);
  out.payload = l4.subspan(doff, std::min<size_t>(l4.size() - doff, out.payload_len));
  return ParseStatus::kOk;
}

}  // namespace

std::string IpAddress::ToString() const {
  return capture::FormatAddress(family == 6 ? AF_INET6 : AF_INET, bytes.data());
}

IpAddress IpAddress::V4(uint32_t host_order) {
  IpAddress a;
  a.family = 4;
  const uint32_t be = htonl(host_order);
  std::memcpy(a.bytes.data(), &be, 4);
  return a;
}

ParseStatus ParseIp(std::span<const uint8_t> ip, uint64_t ts_ns, ParsedPacket& out) {
  out = ParsedPacket{};
  out.ts_ns = ts_ns;
  if (ip.empty()) return ParseStatus::kTooShort;
  const uint8_t version = ip[0] >> 4;
  if (version == 4) {
    if (ip.size() < 20) return ParseStatus::kTooShort;
    const size_t ihl = (ip[0] & 0x0f) * 4u;
    const uint16_t total = Be16(ip.data() + 2);
    if (ihl < 20 || total < ihl) return ParseStatus::kBadHeader;
    if (ip.size() < ihl) return ParseStatus::kTooShort;
    const uint16_t frag = Be16(ip.data() + 6);
    if ((frag & 0x1fff) != 0) return ParseStatus::kFragment;
    out.src.family = out.dst.family = 4;
    std::memcpy(out.src.bytes.data(), ip.data() + 12, 4);
    std::memcpy(out.dst.bytes.data(), ip.data() + 16, 4);
    // TSO/GRO frames captured locally may carry total length 0: use what was captured.
    const uint32_t on_wire = total ? total - ihl : static_cast<uint32_t>(ip.size() - ihl);
    return ParseL4(ip[9], ip.subspan(ihl), on_wire, out);
  }
  if (version == 6) {
    if (ip.size() < 40) return ParseStatus::kTooShort;
    uint32_t remaining = Be16(ip.data() + 4);
    uint8_t next = ip[6];
    out.src.family = out.dst.family = 6;
    std::memcpy(out.src.bytes.data(), ip.data() + 8, 16);
    std::memcpy(out.dst.bytes.data(), ip.data() + 24, 16);
    std::span<const uint8_t> rest = ip.subspan(40);
    // Extension headers: hop-by-hop, routing, destination options, fragment.
    for (int i = 0; i < 8; ++i) {
      if (next == 0 || next == 43 || next == 60) {
        if (rest.size() < 8) return ParseStatus::kTooShort;
        const size_t len = (rest[1] + 1u) * 8u;
        if (rest.size() < len || remaining < len) return ParseStatus::kBadHeader;
        next = rest[0];
        rest = rest.subspan(len);
        remaining -= static_cast<uint32_t>(len);
      } else if (next == 44) {
        if (rest.size() < 8) return ParseStatus::kTooShort;
        if ((Be16(rest.data() + 2) & 0xfff8) != 0) return ParseStatus::kFragment;
        next = rest[0];
        rest = rest.subspan(8);
        remaining = remaining >= 8 ? remaining - 8 : 0;
      } else {
        break;
      }
    }
    if (remaining == 0) remaining = static_cast<uint32_t>(rest.size());  // jumbo / GSO
    return ParseL4(next, rest, remaining, out);
  }
  return ParseStatus::kNotIp;
}

ParseStatus ParsePacket(int link, std::span<const uint8_t> f, uint64_t ts_ns, ParsedPacket& out) {
  switch (static_cast<LinkType>(link)) {
    case LinkType::kEthernet:
      if (f.size() < 14) return ParseStatus::kTooShort;
      return ParseByEtherType(Be16(f.data() + 12), f.subspan(14), ts_ns, out);
    case LinkType::kLinuxSll:
      if (f.size() < 16) return ParseStatus::kTooShort;
      return ParseByEtherType(Be16(f.data() + 14), f.subspan(16), ts_ns, out);
    case LinkType::kLinuxSll2:
      if (f.size() < 20) return ParseStatus::kTooShort;
      return ParseByEtherType(Be16(f.data()), f.subspan(20), ts_ns, out);
    case LinkType::kRaw:
    case LinkType::kRawIp:
      return ParseIp(f, ts_ns, out);
    case LinkType::kNull: {
      if (f.size() < 4) return ParseStatus::kTooShort;
      return ParseIp(f.subspan(4), ts_ns, out);
    }
  }
  return ParseStatus::kUnknownLink;
}

}  // namespace sonde::packet
