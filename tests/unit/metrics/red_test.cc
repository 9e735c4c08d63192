#include <gtest/gtest.h>
#include <httplib.h>

#include "agent/metrics/prometheus_text.h"
#include "agent/metrics/red.h"
#include "agent/metrics/server.h"

namespace sonde::metrics {
namespace {

trace::Span MakeSpan(trace::SpanKind kind, int status, uint64_t end_ns, uint64_t dur_ns,
                     std::string route = "/users/{id}") {
  trace::Span s;
  s.kind = kind;
  s.service_name = "nginx";
  s.protocol = protocols::L7Protocol::kHttp1;
  s.http_status = status;
  s.end_unix_ns = end_ns;
  s.start_unix_ns = end_ns - dur_ns;
  s.attributes.push_back({"http.request.method", std::string("GET")});
  s.attributes.push_back({"http.route", route});
  if (status >= 500 || (kind == trace::SpanKind::kClient && status >= 400)) {
    s.status = trace::StatusCode::kError;
  }
  return s;
}

constexpr uint64_t kSec = 1'000'000'000;

TEST(Red, CountsErrorsAndBuckets) {
  RedAggregator red;
  red.OnSpan(MakeSpan(trace::SpanKind::kServer, 200, 100 * kSec, 3'000'000));    // 3 ms
  red.OnSpan(MakeSpan(trace::SpanKind::kServer, 200, 100 * kSec, 60'000'000));   // 60 ms
  red.OnSpan(MakeSpan(trace::SpanKind::kServer, 503, 100 * kSec, 20 * kSec));    // 20 s
  red.OnSpan(MakeSpan(trace::SpanKind::kClient, 404, 100 * kSec, 1'000'000));
  auto totals = red.Totals();
  ASSERT_EQ(totals.size(), 3u);
  RedKey ok{"nginx", "http1", "server", "GET", "/users/{id}", "200", "http"};
  ASSERT_TRUE(totals.count(ok));
  EXPECT_EQ(totals[ok].count, 2u);
  EXPECT_EQ(totals[ok].errors, 0u);
  EXPECT_EQ(totals[ok].buckets[0], 1u);  // <= 5 ms
  EXPECT_EQ(totals[ok].buckets[4], 1u);  // <= 75 ms
  RedKey err{"nginx", "http1", "server", "GET", "/users/{id}", "503", "http"};
  EXPECT_EQ(totals[err].errors, 1u);
  EXPECT_EQ(totals[err].buckets.back(), 1u);  // +Inf
  RedKey cli{"nginx", "http1", "client", "GET", "/users/{id}", "404", "http"};
  EXPECT_EQ(totals[cli].errors, 1u);

  std::string text;
  red.AppendPrometheus(text);
  EXPECT_NE(text.find("# TYPE http_server_request_duration_seconds histogram"), std::string::npos);
  // OpenTelemetry semantic-convention label names and values.
  EXPECT_NE(text.find("http_server_request_duration_seconds_bucket{service_name=\"nginx\","
                      "network_protocol_name=\"http\",network_protocol_version=\"1.1\",http_request_method=\"GET\","
                      "http_route=\"/users/{id}\",http_response_status_code=\"200\",url_scheme=\"http\","
                      "error_type=\"\",le=\"0.005\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("http_response_status_code=\"200\",url_scheme=\"http\",error_type=\"\",le=\"0.075\"} 2"),
            std::string::npos);
  // A failed request's error_type is its status code: 5xx on the server side,
  // 4xx too on the client side.
  EXPECT_NE(text.find("http_response_status_code=\"503\",url_scheme=\"http\",error_type=\"503\""),
            std::string::npos);
  EXPECT_NE(text.find("http_client_request_duration_seconds_count{service_name=\"nginx\",network_protocol_name=\"http\","
                      "network_protocol_version=\"1.1\",http_request_method=\"GET\",http_route=\"/users/{id}\","
                      "http_response_status_code=\"404\",url_scheme=\"http\",error_type=\"404\"} 1"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("http_status_class"), std::string::npos);
  EXPECT_NE(text.find("http_client_request_duration_seconds_count{"), std::string::npos);
  EXPECT_NE(text.find("sonde_http_server_request_errors_total{"), std::string::npos);
}

// gRPC has its own family (rpc_*_duration_seconds) with rpc_* labels; HTTP/2
// is network_protocol_version="2"; both pass through the same aggregator.
TEST(Red, GrpcAndHttp2FollowTheConventions) {
  RedAggregator red;
  trace::Span g = MakeSpan(trace::SpanKind::kServer, 200, 100 * kSec, 2'000'000, "/shop.Cart/AddItem");
  g.protocol = protocols::L7Protocol::kGrpc;
  g.grpc_status = 14;
  g.status = trace::StatusCode::kError;
  red.OnSpan(g);
  trace::Span h2 = MakeSpan(trace::SpanKind::kServer, 201, 100 * kSec, 1'000'000, "/orders");
  h2.protocol = protocols::L7Protocol::kHttp2;
  red.OnSpan(h2);
  std::string text;
  red.AppendPrometheus(text);
  EXPECT_NE(text.find("# TYPE rpc_server_duration_seconds histogram"), std::string::npos) << text;
  EXPECT_NE(text.find("rpc_server_duration_seconds_count{service_name=\"nginx\",rpc_system=\"grpc\","
                      "rpc_service=\"shop.Cart\",rpc_method=\"AddItem\",rpc_grpc_status_code=\"14\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("sonde_rpc_server_errors_total{"), std::string::npos);
  EXPECT_EQ(text.find("grpc_14"), std::string::npos);
  EXPECT_NE(text.find("http_server_request_duration_seconds_count{service_name=\"nginx\",network_protocol_name=\"http\","
                      "network_protocol_version=\"2\",http_request_method=\"GET\",http_route=\"/orders\","
                      "http_response_status_code=\"201\""),
            std::string::npos)
      << text;
  // gRPC calls are not in the HTTP family.
  EXPECT_EQ(text.find("http_server_request_duration_seconds_count{service_name=\"nginx\",rpc_system"),
            std::string::npos);
}

// Database and DNS series carry their own conventions' labels, not HTTP's.
TEST(Red, DatabaseAndDnsSeriesUseTheirConventions) {
  RedAggregator red;
  auto span = [](protocols::L7Protocol p, std::string op, std::string route) {
    trace::Span s = MakeSpan(trace::SpanKind::kClient, 0, 100 * kSec, 300'000);
    s.attributes.clear();
    s.protocol = p;
    s.operation = std::move(op);
    s.route = std::move(route);
    return s;
  };
  red.OnSpan(span(protocols::L7Protocol::kRedis, "GET", "GET"));
  red.OnSpan(span(protocols::L7Protocol::kPostgres, "SELECT", "SELECT pgbench_accounts"));
  red.OnSpan(span(protocols::L7Protocol::kDns, "AAAA", "example.test"));
  std::string text;
  red.AppendPrometheus(text);
  EXPECT_NE(text.find("db_client_operation_duration_seconds_count{service_name=\"nginx\",db_system_name=\"redis\","
                      "db_operation_name=\"GET\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("db_client_operation_duration_seconds_count{service_name=\"nginx\","
                      "db_system_name=\"postgresql\",db_operation_name=\"SELECT\","
                      "db_query_summary=\"SELECT pgbench_accounts\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("dns_lookup_duration_seconds_count{service_name=\"nginx\",dns_question_type=\"AAAA\","
                      "dns_question_name=\"example.test\"} 1"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("http_request_method=\"SELECT\""), std::string::npos);
}

TEST(Red, OneSecondWindows) {
  RedAggregator red;
  red.OnSpan(MakeSpan(trace::SpanKind::kServer, 200, 100 * kSec + 10, 1000));
  red.OnSpan(MakeSpan(trace::SpanKind::kServer, 200, 100 * kSec + 900'000'000, 1000));
  red.OnSpan(MakeSpan(trace::SpanKind::kServer, 200, 101 * kSec + 5, 1000));
  red.Tick(102 * kSec);  // within grace: nothing closed
  EXPECT_TRUE(red.TakeClosedWindows().empty());
  red.Tick(103 * kSec);
  auto w = red.TakeClosedWindows();
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].start_unix_ns, 100 * kSec);
  EXPECT_EQ(w[0].series.begin()->second.count, 2u);
  red.Tick(200 * kSec);
  w = red.TakeClosedWindows();
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].series.begin()->second.count, 1u);
}

TEST(Red, SeriesBoundedAndLabelsEscaped) {
  RedAggregator red(RedOptions{.max_series = 2});
  for (int i = 0; i < 5; ++i) red.OnSpan(MakeSpan(trace::SpanKind::kServer, 200, kSec, 1, "/r" + std::to_string(i)));
  EXPECT_EQ(red.Totals().size(), 3u);  // 2 + overflow
  EXPECT_EQ(red.overflowed(), 3u);
  EXPECT_EQ(prometheus::EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

// Keys that differ in one field, at each field length the equality treats
// on its own (1-3, 4-7, 8-16 bytes, longer), are separate series; equal
// keys built from other strings are one.
TEST(Red, KeysDifferingInOneByteAreSeparateSeries) {
  RedAggregator red;
  const std::vector<std::string> routes = {"/ab",         "/abc",          "/abcdefg",
                                           "/abcdefghijk", "/abcdefghijklmno", "/abcdefghijklmnopqrstuvwxyz"};
  for (const std::string& route : routes) {
    std::string other = route;
    other[other.size() / 2] = '#';  // differs inside, not at either end
    std::string last = route;
    last.back() = '#';
    for (int copy = 0; copy < 2; ++copy) {
      red.OnSpan(MakeSpan(trace::SpanKind::kServer, 200, 10 * kSec, 1000, std::string(route)));
      red.OnSpan(MakeSpan(trace::SpanKind::kServer, 200, 10 * kSec, 1000, other));
      red.OnSpan(MakeSpan(trace::SpanKind::kServer, 200, 10 * kSec, 1000, last));
    }
  }
  const auto totals = red.Totals();
  ASSERT_EQ(totals.size(), routes.size() * 3);
  for (const auto& [key, series] : totals) EXPECT_EQ(series.count, 2u) << key.route;
}

TEST(MetricsServer, ServesMetricsAndHealth) {
  RedAggregator red;
  red.OnSpan(MakeSpan(trace::SpanKind::kServer, 200, kSec, 1000));
  MetricsServer server;
  server.AddCollector([&](std::string& out) { red.AppendPrometheus(out); });
  server.AddCollector([](std::string& out) { prometheus::AppendCounter(out, "sonde_agent_events_total", "Events.", 42); });
  ASSERT_TRUE(server.Start("127.0.0.1", 0).ok());
  httplib::Client cli("127.0.0.1", server.port());
  auto res = cli.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_NE(res->body.find("sonde_agent_events_total 42"), std::string::npos);
  EXPECT_NE(res->body.find("http_server_request_duration_seconds_count"), std::string::npos);
  auto health = cli.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  server.Stop();
}

}  // namespace
}  // namespace sonde::metrics
