#pragma once
// Ids and times for tests that talk to sonde-server over the wire.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace sonde::testlib {

// Wall-clock nanoseconds (span times are Unix time).
inline uint64_t WallClockNs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

// A `len`-byte trace or span id ending in `n` (big-endian), its first byte
// `tag`: tests sharing one store keep their ids apart by tag.
inline std::string TaggedId(uint64_t n, size_t len, uint8_t tag) {
  std::string out(len, '\0');
  for (size_t i = 0; i < 8; ++i) out[len - 1 - i] = static_cast<char>((n >> (8 * i)) & 0xff);
  out[0] = static_cast<char>(tag);
  return out;
}

// Lowercase hex of raw bytes (ids as the server's JSON API writes them).
inline std::string Hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) out += {digits[c >> 4], digits[c & 15]};
  return out;
}

}  // namespace sonde::testlib
