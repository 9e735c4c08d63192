#include "agent/otlp/json_codec.h"

#include <gtest/gtest.h>

#include "agent/otlp/sink.h"
#include "test_util.h"

namespace sonde::otlp {
namespace {

using namespace sonde::otlp::testing;

const char* kKongLikeJson = R"({
  "resourceSpans": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "kong"}}],
                 "someFutureField": {"a": [1, 2, 3]}},
    "scopeSpans": [{
      "scope": {"name": "kong-internal", "version": "0.1.0"},
      "spans": [{
        "traceId": "5B8EFF00123456789ABCDEF001020304",
        "spanId": "eee19b7ec3c1b174",
        "parentSpanId": "00f067aa0ba902b7",
        "name": "kong.router",
        "kind": 2,
        "flags": 769,
        "startTimeUnixNano": "1700000000000000001",
        "endTimeUnixNano": 1700000000000005000,
        "attributes": [
          {"key": "http.status_code", "value": {"intValue": "503"}},
          {"key": "big", "value": {"intValue": 9007199254740993}},
          {"key": "ratio", "value": {"doubleValue": "NaN"}},
          {"key": "blob", "value": {"bytesValue": "AAEC"}},
          {"key": "list", "value": {"arrayValue": {"values": [{"boolValue": true}, {"intValue": "-4"}]}}}
        ],
        "status": {"code": 2, "message": "upstream timeout"},
        "events": [{"timeUnixNano": "5", "name": "e"}],
        "links": [{"traceId": "5b8eff00123456789abcdef001020304", "spanId": "00f067aa0ba902b7"}],
        "unknownSpanField": "ignored"
      }]
    }]
  }]
})";

TEST(OtlpJson, DecodesHexIdsInt64StringsAndIgnoresUnknownFields) {
  ExportTraceRequest request;
  ASSERT_TRUE(ParseOtlpJson(kKongLikeJson, &request).ok());
  ASSERT_EQ(request.resource_spans_size(), 1);
  const auto& span = request.resource_spans(0).scope_spans(0).spans(0);
  EXPECT_EQ(span.trace_id(), kTraceId);  // upper-case hex accepted
  EXPECT_EQ(span.span_id(), kSpanId);
  EXPECT_EQ(span.parent_span_id(), kParentId);
  EXPECT_EQ(span.kind(), opentelemetry::proto::trace::v1::Span::SPAN_KIND_SERVER);
  EXPECT_EQ(span.flags(), 769u);
  EXPECT_EQ(span.start_time_unix_nano(), 1700000000000000001ull);  // int64 as a string
  EXPECT_EQ(span.end_time_unix_nano(), 1700000000000005000ull);    // int64 as a number
  EXPECT_EQ(span.attributes(0).value().int_value(), 503);
  EXPECT_EQ(span.attributes(1).value().int_value(), 9007199254740993);  // beyond 2^53, exact
  EXPECT_TRUE(std::isnan(span.attributes(2).value().double_value()));
  EXPECT_EQ(span.attributes(3).value().bytes_value(), Bytes({0, 1, 2}));  // non-id bytes: base64
  EXPECT_EQ(span.attributes(4).value().array_value().values(1).int_value(), -4);
  EXPECT_EQ(span.status().code(), opentelemetry::proto::trace::v1::Status::STATUS_CODE_ERROR);
  EXPECT_EQ(span.status().message(), "upstream timeout");
  EXPECT_EQ(span.events(0).time_unix_nano(), 5u);
  EXPECT_EQ(span.links(0).trace_id(), kTraceId);
  EXPECT_EQ(span.links(0).span_id(), kParentId);
}

TEST(OtlpJson, AcceptsSnakeCaseKeysAndEnumNames) {
  ExportTraceRequest request;
  ASSERT_TRUE(ParseOtlpJson(R"({"resource_spans":[{"scope_spans":[{"spans":[
      {"trace_id":"5b8eff00123456789abcdef001020304","span_id":"eee19b7ec3c1b174",
       "kind":"SPAN_KIND_CLIENT"}]}]}]})", &request).ok());
  const auto& span = request.resource_spans(0).scope_spans(0).spans(0);
  EXPECT_EQ(span.trace_id(), kTraceId);
  EXPECT_EQ(span.kind(), opentelemetry::proto::trace::v1::Span::SPAN_KIND_CLIENT);
}

