#include "server/export/otlp_convert.h"

#include <map>
#include <tuple>
#include <unordered_set>

#include "common/semconv/grpc_status.h"

namespace sonde::server {
namespace {

namespace otel_common = opentelemetry::proto::common::v1;
namespace otel_trace = opentelemetry::proto::trace::v1;
namespace otel_metrics = opentelemetry::proto::metrics::v1;
using KeyValues = google::protobuf::RepeatedPtrField<otel_common::KeyValue>;

// OTLP strings must be UTF-8: captured bytes may not be (U+FFFD instead).
std::string Utf8(const std::string& bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool ok = len > 0 && i + len <= bytes.size();
    for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(bytes[i + k]) >> 6) == 2;
    if (ok) {
      out.append(bytes, i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

void AddString(KeyValues* kv, const std::string& key, const std::string& value) {
  auto* a = kv->Add();
  a->set_key(key);
  a->mutable_value()->set_string_value(Utf8(value));
}
void AddInt(KeyValues* kv, const std::string& key, int64_t value) {
  auto* a = kv->Add();
  a->set_key(key);
  a->mutable_value()->set_int_value(value);
}

bool AllZero(const std::string& s) {
  for (char c : s)
    if (c != 0) return false;
  return true;
}

const char* ProtocolName(v1::L7Protocol p) {
  switch (p) {
    case v1::L7_PROTOCOL_HTTP1: return "http";
    case v1::L7_PROTOCOL_HTTP2: return "http";
    case v1::L7_PROTOCOL_GRPC: return "grpc";
    case v1::L7_PROTOCOL_REDIS: return "redis";
    case v1::L7_PROTOCOL_POSTGRESQL: return "postgresql";
    case v1::L7_PROTOCOL_DNS: return "dns";
    default: return "";
  }
}

const char* SourceLetter(v1::SpanSource s) {
  switch (s) {
    case v1::SPAN_SOURCE_APPLICATION: return "A";
    case v1::SPAN_SOURCE_SYSTEM: return "S";
    case v1::SPAN_SOURCE_NETWORK: return "N";
    default: return "?";
  }
}

std::string ServiceOf(const std::string& service, const std::string& comm) {
  return !service.empty() ? service : !comm.empty() ? comm : "unknown";
}

void FillResource(opentelemetry::proto::resource::v1::Resource* r, const std::string& service,
                  const std::string& host, uint32_t pid, const std::string& comm, const std::string& container) {
  auto* kv = r->mutable_attributes();
  AddString(kv, "service.name", service);
  if (!host.empty()) AddString(kv, "host.name", host);
  if (pid) AddInt(kv, "process.pid", pid);
  if (!comm.empty()) AddString(kv, "process.executable.name", comm);
  if (!container.empty()) AddString(kv, "container.id", container);
}

}  // namespace

opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest ToOtlpTraces(const v1::Batch& batch,
                                                                                   const std::string& host) {
  opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest req;
  std::map<std::tuple<std::string, uint32_t, std::string>, otel_trace::ScopeSpans*> scopes;
  for (const auto& s : batch.spans()) {
    const std::string service = ServiceOf(s.service_name(), s.comm());
    auto& scope = scopes[{service, s.pid(), s.container_id()}];
    if (!scope) {
      auto* rs = req.add_resource_spans();
      FillResource(rs->mutable_resource(), service, host, s.pid(), s.comm(), s.container_id());
      scope = rs->add_scope_spans();
      scope->mutable_scope()->set_name("sonde");
    }
    auto* o = scope->add_spans();
    o->set_trace_id(s.trace_id());
    o->set_span_id(s.span_id());
    if (!s.parent_span_id().empty() && !AllZero(s.parent_span_id())) o->set_parent_span_id(s.parent_span_id());
    o->set_name(Utf8(!s.name().empty() ? s.name() : s.endpoint()));
    o->set_kind(static_cast<otel_trace::Span::SpanKind>(s.kind() >= 0 && s.kind() <= 5 ? s.kind() : 0));
    o->set_start_time_unix_nano(s.start_unix_ns());
    o->set_end_time_unix_nano(s.end_unix_ns());
    if (s.status() == v1::STATUS_CODE_ERROR || s.http_status() >= 500 ||
        (s.protocol() == v1::L7_PROTOCOL_GRPC && s.grpc_status() > 0)) {
      o->mutable_status()->set_code(otel_trace::Status::STATUS_CODE_ERROR);
      o->mutable_status()->set_message(Utf8(s.status_message()));
    } else if (s.status() == v1::STATUS_CODE_OK) {
      o->mutable_status()->set_code(otel_trace::Status::STATUS_CODE_OK);
    }
    auto* kv = o->mutable_attributes();
    std::unordered_set<std::string> keys;
    for (const auto& a : s.attributes()) {
      keys.insert(a.key());
      auto* out = kv->Add();
      out->set_key(a.key());
      switch (a.value_case()) {
        case v1::Attribute::kStringValue: out->mutable_value()->set_string_value(Utf8(a.string_value())); break;
        case v1::Attribute::kIntValue: out->mutable_value()->set_int_value(a.int_value()); break;
        case v1::Attribute::kDoubleValue: out->mutable_value()->set_double_value(a.double_value()); break;
        case v1::Attribute::kBoolValue: out->mutable_value()->set_bool_value(a.bool_value()); break;
        default: break;
      }
    }
    auto add_string = [&](const char* key, const std::string& v) {
      if (!v.empty() && keys.insert(key).second) AddString(kv, key, v);
    };
    auto add_int = [&](const char* key, int64_t v) {
      if (keys.insert(key).second) AddInt(kv, key, v);
    };
    if (s.http_status() > 0) add_int("http.response.status_code", s.http_status());
    // gRPC on the current RPC conventions, as agents and OTLP ingest write
    // them (common/semconv/grpc_status.h); spans stored by older agents keep
    // their rpc.grpc.status_code and get the current key beside it.
    if (s.protocol() == v1::L7_PROTOCOL_GRPC) {
      add_string("rpc.system.name", "grpc");
      if (s.grpc_status() >= 0) add_string("rpc.response.status_code", semconv::GrpcStatusName(s.grpc_status()));
    }
    if (s.has_server()) {
      add_string("server.address", s.server().address());
      if (s.server().port()) add_int("server.port", s.server().port());
    }
    if (s.has_client()) {
      add_string("client.address", s.client().address());
      if (s.client().port()) add_int("client.port", s.client().port());
    }
    add_string("network.protocol.name", ProtocolName(s.protocol()));
    add_string("sonde.source", SourceLetter(s.source()));
    if (s.parent_reason() != v1::LINK_REASON_NONE)
      add_string("sonde.parent_reason", v1::LinkReason_Name(s.parent_reason()));
  }
  return req;
}

opentelemetry::proto::collector::metrics::v1::ExportMetricsServiceRequest ToOtlpMetrics(const v1::Batch& batch,
                                                                                       const std::string& host) {
  opentelemetry::proto::collector::metrics::v1::ExportMetricsServiceRequest req;
  if (batch.red_size() == 0 && batch.tcp_size() == 0) return req;
  auto* rm = req.add_resource_metrics();
  auto* ra = rm->mutable_resource()->mutable_attributes();
  AddString(ra, "service.name", "sonde");
  if (!host.empty()) AddString(ra, "host.name", host);
  auto* scope = rm->add_scope_metrics();
  scope->mutable_scope()->set_name("sonde");
  std::map<std::string, otel_metrics::Metric*> metrics;
  auto metric = [&](const std::string& name, const char* unit, const char* description) {
    auto*& m = metrics[name];
    if (!m) {
      m = scope->add_metrics();
      m->set_name(name);
      m->set_unit(unit);
      m->set_description(description);
    }
    return m;
  };
  auto delta_sum = [&](const std::string& name, const char* unit, const char* description) {
    auto* m = metric(name, unit, description);
    auto* sum = m->mutable_sum();
    sum->set_aggregation_temporality(otel_metrics::AGGREGATION_TEMPORALITY_DELTA);
    sum->set_is_monotonic(true);
    return sum->add_data_points();
  };
  for (const auto& w : batch.red()) {
    KeyValues attrs;
    AddString(&attrs, "service.name", ServiceOf(w.service_name(), w.comm()));
    if (!w.endpoint().empty()) AddString(&attrs, "sonde.endpoint", w.endpoint());
    if (!w.method().empty()) AddString(&attrs, "http.request.method", w.method());
    if (w.status_class()) AddString(&attrs, "sonde.status_class", std::to_string(w.status_class()) + "xx");
    AddString(&attrs, "sonde.direction", w.is_server() ? "server" : "client");
    if (const char* p = ProtocolName(w.protocol()); *p) AddString(&attrs, "network.protocol.name", p);
    for (auto [name, value, desc] :
         {std::tuple{"sonde.red.requests", w.requests(), "Requests in the window"},
          std::tuple{"sonde.red.errors", w.errors(), "Failed requests in the window (5xx, gRPC non-OK, timeouts)"}}) {
      auto* dp = delta_sum(name, "{request}", desc);
      dp->set_start_time_unix_nano(w.window_start_unix_ns());
      dp->set_time_unix_nano(w.window_end_unix_ns());
      dp->set_as_int(static_cast<int64_t>(value));
      *dp->mutable_attributes() = attrs;
    }
    auto* m = metric("sonde.red.duration", "s", "Request duration");
    auto* h = m->mutable_histogram();
    h->set_aggregation_temporality(otel_metrics::AGGREGATION_TEMPORALITY_DELTA);
    auto* dp = h->add_data_points();
    dp->set_start_time_unix_nano(w.window_start_unix_ns());
    dp->set_time_unix_nano(w.window_end_unix_ns());
    dp->set_count(w.requests());
    dp->set_sum(static_cast<double>(w.latency_sum_ns()) / 1e9);
    for (uint64_t b : w.bucket_bounds_ns()) dp->add_explicit_bounds(static_cast<double>(b) / 1e9);
    for (uint64_t c : w.bucket_counts()) dp->add_bucket_counts(c);
    if (dp->bucket_counts_size() != dp->explicit_bounds_size() + 1) {  // malformed: no buckets rather than wrong ones
      dp->clear_bucket_counts();
      dp->clear_explicit_bounds();
    }
    *dp->mutable_attributes() = attrs;
  }
  for (const auto& w : batch.tcp()) {
    KeyValues attrs;
    AddString(&attrs, "server.address", w.server().address());
    AddInt(&attrs, "server.port", w.server().port());
    if (!w.client().address().empty()) AddString(&attrs, "client.address", w.client().address());
    if (!w.comm().empty()) AddString(&attrs, "process.executable.name", w.comm());
    const std::tuple<const char*, uint64_t, const char*> sums[] = {
        {"sonde.tcp.retransmits", w.retransmits(), "{segment}"},
        {"sonde.tcp.resets_sent", w.resets_sent(), "{reset}"},
        {"sonde.tcp.resets_received", w.resets_received(), "{reset}"},
        {"sonde.tcp.connect_failures", w.connect_failures(), "{connection}"},
        {"sonde.tcp.connect_timeouts", w.connect_timeouts(), "{connection}"},
        {"sonde.tcp.zero_window_events", w.zero_window_events(), "{event}"},
        {"sonde.tcp.bytes_sent", w.bytes_sent(), "By"},
        {"sonde.tcp.bytes_received", w.bytes_received(), "By"},
        {"sonde.tcp.opened_connections", w.opened_connections(), "{connection}"},
        {"sonde.tcp.closed_connections", w.closed_connections(), "{connection}"},
    };
    for (const auto& [name, value, unit] : sums) {
      auto* dp = delta_sum(name, unit, "TCP events in the window");
      dp->set_start_time_unix_nano(w.window_start_unix_ns());
      dp->set_time_unix_nano(w.window_end_unix_ns());
      dp->set_as_int(static_cast<int64_t>(value));
      *dp->mutable_attributes() = attrs;
    }
    auto gauge = [&](const char* name, const char* unit, const char* desc) {
      auto* dp = metric(name, unit, desc)->mutable_gauge()->add_data_points();
      dp->set_time_unix_nano(w.window_end_unix_ns());
      *dp->mutable_attributes() = attrs;
      return dp;
    };
    gauge("sonde.tcp.active_connections", "{connection}", "Open connections at the window end")
        ->set_as_int(w.active_connections());
    if (w.srtt_us())
      gauge("sonde.tcp.srtt", "s", "Latest smoothed RTT")->set_as_double(static_cast<double>(w.srtt_us()) / 1e6);
  }
  return req;
}

}  // namespace sonde::server
