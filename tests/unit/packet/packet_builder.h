#pragma once
// Hand-made frames for the packet tests: Ethernet (+VLAN) / IPv4|IPv6 / TCP|UDP.
#include <arpa/inet.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace sonde::packet::testing {

struct TcpSeg {
  std::string src = "10.0.0.1", dst = "10.0.0.2";
  uint16_t sport = 40000, dport = 80;
  uint32_t seq = 0, ack = 0;
  uint8_t flags = 0x10;
  uint16_t window = 65535;
  int wscale = -1;
  std::string payload;
  bool v6 = false;
  bool vlan = false;
  uint8_t proto = 6;
};

inline void Put16(std::vector<uint8_t>& b, uint16_t v) { b.push_back(v >> 8); b.push_back(v & 0xff); }
inline void Put32(std::vector<uint8_t>& b, uint32_t v) { Put16(b, v >> 16); Put16(b, v & 0xffff); }

inline std::vector<uint8_t> Frame(const TcpSeg& s) {
  std::vector<uint8_t> l4;
  if (s.proto == 6) {
    std::vector<uint8_t> opts;
    if (s.wscale >= 0) opts = {1, 3, 3, static_cast<uint8_t>(s.wscale)};
    Put16(l4, s.sport); Put16(l4, s.dport); Put32(l4, s.seq); Put32(l4, s.ack);
    l4.push_back(static_cast<uint8_t>(((20 + opts.size()) / 4) << 4));
    l4.push_back(s.flags);
    Put16(l4, s.window); Put16(l4, 0); Put16(l4, 0);
    l4.insert(l4.end(), opts.begin(), opts.end());
  } else {
    Put16(l4, s.sport); Put16(l4, s.dport); Put16(l4, static_cast<uint16_t>(8 + s.payload.size())); Put16(l4, 0);
  }
  l4.insert(l4.end(), s.payload.begin(), s.payload.end());
  std::vector<uint8_t> f(12, 0);  // MACs
  if (s.vlan) { Put16(f, 0x8100); Put16(f, 42); }
  if (!s.v6) {
    Put16(f, 0x0800);
    f.push_back(0x45); f.push_back(0);
    Put16(f, static_cast<uint16_t>(20 + l4.size()));
    Put16(f, 0); Put16(f, 0x4000);
    f.push_back(64); f.push_back(s.proto); Put16(f, 0);
    uint8_t a[4];
    inet_pton(AF_INET, s.src.c_str(), a); f.insert(f.end(), a, a + 4);
    inet_pton(AF_INET, s.dst.c_str(), a); f.insert(f.end(), a, a + 4);
  } else {
    Put16(f, 0x86dd);
    Put32(f, 0x60000000);
    Put16(f, static_cast<uint16_t>(l4.size()));
    f.push_back(s.proto); f.push_back(64);
    uint8_t a[16];
    inet_pton(AF_INET6, s.src.c_str(), a); f.insert(f.end(), a, a + 16);
    inet_pton(AF_INET6, s.dst.c_str(), a); f.insert(f.end(), a, a + 16);
  }
  f.insert(f.end(), l4.begin(), l4.end());
  return f;
}

}  // namespace sonde::packet::testing
