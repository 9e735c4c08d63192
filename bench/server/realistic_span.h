#pragma once
// The span both server benchmarks store: a gateway-like S span (~450 bytes).
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "sonde/v1/span.pb.h"

namespace sonde::bench {

inline std::string Id(uint64_t n, size_t len) {
  std::string s(len, '\0');
  for (size_t i = 0; i < 8; ++i) s[len - 1 - i] = static_cast<char>(n >> (8 * i));
  s[0] = 0x11;
  return s;
}

// A gateway-like S span: ~20 fields, 4 headers, 2 attributes (~450 bytes).
inline v1::Span RealisticSpan(uint64_t trace, uint64_t span, uint64_t start_ns) {
  v1::Span s;
  s.set_trace_id(Id(trace, 16));
  s.set_span_id(Id(span, 8));
  if (span % 10 != 0) s.set_parent_span_id(Id(span - span % 10, 8));
  s.set_parent_reason(v1::LINK_REASON_THREAD);
  s.set_source(v1::SPAN_SOURCE_SYSTEM);
  s.set_kind(span % 2 ? v1::SPAN_KIND_CLIENT : v1::SPAN_KIND_SERVER);
  s.set_name("GET /api/items/{id}");
  s.set_endpoint("GET /api/items/{id}");
  s.set_service_name(span % 3 ? "nginx" : "backend");
  s.set_start_unix_ns(start_ns);
  s.set_end_unix_ns(start_ns + 1'000'000 + span % 5'000'000);
  s.set_pid(1000 + static_cast<uint32_t>(span % 4));
  s.set_tid(2000);
  s.set_comm("nginx");
  s.mutable_client()->set_address("10.0.0.1");
  s.mutable_client()->set_port(40000 + static_cast<uint32_t>(span % 20000));
  s.mutable_server()->set_address("10.0.0.2");
  s.mutable_server()->set_port(8080);
  s.set_protocol(v1::L7_PROTOCOL_HTTP1);
  s.set_http_status(span % 50 == 0 ? 502 : 200);
  s.set_request_bytes(200);
  s.set_response_bytes(1500);
  s.set_request_tcp_seq(static_cast<uint32_t>(span * 7919));
  for (auto [k, v] : {std::pair{"host", "api.example.com"}, {"user-agent", "curl/8.0"},
                      {"traceparent", "00-11111111111111111111111111111111-2222222222222222-01"},
                      {"x-request-id", "5f1c0e5c-8d5e-4a43-9a2b-1d9c7d3f4e21"}}) {
    auto* h = s.add_request_headers();
    h->set_name(k);
    h->set_value(v);
  }
  auto* a = s.add_attributes();
  a->set_key("http.route");
  a->set_string_value("/api/items/{id}");
  a = s.add_attributes();
  a->set_key("net.peer.name");
  a->set_string_value("backend");
  return s;
}

}  // namespace sonde::bench
