#include "agent/tcp/address_class.h"

#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <string>

namespace sonde::tcp {
namespace {

std::string_view ClassOfV4(const uint8_t a[4]) {
  if (a[0] == 127) return "loopback";
  if (a[0] == 169 && a[1] == 254) return "link_local";
  if (a[0] == 10 || (a[0] == 172 && (a[1] & 0xf0) == 16) || (a[0] == 192 && a[1] == 168) ||
      (a[0] == 100 && (a[1] & 0xc0) == 64)) {
    return "private";
  }
  return "public";
}

}  // namespace

std::string_view AddressClass(std::string_view ip) {
  const std::string text(ip);  // inet_pton wants a terminated string
  uint8_t v4[4];
  if (inet_pton(AF_INET, text.c_str(), v4) == 1) return ClassOfV4(v4);
  uint8_t v6[16];
  if (inet_pton(AF_INET6, text.c_str(), v6) != 1) return "unknown";
  static constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(v6, kMappedPrefix, sizeof kMappedPrefix) == 0) return ClassOfV4(v6 + 12);
  static constexpr uint8_t kLoopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  if (std::memcmp(v6, kLoopback, sizeof kLoopback) == 0) return "loopback";
  if (v6[0] == 0xfe && (v6[1] & 0xc0) == 0x80) return "link_local";
  if ((v6[0] & 0xfe) == 0xfc) return "private";
  return "public";
}

}  // namespace sonde::tcp
