#include "agent/capture/tuple_format.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cstring>

namespace sonde::capture {

namespace {

// Dotted quad without inet_ntop: glibc formats IPv4 through sprintf, which
// was ~4 % of the whole user-space pipeline (two addresses per span).
std::string FormatIpv4(const uint8_t* octets) {
  char buf[16];
  char* p = buf;
  for (int i = 0; i < 4; ++i) {
    const unsigned v = octets[i];
    if (v >= 100) *p++ = static_cast<char>('0' + v / 100);
    if (v >= 10) *p++ = static_cast<char>('0' + v / 10 % 10);
    *p++ = static_cast<char>('0' + v % 10);
    if (i < 3) *p++ = '.';
  }
  return std::string(buf, static_cast<size_t>(p - buf));
}

}  // namespace

std::string FormatAddress(uint16_t family, const uint8_t* addr) {
  if (family == AF_INET) return FormatIpv4(addr);
  static constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(addr, kMappedPrefix, sizeof(kMappedPrefix)) == 0) return FormatIpv4(addr + 12);
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(AF_INET6, addr, buf, sizeof(buf));
  return buf;
}

std::string LocalAddress(const sonde_tuple& t) { return FormatAddress(t.family, t.saddr); }
std::string RemoteAddress(const sonde_tuple& t) { return FormatAddress(t.family, t.daddr); }

std::string FormatEndpoint(uint16_t family, const uint8_t (&addr)[SONDE_ADDR_LEN], uint16_t port) {
  std::string a = FormatAddress(family, addr);
  if (a.find(':') != std::string::npos) return "[" + a + "]:" + std::to_string(port);
  return a + ":" + std::to_string(port);
}

const char* DirectionName(uint8_t d) {
  switch (d) {
    case SONDE_DIR_EGRESS: return "egress";
    case SONDE_DIR_INGRESS: return "ingress";
    default: return "unknown";
  }
}

const char* RoleName(uint8_t r) {
  switch (r) {
    case SONDE_ROLE_CLIENT: return "client";
    case SONDE_ROLE_SERVER: return "server";
    default: return "unknown";
  }
}

const char* SyscallName(uint8_t s) {
  static const char* const kNames[] = {"unknown", "read",     "write",    "readv",   "writev",
                                       "sendto",  "recvfrom", "sendmsg",  "recvmsg", "sendmmsg",
                                       "recvmmsg", "sendfile", "connect", "accept",  "accept4",
                                       "close",   "state_change", "ssl_read", "ssl_write", "tls_start"};
  return s < sizeof(kNames) / sizeof(kNames[0]) ? kNames[s] : "unknown";
}

}  // namespace sonde::capture
