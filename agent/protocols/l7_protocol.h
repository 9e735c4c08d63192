#pragma once
// Application protocols the agent recognises. Values are stable: they are
// shipped to the server and stored.
#include <cstdint>
#include <string_view>

namespace sonde::protocols {

enum class L7Protocol : uint8_t {
  kUnknown = 0,
  kHttp1 = 1,
  kHttp2 = 2,
  kGrpc = 3,  // an HTTP/2 exchange with content-type application/grpc*
  kRedis = 4,
};

constexpr std::string_view L7ProtocolName(L7Protocol p) {
  switch (p) {
    case L7Protocol::kHttp1: return "http1";
    case L7Protocol::kHttp2: return "http2";
    case L7Protocol::kGrpc: return "grpc";
    case L7Protocol::kRedis: return "redis";
    default: return "unknown";
  }
}

}  // namespace sonde::protocols
