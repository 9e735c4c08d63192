// The exporters' conversions: RED/TCP windows to remote-write samples, spans
// and windows to OTLP, the OTEL_EXPORTER_OTLP_* variables.
#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "server/export/otlp_convert.h"
#include "server/export/otlp_exporter.h"
#include "server/export/remote_write.h"

namespace sonde::server {
namespace {

std::map<std::string, std::string> LabelsOf(const prometheus::TimeSeries& ts) {
  std::map<std::string, std::string> out;
  for (const auto& l : ts.labels()) out[l.name()] = l.value();
  return out;
}

v1::RedWindow Red(uint32_t pid, uint64_t requests) {
  v1::RedWindow w;
  w.set_window_start_unix_ns(1'000'000'000'000);
  w.set_window_end_unix_ns(1'010'000'000'000);
  w.set_service_name("api");
  w.set_pid(pid);
  w.set_endpoint("GET /x");
  w.set_method("GET");
  w.set_protocol(v1::L7_PROTOCOL_HTTP2);
  w.set_status_class(2);
  w.set_is_server(true);
  w.set_requests(requests);
  w.set_latency_sum_ns(requests * 1'000'000);
  w.add_bucket_bounds_ns(1'000'000);
  w.add_bucket_counts(requests);
  w.add_bucket_counts(0);
  return w;
}

TEST(RemoteWrite, WindowsOfOneSeriesAreSummedAndLabelled) {
  v1::Batch b;
  *b.add_red() = Red(1, 10);
  *b.add_red() = Red(2, 5);
  auto* bad = b.add_red();
  *bad = Red(3, 1);
  bad->set_service_name(std::string("\xff\xfe", 2));  // not UTF-8
  auto req = ToWriteRequest(b, "node-1");
  const prometheus::TimeSeries* requests = nullptr;
  int series = 0;
  for (const auto& ts : req.timeseries()) {
    auto l = LabelsOf(ts);
    ++series;
    // Labels sorted by name, as remote write requires.
    for (int i = 1; i < ts.labels_size(); ++i) EXPECT_LT(ts.labels(i - 1).name(), ts.labels(i).name());
    if (l["__name__"] == "sonde_red_requests" && l["service"] == "api") requests = &ts;
    if (l["service"] != "api") {
      EXPECT_EQ(l["service"], "\xEF\xBF\xBD\xEF\xBF\xBD");
    }
  }
  ASSERT_NE(requests, nullptr);
  auto l = LabelsOf(*requests);
  EXPECT_EQ(l["endpoint"], "GET /x");
  EXPECT_EQ(l["protocol"], "http2");
  EXPECT_EQ(l["status_class"], "2xx");
  EXPECT_EQ(l["direction"], "server");
  EXPECT_EQ(l["host"], "node-1");
  EXPECT_EQ(l.count("url_scheme"), 0u);  // empty labels are left out
  ASSERT_EQ(requests->samples_size(), 1);
  EXPECT_EQ(requests->samples(0).value(), 15);
  EXPECT_EQ(requests->samples(0).timestamp(), 1'010'000);  // ms
  // requests, errors, sum, 2 buckets; per service.
  EXPECT_EQ(series, 10);
}

TEST(RemoteWrite, EmptyBatchHasNoSeries) {
  EXPECT_EQ(ToWriteRequest(v1::Batch(), "h").timeseries_size(), 0);
}

TEST(OtlpConvert, SpansKeepIdsAndGainSemconvAttributes) {
  v1::Batch b;
  auto* s = b.add_spans();
  s->set_trace_id(std::string(16, '\x01'));
  s->set_span_id(std::string(8, '\x02'));
  s->set_parent_span_id(std::string(8, '\0'));  // a root
  s->set_kind(v1::SPAN_KIND_SERVER);
  s->set_source(v1::SPAN_SOURCE_NETWORK);
  s->set_service_name("gw");
  s->set_pid(9);
  s->set_endpoint("GET /a");
  s->set_http_status(502);
  s->set_protocol(v1::L7_PROTOCOL_HTTP1);
  s->mutable_server()->set_address("10.0.0.2");
  s->mutable_server()->set_port(80);
  auto* own = s->add_attributes();
  own->set_key("http.response.status_code");  // the span's own value wins
  own->set_int_value(599);
  auto req = ToOtlpTraces(b, "node-1");
  ASSERT_EQ(req.resource_spans_size(), 1);
  const auto& rs = req.resource_spans(0);
  std::map<std::string, std::string> resource;
  for (const auto& kv : rs.resource().attributes())
    resource[kv.key()] = kv.value().has_string_value() ? kv.value().string_value()
                                                       : std::to_string(kv.value().int_value());
  EXPECT_EQ(resource["service.name"], "gw");
  EXPECT_EQ(resource["host.name"], "node-1");
  EXPECT_EQ(resource["process.pid"], "9");
  const auto& span = rs.scope_spans(0).spans(0);
  EXPECT_EQ(span.trace_id(), std::string(16, '\x01'));
  EXPECT_TRUE(span.parent_span_id().empty());
  EXPECT_EQ(span.name(), "GET /a");
  EXPECT_EQ(span.kind(), opentelemetry::proto::trace::v1::Span::SPAN_KIND_SERVER);
  EXPECT_EQ(span.status().code(), opentelemetry::proto::trace::v1::Status::STATUS_CODE_ERROR);
  std::map<std::string, int> count;
  std::map<std::string, opentelemetry::proto::common::v1::AnyValue> attrs;
  for (const auto& kv : span.attributes()) {
    ++count[kv.key()];
    attrs[kv.key()] = kv.value();
  }
  EXPECT_EQ(count["http.response.status_code"], 1);
  EXPECT_EQ(attrs["http.response.status_code"].int_value(), 599);
  EXPECT_EQ(attrs["server.port"].int_value(), 80);
  EXPECT_EQ(attrs["network.protocol.name"].string_value(), "http");
  EXPECT_EQ(attrs["sonde.source"].string_value(), "N");
}

// gRPC spans leave on the current RPC conventions whatever stored them: the
// status's name in rpc.response.status_code, rpc.system.name; a span stored
// by an older agent keeps its own first-generation keys beside them.
TEST(OtlpConvert, GrpcSpansGetTheCurrentRpcConventions) {
  v1::Batch b;
  for (int status : {5, 0, -1}) {
    auto* s = b.add_spans();
    s->set_trace_id(std::string(16, '\x03'));
    s->set_span_id(std::string(7, '\x04') + static_cast<char>('a' + status + 1));
    s->set_kind(v1::SPAN_KIND_CLIENT);
    s->set_service_name("caller");
    s->set_pid(7);
    s->set_endpoint("helloworld.Greeter/SayHello");
    s->set_protocol(v1::L7_PROTOCOL_GRPC);
    s->set_grpc_status(status);
    if (status == 0) {  // stored by an agent of the first generation
      auto* old = s->add_attributes();
      old->set_key("rpc.grpc.status_code");
      old->set_int_value(0);
    }
  }
  const auto req = ToOtlpTraces(b, "node-1");
  ASSERT_EQ(req.resource_spans_size(), 1);
  const auto& spans = req.resource_spans(0).scope_spans(0).spans();
  ASSERT_EQ(spans.size(), 3);
  std::vector<std::map<std::string, opentelemetry::proto::common::v1::AnyValue>> attrs(3);
  for (int i = 0; i < 3; ++i)
    for (const auto& kv : spans[i].attributes()) attrs[i][kv.key()] = kv.value();
  for (const auto& a : attrs) EXPECT_EQ(a.at("rpc.system.name").string_value(), "grpc");
  EXPECT_EQ(attrs[0].at("rpc.response.status_code").string_value(), "NOT_FOUND");
  EXPECT_EQ(attrs[0].count("rpc.grpc.status_code"), 0u);
  EXPECT_EQ(attrs[1].at("rpc.response.status_code").string_value(), "OK");
  EXPECT_EQ(attrs[1].at("rpc.grpc.status_code").int_value(), 0);  // its own, kept
  EXPECT_EQ(attrs[2].count("rpc.response.status_code"), 0u);    // no status seen
}

TEST(OtlpConvert, RedWindowsBecomeDeltaSumsAndHistograms) {
  v1::Batch b;
  *b.add_red() = Red(1, 10);
  auto* bad = b.add_red();
  *bad = Red(2, 3);
  bad->add_bucket_counts(1);  // one count too many for its bounds
  auto req = ToOtlpMetrics(b, "h");
  ASSERT_EQ(req.resource_metrics_size(), 1);
  int histograms = 0;
  for (const auto& m : req.resource_metrics(0).scope_metrics(0).metrics()) {
    if (m.name() == "sonde.red.requests") {
      ASSERT_EQ(m.sum().data_points_size(), 2);
      EXPECT_EQ(m.sum().aggregation_temporality(), opentelemetry::proto::metrics::v1::AGGREGATION_TEMPORALITY_DELTA);
      EXPECT_EQ(m.sum().data_points(0).as_int(), 10);
    }
    if (m.name() == "sonde.red.duration") {
      histograms = m.histogram().data_points_size();
      EXPECT_EQ(m.histogram().data_points(0).bucket_counts_size(), 2);
      EXPECT_EQ(m.histogram().data_points(1).bucket_counts_size(), 0);  // malformed: dropped, not misread
    }
  }
  EXPECT_EQ(histograms, 2);
}

std::map<std::string, std::string> g_vars;
const char* FakeEnv(const char* name) {
  auto it = g_vars.find(name);
  return it == g_vars.end() ? nullptr : it->second.c_str();
}

TEST(OtlpEnvironment, StandardVariablesFillUnsetOptions) {
  g_vars = {{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"},
            {"OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"},
            {"OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20abc, x-tenant = t1"},
            {"OTEL_EXPORTER_OTLP_TIMEOUT", "2500"}};
  OtlpExportOptions o;
  ASSERT_TRUE(ApplyOtlpEnvironment(&o, FakeEnv).ok());
  EXPECT_EQ(o.endpoint, "http://collector:4317");
  EXPECT_EQ(o.protocol, OtlpExportOptions::Protocol::kGrpc);
  ASSERT_EQ(o.headers.size(), 2u);
  EXPECT_EQ(o.headers[0].second, "Bearer abc");
  EXPECT_EQ(o.headers[1].first, "x-tenant");
  EXPECT_EQ(o.timeout_ms, 2500);
  OtlpExportOptions explicit_endpoint;
  explicit_endpoint.endpoint = "http://flag:4318";
  ASSERT_TRUE(ApplyOtlpEnvironment(&explicit_endpoint, FakeEnv).ok());
  EXPECT_EQ(explicit_endpoint.endpoint, "http://flag:4318");
  for (auto [var, value] : {std::pair{"OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"},
                            {"OTEL_EXPORTER_OTLP_HEADERS", "novalue"}, {"OTEL_EXPORTER_OTLP_TIMEOUT", "soon"}}) {
    g_vars = {{var, value}};
    OtlpExportOptions bad;
    EXPECT_FALSE(ApplyOtlpEnvironment(&bad, FakeEnv).ok()) << var << "=" << value;
  }
}

TEST(OtlpExporter, RefusesEndpointsItCannotServe) {
  OtlpExportOptions o;
  o.endpoint = "ftp://x";
  EXPECT_FALSE(OtlpExporter::Create(o).ok());
  o.endpoint = "https://x:4318";  // TLS needs grpc here
  EXPECT_FALSE(OtlpExporter::Create(o).ok());
  o.endpoint = "http://x:notaport";
  EXPECT_FALSE(OtlpExporter::Create(o).ok());
}

}  // namespace
}  // namespace sonde::server
