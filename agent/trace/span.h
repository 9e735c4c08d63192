#pragma once
// The agent's span model (docs/architecture.md "Spans and correlation"). Every
// producer (system spans from syscalls, network spans from packets, app spans
// from OTLP) fills this one struct; the exporter converts it to sonde.v1.Span.
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "agent/protocols/l7_protocol.h"
#include "agent/protocols/record.h"
#include "agent/protocols/semantics.h"
#include "proto/sonde/v1/enum_names.h"
#include "sonde/abi.h"

namespace sonde::trace {

using TraceId = std::array<uint8_t, 16>;
using SpanId = std::array<uint8_t, 8>;

// Where a span came from.
enum class SpanSource : char {
  kApplication = 'A',  // OTLP from an instrumented process
  kSystem = 'S',       // reconstructed from socket syscalls
  kNetwork = 'N',      // reconstructed from packets on an interface
};

// OTel SpanKind values.
enum class SpanKind : uint8_t { kUnspecified = 0, kInternal = 1, kServer = 2, kClient = 3,
                                kProducer = 4, kConsumer = 5 };

// OTel status codes.
enum class StatusCode : uint8_t { kUnset = 0, kOk = 1, kError = 2 };

// How a span's parent edge was derived, strongest evidence first.
enum class LinkReason : uint8_t {
  kNone = 0,
  kTraceparent = 1,      // W3C traceparent / B3 parent id
  kKongRequestId = 2,    // X-Kong-Request-Id echoed upstream
  kRequestId = 3,        // x-request-id
  kTimeNesting = 4,      // same worker, egress inside ingress lifetime, path/host similar
  kTcpSequence = 5,      // same bytes seen at two points (client/server, syscall/packet)
  kOtlpParent = 6,       // parent id carried by an OTLP span
  kThread = 7,           // same thread, ingress followed by egress
};

// Text names, from the one table by wire number (the agent enums equal the
// span.proto numbers: static_asserts in agent/export/span_convert.cc).
constexpr std::string_view SpanKindName(SpanKind k) { return v1::names::SpanKindName(static_cast<int>(k)); }
constexpr std::string_view StatusCodeName(StatusCode s) { return v1::names::StatusCodeName(static_cast<int>(s)); }
constexpr std::string_view LinkReasonName(LinkReason r) {
  return v1::names::Lookup(v1::names::kLinkReason, static_cast<int>(r)).value_or("none");
}
inline constexpr size_t kLinkReasonCount = v1::names::kLinkReason.size();

// Attributes are defined with the protocols' semantics, which produce them.
using AttributeValue = protocols::AttributeValue;
using Attribute = protocols::Attribute;

struct Endpoint {
  std::string address;  // IP text
  uint16_t port = 0;
};

// What a system span needs to become complete (semconv attributes, address
// text, headers). Kept aside by SpanBuilder::BuildDeferred so that spans left
// out by sampling never pay for them; SpanBuilder::Complete consumes it.
struct DeferredDetail {
  protocols::L7Record record;
  sonde_tuple tuple{};
};

// Owns the DeferredDetail; copying a span copies it (spans are copied in
// places, and completing one copy must not empty the other's).
class DeferredPtr {
 public:
  DeferredPtr() = default;
  DeferredPtr(const DeferredPtr& o) : ptr_(o.ptr_ ? std::make_unique<DeferredDetail>(*o.ptr_) : nullptr) {}
  DeferredPtr& operator=(const DeferredPtr& o) {
    if (this != &o) ptr_ = o.ptr_ ? std::make_unique<DeferredDetail>(*o.ptr_) : nullptr;
    return *this;
  }
  DeferredPtr(DeferredPtr&&) noexcept = default;
  DeferredPtr& operator=(DeferredPtr&&) noexcept = default;
  DeferredPtr& operator=(std::unique_ptr<DeferredDetail> p) {
    ptr_ = std::move(p);
    return *this;
  }
  explicit operator bool() const { return ptr_ != nullptr; }
  DeferredDetail* operator->() const { return ptr_.get(); }
  void reset() { ptr_.reset(); }

 private:
  std::unique_ptr<DeferredDetail> ptr_;
};

struct Span {
  TraceId trace_id{};
  SpanId span_id{};
  SpanId parent_span_id{};  // all zero: root
  LinkReason parent_reason = LinkReason::kNone;

  SpanSource source = SpanSource::kSystem;
  SpanKind kind = SpanKind::kUnspecified;
  std::string name;  // "GET /users/{id}", "grpc.health.v1.Health/Check"
  std::string service_name;
  uint64_t start_unix_ns = 0;
  uint64_t end_unix_ns = 0;
  StatusCode status = StatusCode::kUnset;
  std::string status_message;

  // Who produced it.
  uint32_t pid = 0;
  uint32_t tid = 0;
  std::string comm;
  std::string container_id;
  uint64_t sock_id = 0;

  // Where it went.
  Endpoint local;
  Endpoint peer;
  Endpoint client;  // the client side of the connection
  Endpoint server;  // the server side of the connection
  protocols::L7Protocol protocol = protocols::L7Protocol::kUnknown;
  std::string endpoint;  // "GET /users/{id}" or "pkg.Service/Method"
  int http_status = 0;
  int grpc_status = -1;
  uint64_t request_bytes = 0;
  uint64_t response_bytes = 0;
  uint32_t request_tcp_seq = 0;
  uint32_t response_tcp_seq = 0;
  bool request_seq_valid = false;
  bool response_seq_valid = false;
  bool tls = false;  // read from a TLS library (url.scheme https, RED's scheme label)

  // The protocol's RED labels (protocols::SpanDescription) and, for
  // request/path protocols, the raw path and query the linker compares: kept
  // outside `attributes` so linking and RED need no attribute lookups.
  std::string operation;  // HTTP method, RPC method
  std::string route;      // normalised path, RPC service/method
  std::string url_path;
  std::string url_query;
  // An incoming trace context's sampled flag: -1 none, 0 not sampled, 1 sampled.
  int8_t parent_sampled = -1;

  std::vector<Attribute> attributes;
  protocols::HeaderList request_headers;
  protocols::HeaderList response_headers;
  // Set while the span is incomplete (see DeferredDetail); null afterwards.
  DeferredPtr deferred;

  // Headers wherever they are now: in the deferred record until Complete.
  const protocols::HeaderList& RequestHeaders() const {
    return deferred ? deferred->record.request.headers : request_headers;
  }
  const protocols::HeaderList& ResponseHeaders() const {
    return deferred ? deferred->record.response.headers : response_headers;
  }

  uint64_t duration_ns() const { return end_unix_ns > start_unix_ns ? end_unix_ns - start_unix_ns : 0; }
};

// Spans travel through the pipeline (linker, joiner, sampler) by pointer: a
// Span is a few hundred bytes of strings and vectors, and moving it by value
// at every stage cost more than building it (callgrind: ~12 % of the agent).
using SpanPtr = std::unique_ptr<Span>;
// Spans that leave the pipeline together (one sampling decision).
using SpanGroup = std::vector<SpanPtr>;

// Anything that wants finished spans (JSON printer, RED aggregator, exporter).
class SpanSink {
 public:
  virtual ~SpanSink() = default;
  virtual void OnSpan(const Span& span) = 0;
};

}  // namespace sonde::trace
