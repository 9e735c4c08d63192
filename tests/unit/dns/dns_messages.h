#pragma once
// Hand-made DNS messages for the unit tests and the benchmark.
#include <cstdint>
#include <string>
#include <string_view>

namespace sonde::testing::dns {

inline std::string Be16(uint16_t v) { return {static_cast<char>(v >> 8), static_cast<char>(v)}; }

inline std::string Name(std::string_view dotted) {
  std::string out;
  size_t start = 0;
  while (start < dotted.size()) {
    size_t dot = dotted.find('.', start);
    if (dot == std::string_view::npos) dot = dotted.size();
    out.push_back(static_cast<char>(dot - start));
    out.append(dotted.substr(start, dot - start));
    start = dot + 1;
  }
  out.push_back('\0');
  return out;
}

inline std::string Query(uint16_t id, std::string_view name, uint16_t qtype = 1, bool edns = true) {
  std::string m = Be16(id) + Be16(0x0100) + Be16(1) + Be16(0) + Be16(0) + Be16(edns ? 1 : 0);
  m += Name(name) + Be16(qtype) + Be16(1);
  if (edns) m += std::string(1, '\0') + Be16(41) + Be16(1232) + Be16(0) + Be16(0) + Be16(0);
  return m;
}

// A response with `answers` A records (compressed names) and `rcode`.
inline std::string Response(uint16_t id, std::string_view name, uint16_t qtype = 1, uint8_t rcode = 0,
                            uint16_t answers = 1) {
  std::string m = Be16(id) + Be16(static_cast<uint16_t>(0x8180 | rcode)) + Be16(1) + Be16(answers) + Be16(0) + Be16(0);
  m += Name(name) + Be16(qtype) + Be16(1);
  for (uint16_t i = 0; i < answers; ++i) {
    m += Be16(0xC00C) + Be16(1) + Be16(1) + Be16(0) + Be16(60) + Be16(4) + std::string("\x0a\x00\x00", 3) +
         static_cast<char>(i + 1);
  }
  return m;
}

inline std::string Tcp(std::string_view message) {
  return Be16(static_cast<uint16_t>(message.size())) + std::string(message);
}

}  // namespace sonde::testing::dns
