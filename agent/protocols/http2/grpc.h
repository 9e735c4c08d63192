#pragma once
// gRPC over HTTP/2 (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md):
// recognising a gRPC exchange, :path -> service/method, grpc-status and
// grpc-message from trailers (or a trailers-only response), and counting the
// length-prefixed messages carried by DATA frames.
#include <cstdint>
#include <string>
#include <string_view>

#include "agent/protocols/record.h"

namespace sonde::protocols::http2 {

bool IsGrpcContentType(std::string_view content_type);

// "/pkg.Service/Method" -> {"pkg.Service", "Method"}. False when :path does
// not have exactly that shape.
bool SplitGrpcPath(std::string_view path, std::string& service, std::string& method);

// grpc-message is percent-encoded (RFC 3986 style, uppercase hex).
std::string PercentDecode(std::string_view in);

// Counts gRPC messages in one direction of a stream from its DATA bytes:
// 1-byte compressed flag, 4-byte big-endian length, then the message.
class GrpcMessageCounter {
 public:
  void Feed(std::string_view data);
  // `bytes` of DATA were not captured: skipped inside the current message
  // when they fit, otherwise the framing is lost and counting stops.
  void Skip(uint64_t bytes);

  uint32_t messages() const { return messages_; }
  bool framing_lost() const { return lost_; }
  // True when every byte seen so far was consistent gRPC framing and it ends
  // on a message boundary (used to recognise gRPC when content-type is unknown).
  bool aligned() const { return !lost_ && prefix_have_ == 0 && payload_left_ == 0; }
  uint64_t bytes() const { return bytes_; }

 private:
  uint32_t messages_ = 0;
  uint8_t prefix_[5] = {};
  uint8_t prefix_have_ = 0;
  uint64_t payload_left_ = 0;
  uint64_t bytes_ = 0;
  bool lost_ = false;
};

// Fills the gRPC fields of a finished HTTP/2 record and sets protocol = kGrpc
// when the exchange is gRPC: by content-type, or — when header fields were
// lost — by a POST to a "/Service/Method" path whose bodies are exact gRPC
// framing.
void ApplyGrpc(L7Record& rec, const GrpcMessageCounter& request,
               const GrpcMessageCounter& response);

}  // namespace sonde::protocols::http2
