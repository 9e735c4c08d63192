#pragma once
// One reconstructed request/response exchange, protocol-neutral enough for
// HTTP/1.1, HTTP/2 and gRPC. Produced by protocol sessions, consumed by the
// span builder and the RED aggregator. Times are CLOCK_MONOTONIC ns.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agent/protocols/header_list.h"
#include "agent/protocols/l7_protocol.h"

namespace sonde::protocols {

// The remote end of one datagram: a UDP socket may talk to many peers, so
// datagram protocols carry it per call and per record.
struct PeerAddress {
  uint16_t family = 0;  // AF_INET / AF_INET6; 0: none (the connection's own peer applies)
  uint16_t port = 0;    // host order
  std::array<uint8_t, 16> addr{};  // IPv4 in the first 4 bytes
};

// One direction of an exchange (the request or the response).
struct L7Message {
  uint64_t first_byte_ns = 0;  // syscall entry of the call carrying the first byte
  uint64_t last_byte_ns = 0;   // syscall exit of the call carrying the last byte
  uint64_t bytes = 0;          // bytes on the wire, headers + body (+ framing)
  uint64_t body_bytes = 0;
  std::optional<uint32_t> first_tcp_seq;  // TCP sequence of the first byte
  HeaderList headers;
  uint32_t thread_id = 0;  // thread that moved the first byte
  bool complete = false;   // the parser saw the end of the message
};

// Flags describing how complete/trustworthy a record is.
enum RecordFlags : uint32_t {
  kRecordNoResponse = 1u << 0,      // connection closed / reset before a response
  kRecordLateJoin = 1u << 1,        // connection predates the agent / stream start unseen
  kRecordHeadersPartial = 1u << 2,  // some header fields unknown (lost HPACK state, truncation)
  kRecordStreamReset = 1u << 3,     // HTTP/2 RST_STREAM
  kRecordTruncated = 1u << 4,       // capture gap inside the exchange
};

struct L7Record {
  L7Protocol protocol = L7Protocol::kUnknown;
  std::string version;     // "1.0", "1.1", "2"
  std::string method;      // GET, POST, ... (":method")
  std::string path;        // request target without the query string
  std::string query;       // query string without '?'
  std::string authority;   // Host / ":authority"
  std::string scheme;      // ":scheme" when known
  int status = 0;          // HTTP status; 0 when unknown
  uint32_t stream_id = 0;  // HTTP/2 stream id
  uint32_t flags = 0;      // RecordFlags
  PeerAddress peer;        // datagram protocols: the peer of this exchange (family 0: the connection's)

  L7Message request;
  L7Message response;

  // gRPC (protocol == kGrpc)
  std::string rpc_service;
  std::string rpc_method;
  int grpc_status = -1;  // -1: not seen
  std::string grpc_message;
  uint32_t request_messages = 0;
  uint32_t response_messages = 0;

  // Convenience lookups (first match, case-insensitive name).
  std::optional<std::string_view> RequestHeader(std::string_view name) const;
  std::optional<std::string_view> ResponseHeader(std::string_view name) const;
};

}  // namespace sonde::protocols