TEST(OtlpJson, LogsKeepTraceContextAndMetricsParse) {
  ExportLogsRequest logs;
  ASSERT_TRUE(ParseOtlpJson(R"({"resourceLogs":[{"scopeLogs":[{"logRecords":[
      {"timeUnixNano":"1","severityNumber":17,"body":{"stringValue":"boom"},
       "traceId":"5b8eff00123456789abcdef001020304","spanId":"eee19b7ec3c1b174"}]}]}]})", &logs).ok());
  const auto& record = logs.resource_logs(0).scope_logs(0).log_records(0);
  EXPECT_EQ(record.trace_id(), kTraceId);
  EXPECT_EQ(record.span_id(), kSpanId);
  EXPECT_EQ(record.severity_number(), opentelemetry::proto::logs::v1::SEVERITY_NUMBER_ERROR);

  ExportMetricsRequest metrics;
  ASSERT_TRUE(ParseOtlpJson(R"({"resourceMetrics":[{"scopeMetrics":[{"metrics":[
      {"name":"requests","sum":{"aggregationTemporality":2,"isMonotonic":true,
       "dataPoints":[{"asInt":"42","timeUnixNano":"9",
         "exemplars":[{"asDouble":1.5,"traceId":"5b8eff00123456789abcdef001020304","spanId":"eee19b7ec3c1b174"}]}]}},
      {"name":"latency","histogram":{"dataPoints":[{"count":"3","sum":1.5,"bucketCounts":["1","2"],"explicitBounds":[0.5]}]}}
      ]}]}]})", &metrics).ok());
  const auto& sum = metrics.resource_metrics(0).scope_metrics(0).metrics(0).sum();
  EXPECT_EQ(sum.data_points(0).as_int(), 42);
  EXPECT_EQ(sum.data_points(0).exemplars(0).trace_id(), kTraceId);
  const auto& hist = metrics.resource_metrics(0).scope_metrics(0).metrics(1).histogram();
  EXPECT_EQ(hist.data_points(0).count(), 3u);
  EXPECT_EQ(hist.data_points(0).bucket_counts(1), 2u);
}

TEST(OtlpJson, RejectsMalformedInput) {
  ExportTraceRequest request;
  EXPECT_FALSE(ParseOtlpJson("{", &request).ok());
  EXPECT_FALSE(ParseOtlpJson("[]", &request).ok());
  EXPECT_FALSE(ParseOtlpJson("\xff\xfe", &request).ok());
  EXPECT_FALSE(ParseOtlpJson(R"({"resourceSpans":{}})", &request).ok());  // not an array
  EXPECT_FALSE(ParseOtlpJson(R"({"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz0"}]}]}]})",
                             &request).ok());  // not hex
  EXPECT_FALSE(ParseOtlpJson(R"({"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"abc"}]}]}]})",
                             &request).ok());  // odd length
  EXPECT_FALSE(ParseOtlpJson(R"({"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"12x"}]}]}]})",
                             &request).ok());
  EXPECT_FALSE(ParseOtlpJson(R"({"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":1.5}]}]}]})",
                             &request).ok());
  // Deeply nested AnyValue: refused at the depth bound, no stack overflow.
  std::string deep = R"({"resourceSpans":[{"resource":{"attributes":[{"key":"k","value":)";
  for (int i = 0; i < 5000; ++i) deep += R"({"arrayValue":{"values":[)";
  deep += "{}";
  for (int i = 0; i < 5000; ++i) deep += "]}}";
  deep += "}]}}]}";
  EXPECT_FALSE(ParseOtlpJson(deep, &request).ok());
  // Deep JSON inside an unknown field is skipped.
  std::string deep_unknown = R"({"x":)" + std::string(3000, '[') + std::string(3000, ']') + "}";
  EXPECT_TRUE(ParseOtlpJson(deep_unknown, &request).ok());
  // 2 bytes per value would cost ~25x the body once parsed: refused unparsed (#17).
  std::string dense = R"({"x":)" + std::string(100000, '[') + std::string(100000, ']') + "}";
  absl::Status st = ParseOtlpJson(dense, &request);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(st.message()).find("too many values"), std::string::npos) << st;
}

TEST(OtlpJson, PrintRoundTripsWithHexIds) {
  ExportTraceRequest request = MakeTraceRequest(2);
  std::string json = PrintOtlpJson(request);
  EXPECT_NE(json.find(kTraceIdHex), std::string::npos);
  EXPECT_NE(json.find(R"("startTimeUnixNano":"1700000000000000000")"), std::string::npos);
  EXPECT_NE(json.find(R"("kind":2)"), std::string::npos);
  ExportTraceRequest back;
  ASSERT_TRUE(ParseOtlpJson(json, &back).ok());
  EXPECT_EQ(back.SerializeAsString(), request.SerializeAsString());
}

}  // namespace
}  // namespace sonde::otlp
