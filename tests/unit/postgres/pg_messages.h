#pragma once
// Hand-made PostgreSQL protocol v3 messages for the unit tests and the benchmark.
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace sonde::testing::pg {

inline std::string Be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}
inline std::string Be16(uint16_t v) { return {static_cast<char>(v >> 8), static_cast<char>(v)}; }
inline std::string Cstr(std::string_view s) { return std::string(s) + '\0'; }

inline std::string Message(char type, std::string_view body) {
  return std::string(1, type) + Be32(static_cast<uint32_t>(body.size() + 4)) + std::string(body);
}

inline std::string Startup(std::initializer_list<std::pair<std::string_view, std::string_view>> params) {
  std::string body = Be32(196608);
  for (const auto& [k, v] : params) body += Cstr(k) + Cstr(v);
  body += '\0';
  return Be32(static_cast<uint32_t>(body.size() + 4)) + body;
}
inline std::string SslRequest() { return Be32(8) + Be32(80877103); }

// Frontend
inline std::string Query(std::string_view sql) { return Message('Q', Cstr(sql)); }
inline std::string Parse(std::string_view name, std::string_view sql) {
  return Message('P', Cstr(name) + Cstr(sql) + Be16(0));
}
inline std::string Bind(std::string_view portal, std::string_view statement, std::string_view param = "42") {
  return Message('B', Cstr(portal) + Cstr(statement) + Be16(0) + Be16(1) + Be32(static_cast<uint32_t>(param.size())) +
                          std::string(param) + Be16(0));
}
inline std::string DescribePortal(std::string_view portal) { return Message('D', "P" + Cstr(portal)); }
inline std::string Execute(std::string_view portal) { return Message('E', Cstr(portal) + Be32(0)); }
inline std::string Sync() { return Message('S', ""); }
inline std::string Password(std::string_view secret) { return Message('p', Cstr(secret)); }
inline std::string Terminate() { return Message('X', ""); }

// Backend
inline std::string AuthOk() { return Message('R', Be32(0)); }
inline std::string ParameterStatus(std::string_view k, std::string_view v) { return Message('S', Cstr(k) + Cstr(v)); }
inline std::string Ready(char status = 'I') { return Message('Z', std::string(1, status)); }
inline std::string ParseComplete() { return Message('1', ""); }
inline std::string BindComplete() { return Message('2', ""); }
inline std::string NoData() { return Message('n', ""); }
inline std::string RowDescription() {
  return Message('T', Be16(1) + Cstr("abalance") + Be32(0) + Be16(0) + Be32(23) + Be16(4) + Be32(0xffffffff) + Be16(0));
}
inline std::string DataRow(std::string_view value) {
  return Message('D', Be16(1) + Be32(static_cast<uint32_t>(value.size())) + std::string(value));
}
inline std::string Complete(std::string_view tag) { return Message('C', Cstr(tag)); }
inline std::string Error(std::string_view sqlstate, std::string_view text = "relation \"secret_42\" does not exist") {
  return Message('E', "SERROR" + std::string(1, '\0') + "VERROR" + std::string(1, '\0') + "C" + Cstr(sqlstate) + "M" +
                          Cstr(text) + std::string(1, '\0'));
}

}  // namespace sonde::testing::pg
