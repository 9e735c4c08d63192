#include "agent/export/span_convert.h"

#include <algorithm>

namespace sonde::exporter {
namespace {

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
  // Both enums share their numbering (span.proto documents the mapping).
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
