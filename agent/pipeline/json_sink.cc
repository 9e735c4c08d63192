#include "agent/pipeline/json_sink.h"

#include "agent/trace/linker.h"
#include "agent/trace/trace_headers.h"

namespace sonde::pipeline {
namespace {

nlohmann::json Headers(const protocols::HeaderList& headers) {
  nlohmann::json arr = nlohmann::json::array();
  for (const protocols::HeaderField h : headers) arr.push_back({h.name, h.value});
  return arr;
}

}  // namespace

nlohmann::json SpanToJson(const trace::Span& s) {
  nlohmann::json attrs = nlohmann::json::object();
  for (const auto& a : s.attributes) {
    std::visit([&](const auto& v) { attrs[a.key] = v; }, a.value);
  }
  nlohmann::json j = {
      {"trace_id", trace::ToHex(s.trace_id)},
      {"span_id", trace::ToHex(s.span_id)},
      {"parent_span_id", s.parent_span_id == trace::SpanId{} ? "" : trace::ToHex(s.parent_span_id)},
      {"parent_reason", trace::LinkReasonName(s.parent_reason)},
      {"source", std::string(1, static_cast<char>(s.source))},
      {"kind", trace::SpanKindName(s.kind)},
      {"name", s.name},
      {"service", s.service_name},
      {"start_unix_ns", s.start_unix_ns},
      {"end_unix_ns", s.end_unix_ns},
      {"duration_ns", s.duration_ns()},
      {"status", trace::StatusCodeName(s.status)},
      {"pid", s.pid},
      {"tid", s.tid},
      {"comm", s.comm},
      {"sock_id", s.sock_id},
      {"local", s.local.address + ":" + std::to_string(s.local.port)},
      {"peer", s.peer.address + ":" + std::to_string(s.peer.port)},
      {"protocol", protocols::L7ProtocolName(s.protocol)},
      {"endpoint", s.endpoint},
      {"http_status", s.http_status},
      {"request_bytes", s.request_bytes},
      {"response_bytes", s.response_bytes},
      {"attributes", std::move(attrs)},
      {"request_headers", Headers(s.request_headers)},
      {"response_headers", Headers(s.response_headers)},
  };
  if (s.grpc_status >= 0) j["grpc_status"] = s.grpc_status;
  if (s.request_seq_valid) j["request_tcp_seq"] = s.request_tcp_seq;
  if (s.response_seq_valid) j["response_tcp_seq"] = s.response_tcp_seq;
  return j;
}

void JsonLinesSink::OnSpan(const trace::Span& span) {
  std::lock_guard<std::mutex> lock(mu_);
  buf_ = SpanToJson(span).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  buf_.push_back('\n');
  std::fwrite(buf_.data(), 1, buf_.size(), out_);
  if (line_buffered_) std::fflush(out_);
  ++lines_;
}

}  // namespace sonde::pipeline
