#pragma once
// Application protocols the agent recognises. Values are stable: they are
// shipped to the server and stored. A new protocol: its value here (and
// kLastL7Protocol), the same number in proto/sonde/v1/span.proto and its name
// in proto/sonde/v1/enum_names.h.
#include <cstdint>
#include <string_view>

#include "proto/sonde/v1/enum_names.h"

namespace sonde::protocols {

enum class L7Protocol : uint8_t {
  kUnknown = 0,
  kHttp1 = 1,
  kHttp2 = 2,
  kGrpc = 3,  // an HTTP/2 exchange with content-type application/grpc*
  kRedis = 4,
  kPostgres = 5,
  kDns = 6,
};

// The highest value (the wire enum's MAX must equal it: agent/export/span_convert.cc).
inline constexpr L7Protocol kLastL7Protocol = L7Protocol::kDns;

// Names come from the one table by wire number (proto/sonde/v1/enum_names.h).
constexpr std::string_view L7ProtocolName(L7Protocol p) { return v1::names::L7ProtocolName(static_cast<int>(p)); }

}  // namespace sonde::protocols
