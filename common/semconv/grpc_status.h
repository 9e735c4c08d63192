#pragma once
// gRPC status codes as the current RPC semantic conventions spell them:
// rpc.response.status_code is the string representation of the code ("OK",
// "NOT_FOUND", ...; grpc/doc/statuscodes.md), replacing the integer
// rpc.grpc.status_code of the first generation. Shared by the agent's own
// gRPC spans, OTLP ingest and the server's OTLP export, so all put the same
// value on the same key. Header-only: agent and server both include it.
#include <array>
#include <charconv>
#include <optional>
#include <string>
#include <string_view>

namespace sonde::semconv {

inline constexpr std::array<std::string_view, 17> kGrpcStatusNames = {
    "OK",       "CANCELLED",          "UNKNOWN",        "INVALID_ARGUMENT",    "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
    "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL",       "UNAVAILABLE",       "DATA_LOSS",        "UNAUTHENTICATED"};

// "NOT_FOUND" for 5; a code outside 0..16 in decimal ("42").
inline std::string GrpcStatusName(int code) {
  if (code >= 0 && code < static_cast<int>(kGrpcStatusNames.size())) return std::string(kGrpcStatusNames[code]);
  return std::to_string(code);
}

// The code of a name ("NOT_FOUND" -> 5) or of a decimal string ("5" -> 5),
// as older producers and first-generation rewrites sent it.
inline std::optional<int> GrpcStatusFromString(std::string_view s) {
  for (size_t i = 0; i < kGrpcStatusNames.size(); ++i) {
    if (s == kGrpcStatusNames[i]) return static_cast<int>(i);
  }
  int code = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), code);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return code;
}

}  // namespace sonde::semconv
