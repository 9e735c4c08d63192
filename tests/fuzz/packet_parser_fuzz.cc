// libFuzzer target: the packet parser (link layers, IPv4/IPv6, TCP/UDP) on
// arbitrary frames; the first byte picks the link type.
#include <cstddef>
#include <cstdint>
#include <span>

#include "agent/packet/packet_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static constexpr int kLinks[] = {1, 113, 276, 101, 0, 12};  // EN10MB, LINUX_SLL, SLL2, RAW, NULL, RAW (BSD)
  std::span<const uint8_t> frame(data + 1, size - 1);
  sonde::packet::ParsedPacket out;
  (void)sonde::packet::ParsePacket(kLinks[data[0] % 6], frame, 1, out);
  sonde::packet::ParsedPacket ip;
  (void)sonde::packet::ParseIp(frame, 1, ip);
  return 0;
}
