// OTLP export from sonde-server into a real OTLP receiver started by the test
// (sonde-agent's own receivers, `sonde-agent otlp`, which pass the official
// SDK exporters' tests), over HTTP/protobuf configured by flags, over gRPC
// configured only by the OTEL_EXPORTER_OTLP_* variables, and over gRPC with
// TLS; the receiver requires a bearer token each time (headers). The spans
// and RED metrics of an agent's batch arrive with ids, parents, names,
// services and semconv attributes intact; the agent's resend is not
// exported twice.
#include <gtest/gtest.h>
#include <httplib.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "tests/e2e/clickhouse/agent_stream.h"
#include "tests/testlib/process.h"
#include "tests/testlib/wire_ids.h"

namespace sonde {
namespace {

using nlohmann::json;

uint64_t NowNs() { return testlib::WallClockNs(); }

std::string Bytes(uint64_t n, size_t len) { return testlib::TaggedId(n, len, 0x4d); }

using testlib::Hex;

enum class Mode { kHttpFlags, kGrpcEnvironment, kGrpcTls };

struct Case {
  const char* name;
  Mode mode;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class OtlpExportE2E : public ::testing::TestWithParam<Case> {};

std::vector<json> Lines(const std::string& path) {
  std::vector<json> out;
  std::istringstream in(testlib::ReadFile(path));
  for (std::string line; std::getline(in, line);) {
    json j = json::parse(line, nullptr, false);
    if (j.is_object()) out.push_back(std::move(j));
  }
  return out;
}

TEST_P(OtlpExportE2E, SpansAndMetricsArriveOnce) {
  const Case& c = GetParam();
  testlib::TempDir dir("sonde-otlp-export");
  const int grpc_port = testlib::FreeTcpPort(), http_port = testlib::FreeTcpPort();
  std::vector<std::string> receiver = {SONDE_AGENT_BIN, "otlp", "--otlp-grpc-port", std::to_string(grpc_port),
                                       "--otlp-http-port", std::to_string(http_port), "--otlp-bind", "127.0.0.1",
                                       "--otlp-token", "s3cret", "--otlp-no-sender-lookup"};
  if (c.mode == Mode::kGrpcTls) {
    SONDE_REQUIRE(testlib::CommandExists("openssl"), "openssl");
    int code = 0;
    testlib::RunCommand({"sh", "-c",
                         "openssl req -x509 -newkey rsa:2048 -nodes -keyout '" + dir.File("key.pem") + "' -out '" +
                             dir.File("cert.pem") +
                             "' -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1,DNS:localhost "
                             "2>/dev/null"},
                        &code);
    ASSERT_EQ(code, 0);
    receiver.insert(receiver.end(), {"--otlp-tls-cert", dir.File("cert.pem"), "--otlp-tls-key", dir.File("key.pem")});
  }
  auto receiver_process = testlib::Subprocess::Start(receiver, dir.File("received.jsonl"), dir.File("receiver.err"));
  ASSERT_TRUE(testlib::WaitForTcpPort("127.0.0.1", grpc_port, std::chrono::seconds(30)))
      << testlib::ReadFile(dir.File("receiver.err"));
  ASSERT_TRUE(testlib::WaitForTcpPort("127.0.0.1", http_port, std::chrono::seconds(30)));

  const int ingest_port = testlib::FreeTcpPort(), api_port = testlib::FreeTcpPort();
  std::vector<std::string> server = {SONDE_SERVER_BIN, "--data-dir", dir.File("data"), "--grpc-listen",
                                     "127.0.0.1:" + std::to_string(ingest_port), "--http-listen",
                                     "127.0.0.1:" + std::to_string(api_port)};
  switch (c.mode) {
    case Mode::kHttpFlags:
      server.insert(server.end(), {"--otlp-export", "http://127.0.0.1:" + std::to_string(http_port),
                                   "--otlp-protocol", "http/protobuf", "--otlp-header", "Authorization: Bearer s3cret"});
      break;
    case Mode::kGrpcEnvironment:
      setenv("OTEL_EXPORTER_OTLP_ENDPOINT", ("http://127.0.0.1:" + std::to_string(grpc_port)).c_str(), 1);
      setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", 1);
      setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20s3cret", 1);
      break;
    case Mode::kGrpcTls:
      server.insert(server.end(), {"--otlp-export", "https://127.0.0.1:" + std::to_string(grpc_port),
                                   "--otlp-protocol", "grpc", "--otlp-ca", dir.File("cert.pem"), "--otlp-header",
                                   "Authorization: Bearer s3cret"});
      break;
  }
  auto server_process = testlib::Subprocess::Start(server, dir.File("server.out"), dir.File("server.err"));
  unsetenv("OTEL_EXPORTER_OTLP_ENDPOINT");
  unsetenv("OTEL_EXPORTER_OTLP_PROTOCOL");
  unsetenv("OTEL_EXPORTER_OTLP_HEADERS");
  ASSERT_TRUE(testlib::WaitForTcpPort("127.0.0.1", ingest_port, std::chrono::seconds(30)))
      << testlib::ReadFile(dir.File("server.err"));

  const uint64_t t0 = NowNs() - 2'000'000'000ull;
  v1::Batch batch;
  batch.set_sequence(1);
  auto* root = batch.add_spans();
  root->set_trace_id(Bytes(7, 16));
  root->set_span_id(Bytes(1, 8));
  root->set_source(v1::SPAN_SOURCE_SYSTEM);
  root->set_kind(v1::SPAN_KIND_SERVER);
  root->set_name("GET /orders/{id}");
  root->set_endpoint("GET /orders/{id}");
  root->set_service_name("gateway");
  root->set_start_unix_ns(t0);
  root->set_end_unix_ns(t0 + 9'000'000);
  root->set_protocol(v1::L7_PROTOCOL_HTTP1);
  root->set_http_status(503);
  root->set_pid(4321);
  root->mutable_server()->set_address("10.1.0.2");
  root->mutable_server()->set_port(8080);
  root->mutable_client()->set_address("10.1.0.9");
  root->mutable_client()->set_port(51000);
  auto* call = batch.add_spans();
  *call = *root;
  call->set_span_id(Bytes(2, 8));
  call->set_parent_span_id(Bytes(1, 8));
  call->set_parent_reason(v1::LINK_REASON_THREAD);
  call->set_kind(v1::SPAN_KIND_CLIENT);
  call->set_name("GET /stock");
  call->set_http_status(200);
  auto* attr = call->add_attributes();
  attr->set_key("http.request.method");
  attr->set_string_value("GET");
  auto* red = batch.add_red();
  red->set_window_start_unix_ns(t0 - 10'000'000'000ull);
  red->set_window_end_unix_ns(t0);
  red->set_service_name("gateway");
  red->set_endpoint("GET /orders/{id}");
  red->set_status_class(5);
  red->set_is_server(true);
  red->set_requests(40);
  red->set_errors(40);
  {
    testing::AgentStream agent(ingest_port, "otlp-agent");
    ASSERT_EQ(agent.Send(batch), 1u) << agent.error();
  }
  {
    testing::AgentStream again(ingest_port, "otlp-agent");  // resend after a reconnect
    ASSERT_EQ(again.Send(batch), 1u) << again.error();
  }

  std::vector<json> spans;
  bool metrics_seen = false;
  for (int i = 0; i < 100 && (spans.size() < 2 || !metrics_seen); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    spans.clear();
    metrics_seen = false;
    for (auto& line : Lines(dir.File("received.jsonl"))) {
      if (line["type"] == "span") spans.push_back(line);
      if (line["type"] == "otlp_metrics" && line.dump().find("sonde.red.requests") != std::string::npos)
        metrics_seen = true;
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // a second (wrong) copy would be here by now
  spans.clear();
  int metric_lines = 0;
  std::string metrics_text;
  for (auto& line : Lines(dir.File("received.jsonl"))) {
    if (line["type"] == "span") spans.push_back(line);
    if (line["type"] == "otlp_metrics") {
      ++metric_lines;
      metrics_text += line.dump();
    }
  }
  ASSERT_EQ(spans.size(), 2u) << testlib::ReadFile(dir.File("received.jsonl"))
                              << testlib::ReadFile(dir.File("server.err"));
  EXPECT_EQ(metric_lines, 1);
  for (const auto& s : spans) {
    EXPECT_EQ(s["trace_id"], Hex(Bytes(7, 16)));
    EXPECT_EQ(s["service"], "gateway");
    if (s["span_id"] == Hex(Bytes(1, 8))) {
      EXPECT_EQ(s["name"], "GET /orders/{id}");
      EXPECT_EQ(s["kind"], 2);
      EXPECT_EQ(s["attributes"]["http.response.status_code"], 503);
      EXPECT_EQ(s["attributes"]["server.port"], 8080);
      EXPECT_EQ(s["attributes"]["client.address"], "10.1.0.9");
      EXPECT_EQ(s["attributes"]["sonde.source"], "S");
      EXPECT_EQ(s["parent_span_id"], "0000000000000000");  // a root (the receiver prints 8 zero bytes)
    } else {
      EXPECT_EQ(s["span_id"], Hex(Bytes(2, 8)));
      EXPECT_EQ(s["parent_span_id"], Hex(Bytes(1, 8)));
      EXPECT_EQ(s["kind"], 3);
      EXPECT_EQ(s["attributes"]["http.request.method"], "GET");
      EXPECT_EQ(s["attributes"]["sonde.parent_reason"], "LINK_REASON_THREAD");
    }
  }
  EXPECT_NE(metrics_text.find("sonde.red.requests"), std::string::npos);
  EXPECT_NE(metrics_text.find("\"40\""), std::string::npos) << metrics_text;  // asInt is a JSON string in OTLP/JSON

  httplib::Client api("127.0.0.1", api_port);
  auto m = api.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("sonde_server_otlp_export_spans_sent_total 2\n"), std::string::npos) << m->body;
  EXPECT_NE(m->body.find("sonde_server_otlp_export_dropped_requests_total 0\n"), std::string::npos);
  server_process.Stop();
  receiver_process.Stop();
}

INSTANTIATE_TEST_SUITE_P(Transports, OtlpExportE2E,
                         ::testing::Values(Case{"HttpProtobufFlags", Mode::kHttpFlags},
                                           Case{"GrpcEnvironment", Mode::kGrpcEnvironment},
                                           Case{"GrpcTls", Mode::kGrpcTls}),
                         [](const auto& p) { return std::string(p.param.name); });

}  // namespace
}  // namespace sonde
