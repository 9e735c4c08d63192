#include "agent/export/span_convert.h"

#include <algorithm>

#include "proto/sonde/v1/enum_names.h"

namespace sonde::exporter {
namespace {

// The agent's span enums cross to the server by number (SpanToProto casts
// them): every value keeps its span.proto number, and a value added on one
// side only fails here.
template <typename AgentEnum>
constexpr bool SameNumber(AgentEnum agent, int wire) {
  return static_cast<int>(agent) == wire;
}
using protocols::L7Protocol;
using trace::LinkReason;
using trace::SpanKind;
using trace::SpanSource;
using trace::StatusCode;
namespace names = v1::names;

static_assert(SameNumber(SpanKind::kUnspecified, v1::SPAN_KIND_UNSPECIFIED));
static_assert(SameNumber(SpanKind::kInternal, v1::SPAN_KIND_INTERNAL));
static_assert(SameNumber(SpanKind::kServer, v1::SPAN_KIND_SERVER));
static_assert(SameNumber(SpanKind::kClient, v1::SPAN_KIND_CLIENT));
static_assert(SameNumber(SpanKind::kProducer, v1::SPAN_KIND_PRODUCER));
static_assert(SameNumber(SpanKind::kConsumer, v1::SPAN_KIND_CONSUMER));
static_assert(v1::SpanKind_MAX == v1::SPAN_KIND_CONSUMER && v1::SpanKind_ARRAYSIZE == names::kSpanKind.size());

static_assert(SameNumber(StatusCode::kUnset, v1::STATUS_CODE_UNSET));
static_assert(SameNumber(StatusCode::kOk, v1::STATUS_CODE_OK));
static_assert(SameNumber(StatusCode::kError, v1::STATUS_CODE_ERROR));
static_assert(v1::StatusCode_MAX == v1::STATUS_CODE_ERROR && v1::StatusCode_ARRAYSIZE == names::kStatusCode.size());

static_assert(SameNumber(LinkReason::kNone, v1::LINK_REASON_NONE));
static_assert(SameNumber(LinkReason::kTraceparent, v1::LINK_REASON_TRACEPARENT));
static_assert(SameNumber(LinkReason::kKongRequestId, v1::LINK_REASON_KONG_REQUEST_ID));
static_assert(SameNumber(LinkReason::kRequestId, v1::LINK_REASON_REQUEST_ID));
static_assert(SameNumber(LinkReason::kTimeNesting, v1::LINK_REASON_TIME_NESTING));
static_assert(SameNumber(LinkReason::kTcpSequence, v1::LINK_REASON_TCP_SEQUENCE));
static_assert(SameNumber(LinkReason::kOtlpParent, v1::LINK_REASON_OTLP_PARENT));
static_assert(SameNumber(LinkReason::kThread, v1::LINK_REASON_THREAD));
static_assert(v1::LinkReason_MAX == v1::LINK_REASON_THREAD && v1::LinkReason_ARRAYSIZE == names::kLinkReason.size());

// Every agent protocol value is a wire value of the same name, and the wire
// enum has no value the agent lacks (nothing here names single protocols, so
// adding one does not touch this file).
constexpr bool L7ProtocolsMatchTheWire() {
  for (int v = 0; v <= static_cast<int>(protocols::kLastL7Protocol); ++v) {
    if (static_cast<size_t>(v) >= names::kL7Protocol.size()) return false;
    if (protocols::L7ProtocolName(static_cast<L7Protocol>(v)) != names::kL7Protocol[static_cast<size_t>(v)]) return false;
  }
  return true;
}
static_assert(L7ProtocolsMatchTheWire());
static_assert(v1::L7Protocol_MAX == static_cast<int>(protocols::kLastL7Protocol) &&
              v1::L7Protocol_ARRAYSIZE == names::kL7Protocol.size());
static_assert(SameNumber(L7Protocol::kUnknown, v1::L7_PROTOCOL_UNKNOWN));

// SpanSource goes through a switch (Source below): its values are the shared letters.
static_assert(static_cast<char>(SpanSource::kApplication) == names::SpanSourceLetter(v1::SPAN_SOURCE_APPLICATION)[0]);
static_assert(static_cast<char>(SpanSource::kSystem) == names::SpanSourceLetter(v1::SPAN_SOURCE_SYSTEM)[0]);
static_assert(static_cast<char>(SpanSource::kNetwork) == names::SpanSourceLetter(v1::SPAN_SOURCE_NETWORK)[0]);
static_assert(v1::SpanSource_MAX == v1::SPAN_SOURCE_NETWORK && v1::SpanSource_ARRAYSIZE == names::kSpanSource.size());

template <size_t N>
bool IsZero(const std::array<uint8_t, N>& a) {
  return std::all_of(a.begin(), a.end(), [](uint8_t b) { return b == 0; });
}

template <size_t N>
void SetBytes(const std::array<uint8_t, N>& a, std::string* out) {
  out->assign(reinterpret_cast<const char*>(a.data()), N);
}

void SetAddr(const trace::Endpoint& e, v1::SocketAddress* out) {
  out->set_address(e.address);
  out->set_port(e.port);
}

v1::SpanSource Source(trace::SpanSource s) {
  switch (s) {
    case trace::SpanSource::kApplication: return v1::SPAN_SOURCE_APPLICATION;
    case trace::SpanSource::kSystem: return v1::SPAN_SOURCE_SYSTEM;
    case trace::SpanSource::kNetwork: return v1::SPAN_SOURCE_NETWORK;
  }
  return v1::SPAN_SOURCE_UNSPECIFIED;
}

void Headers(const protocols::HeaderList& in,
             google::protobuf::RepeatedPtrField<v1::Header>* out) {
  out->Reserve(static_cast<int>(in.size()));
  for (const protocols::HeaderField h : in) {
    auto* p = out->Add();
    p->set_name(h.name.data(), h.name.size());
    p->set_value(h.value.data(), h.value.size());
    if (h.unknown) p->set_unknown(true);
  }
}

}  // namespace

void SpanToProto(const trace::Span& s, v1::Span* out) {
  SetBytes(s.trace_id, out->mutable_trace_id());
  SetBytes(s.span_id, out->mutable_span_id());
  if (!IsZero(s.parent_span_id)) SetBytes(s.parent_span_id, out->mutable_parent_span_id());
  // Both enums share their numbering (static_asserts above).
  out->set_parent_reason(static_cast<v1::LinkReason>(s.parent_reason));
  out->set_source(Source(s.source));
  out->set_kind(static_cast<v1::SpanKind>(s.kind));
  out->set_name(s.name);
  out->set_service_name(s.service_name);
  out->set_start_unix_ns(s.start_unix_ns);
  out->set_end_unix_ns(s.end_unix_ns);
  out->set_status(static_cast<v1::StatusCode>(s.status));
  out->set_status_message(s.status_message);
  out->set_pid(s.pid);
  out->set_tid(s.tid);
  out->set_comm(s.comm);
  out->set_container_id(s.container_id);
  out->set_sock_id(s.sock_id);
  if (!s.local.address.empty() || s.local.port) SetAddr(s.local, out->mutable_local());
  if (!s.peer.address.empty() || s.peer.port) SetAddr(s.peer, out->mutable_peer());
  if (!s.client.address.empty() || s.client.port) SetAddr(s.client, out->mutable_client());
  if (!s.server.address.empty() || s.server.port) SetAddr(s.server, out->mutable_server());
  out->set_protocol(static_cast<v1::L7Protocol>(s.protocol));
  out->set_endpoint(s.endpoint);
  out->set_http_status(s.http_status);
  out->set_grpc_status(s.grpc_status);
  out->set_request_bytes(s.request_bytes);
  out->set_response_bytes(s.response_bytes);
  if (s.request_seq_valid) out->set_request_tcp_seq(s.request_tcp_seq);
  if (s.response_seq_valid) out->set_response_tcp_seq(s.response_tcp_seq);
  out->mutable_attributes()->Reserve(static_cast<int>(s.attributes.size()));
  for (const auto& a : s.attributes) {
    auto* p = out->add_attributes();
    p->set_key(a.key);
    std::visit(
        [p](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::string>) p->set_string_value(v);
          else if constexpr (std::is_same_v<T, int64_t>) p->set_int_value(v);
          else if constexpr (std::is_same_v<T, double>) p->set_double_value(v);
          else p->set_bool_value(v);
        },
        a.value);
  }
  Headers(s.request_headers, out->mutable_request_headers());
  Headers(s.response_headers, out->mutable_response_headers());
}

}  // namespace sonde::exporter
