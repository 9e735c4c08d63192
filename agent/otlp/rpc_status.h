#pragma once
// google.rpc.Status bodies for OTLP error responses (HTTP 4xx/5xx bodies and
// gRPC rich error details). Encoded by hand: google/rpc/status.proto is not
// part of Debian's protobuf, and the message is three fields.
#include <cstdint>
#include <string>
#include <string_view>

namespace sonde::otlp {

// gRPC canonical codes used by the receivers.
enum class RpcCode : int32_t {
  kOk = 0,
  kInvalidArgument = 3,
  kResourceExhausted = 8,
  kUnimplemented = 12,
  kUnavailable = 14,
  kUnauthenticated = 16,
};

// Serialized google.rpc.Status {code, message}; when retry_after_s > 0 a
// google.rpc.RetryInfo detail (type.googleapis.com/google.rpc.RetryInfo) is
// attached so OTLP clients back off for that long.
std::string EncodeRpcStatusProto(RpcCode code, std::string_view message, int retry_after_s = 0);
// The proto3 JSON form of the same message.
std::string EncodeRpcStatusJson(RpcCode code, std::string_view message, int retry_after_s = 0);

}  // namespace sonde::otlp
