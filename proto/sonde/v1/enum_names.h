#pragma once
// Text names of the sonde.v1 span enums (span.proto), indexed by wire number:
// the one table behind the server's JSON and query parameters, and the
// reference the agent's own names are checked against (the agent exports the
// numbers; see agent/export/span_convert.cc). Header-only and free of
// generated code, so agent and server share it without linking each other.
//
// A new enum value: its number in span.proto, its name here, then the agent
// enum it mirrors (static_asserts in agent/export/span_convert.cc fail until
// all three agree).
#include <array>
#include <cstddef>
#include <optional>
#include <string_view>

namespace sonde::v1::names {

inline constexpr std::array<std::string_view, 4> kSpanSource = {"", "application", "system", "network"};
// The agent's trace::SpanSource values are these letters.
inline constexpr std::array<std::string_view, 4> kSpanSourceLetter = {"?", "A", "S", "N"};
inline constexpr std::array<std::string_view, 6> kSpanKind = {"unspecified", "internal", "server",
                                                              "client",      "producer", "consumer"};
inline constexpr std::array<std::string_view, 3> kStatusCode = {"unset", "ok", "error"};
// Also the agent's sonde.link.reason attribute values and the reason label of
// sonde_agent_links_total.
inline constexpr std::array<std::string_view, 8> kLinkReason = {
    "none",         "traceparent",  "kong_request_id", "x_request_id",
    "time_nesting", "tcp_sequence", "otlp_parent",     "thread"};
inline constexpr std::array<std::string_view, 7> kL7Protocol = {"unknown", "http1", "http2", "grpc",
                                                                "redis",   "postgresql", "dns"};

// names[number]; nullopt for a number the table does not know (a newer peer).
template <size_t N>
constexpr std::optional<std::string_view> Lookup(const std::array<std::string_view, N>& names, int number) {
  if (number < 0 || static_cast<size_t>(number) >= N) return std::nullopt;
  return names[static_cast<size_t>(number)];
}

// The number named `name`; nullopt when no value has that name.
template <size_t N>
constexpr std::optional<int> NumberOf(const std::array<std::string_view, N>& names, std::string_view name) {
  for (size_t i = 0; i < N; ++i) {
    if (names[i] == name) return static_cast<int>(i);
  }
  return std::nullopt;
}

constexpr std::string_view SpanSourceLetter(int source) { return Lookup(kSpanSourceLetter, source).value_or("?"); }
constexpr std::string_view SpanKindName(int kind) { return Lookup(kSpanKind, kind).value_or("unspecified"); }
constexpr std::string_view StatusCodeName(int status) { return Lookup(kStatusCode, status).value_or("unset"); }
constexpr std::string_view L7ProtocolName(int protocol) { return Lookup(kL7Protocol, protocol).value_or("unknown"); }

}  // namespace sonde::v1::names
