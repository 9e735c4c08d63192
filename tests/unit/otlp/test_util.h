#pragma once
// Hand-made OTLP requests for the unit tests.
#include <string>

#include "agent/otlp/sink.h"

namespace sonde::otlp::testing {

inline std::string Bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out.push_back(static_cast<char>(v));
  return out;
}

inline const std::string kTraceId = Bytes({0x5b, 0x8e, 0xff, 0x00, 0x12, 0x34, 0x56, 0x78,
                                           0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x02, 0x03, 0x04});
inline const std::string kTraceIdHex = "5b8eff00123456789abcdef001020304";
inline const std::string kSpanId = Bytes({0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74});
inline const std::string kSpanIdHex = "eee19b7ec3c1b174";
inline const std::string kParentId = Bytes({0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7});
inline const std::string kParentIdHex = "00f067aa0ba902b7";

inline void AddStringAttr(google::protobuf::RepeatedPtrField<opentelemetry::proto::common::v1::KeyValue>* attrs,
                          const std::string& key, const std::string& value) {
  auto* kv = attrs->Add();
  kv->set_key(key);
  kv->mutable_value()->set_string_value(value);
}

inline void AddIntAttr(google::protobuf::RepeatedPtrField<opentelemetry::proto::common::v1::KeyValue>* attrs,
                       const std::string& key, int64_t value) {
  auto* kv = attrs->Add();
  kv->set_key(key);
  kv->mutable_value()->set_int_value(value);
}

// One resource ("kong"), one scope, `spans` SERVER spans with Kong-style legacy attributes.
inline ExportTraceRequest MakeTraceRequest(int spans) {
  ExportTraceRequest request;
  auto* rs = request.add_resource_spans();
  AddStringAttr(rs->mutable_resource()->mutable_attributes(), "service.name", "kong");
  auto* ss = rs->add_scope_spans();
  ss->mutable_scope()->set_name("kong-internal");
  for (int i = 0; i < spans; ++i) {
    auto* span = ss->add_spans();
    span->set_trace_id(kTraceId);
    std::string id = kSpanId;
    id[7] = static_cast<char>(i + 1);
    span->set_span_id(id);
    span->set_parent_span_id(kParentId);
    span->set_name("kong");
    span->set_kind(opentelemetry::proto::trace::v1::Span::SPAN_KIND_SERVER);
    span->set_start_time_unix_nano(1700000000000000000ull + static_cast<uint64_t>(i));
    span->set_end_time_unix_nano(1700000000005000000ull + static_cast<uint64_t>(i));
    AddStringAttr(span->mutable_attributes(), "http.method", "GET");
    AddStringAttr(span->mutable_attributes(), "http.url", "http://example.test/users/42?x=1");
    AddIntAttr(span->mutable_attributes(), "http.status_code", 200);
    AddStringAttr(span->mutable_attributes(), "net.peer.ip", "10.0.0.7");
  }
  return request;
}

}  // namespace sonde::otlp::testing
