// OTLP ingestion with real clients. The OpenTelemetry Node SDK (http
// instrumentation) runs a backend behind nginx and exports with each official
// exporter in turn (grpc, http/protobuf, http/protobuf+gzip, http/json) to the
// agent's OTLP receivers; curl sends requests carrying a traceparent.
// Asserted: every span the SDK reports exported arrives, each request's
// backend SERVER span is in the curl trace under the curl parent id, and the
// sender is resolved to the node process from the TCP connection.
// The HTTP status contract is checked with curl and protoc-encoded bodies.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "agent/otlp/receiver.h"
#include "tests/e2e/otlp/node_backend.h"
#include "tests/testlib/nginx.h"
#include "tests/testlib/process.h"

namespace sonde::otlp {
namespace {

using testlib::CommandExists;
using testlib::RunCommand;

class CollectingSink : public trace::SpanSink {
 public:
  void OnSpan(const trace::Span& span) override {
    std::lock_guard<std::mutex> lock(mu_);
    spans_.push_back(span);
  }
  std::vector<trace::Span> spans() {
    std::lock_guard<std::mutex> lock(mu_);
    return spans_;
  }

 private:
  std::mutex mu_;
  std::vector<trace::Span> spans_;
};

std::string Hex(const uint8_t* data, size_t n) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[data[i] >> 4]);
    out.push_back(kDigits[data[i] & 15]);
  }
  return out;
}

std::string RandomHex(std::mt19937_64& rng, size_t bytes) {
  std::vector<uint8_t> b(bytes);
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  b[0] |= 1;  // never all zero
  return Hex(b.data(), b.size());
}

using e2e::InstallNodeModules;

struct ExportLog {
  int exported_ok = 0;  // spans in batches the SDK reports exported (code 0)
  int failed = 0;
  bool shutdown = false;
};

ExportLog ParseExportLog(const std::string& path) {
  ExportLog log;
  std::istringstream in(testlib::ReadFile(path));
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) continue;
    if (j.value("event", "") == "export") {
      (j.value("code", 1) == 0 ? log.exported_ok : log.failed) += j.value("spans", 0);
    } else if (j.value("event", "") == "shutdown") {
      log.shutdown = true;
    }
  }
  return log;
}

class OtlpNodeSdkTest : public ::testing::TestWithParam<std::string> {};

TEST_P(OtlpNodeSdkTest, EveryExportedSpanArrivesInTheCurlTrace) {
  SONDE_REQUIRE(CommandExists("node") && CommandExists("npm"), "node and npm");
  SONDE_REQUIRE(!testlib::NginxBinary().empty(), "nginx");
  SONDE_REQUIRE(CommandExists("curl"), "curl");
  std::string why;
  SONDE_REQUIRE(InstallNodeModules(&why), why);
  const std::string mode = GetParam();

  CollectingSink sink;
  OtlpConfig config;
  config.bind = {"127.0.0.1"};
  config.grpc_port = 0;
  config.http_port = 0;
  OtlpReceiver receiver(config);
  receiver.AddSpanSink(&sink);
  ASSERT_TRUE(receiver.Start().ok());
  const int otlp_port = mode == "grpc" ? receiver.grpc_port() : receiver.http_port();

  testlib::TempDir dir("sonde-otlp-e2e");
  const int backend_port = testlib::FreeTcpPort();
  const std::string log_path = dir.File("backend.log");
  const std::string node_cmd =
      e2e::NodeBackendCommand(mode, "http://127.0.0.1:" + std::to_string(otlp_port), backend_port);
  auto backend = testlib::Subprocess::Start({"sh", "-c", node_cmd}, log_path, dir.File("backend.err"));
  ASSERT_TRUE(testlib::WaitForTcpPort("127.0.0.1", backend_port, std::chrono::seconds(20)))
      << testlib::ReadFile(dir.File("backend.err"));

  const int nginx_port = testlib::FreeTcpPort();
  testlib::Nginx nginx("upstream be { server 127.0.0.1:" + std::to_string(backend_port) +
                           "; keepalive 8; }\n"
                           "server { listen 127.0.0.1:" + std::to_string(nginx_port) + ";\n"
                           "  location / { proxy_pass http://be; proxy_http_version 1.1;\n"
                           "               proxy_set_header Connection \"\"; } }",
                       nginx_port);
  ASSERT_TRUE(nginx.ok()) << testlib::ReadFile(nginx.error_log());

  // curl requests through nginx, each in its own trace.
  std::mt19937_64 rng(std::random_device{}());
  std::map<std::string, std::string> parent_of_trace;  // trace id -> curl's parent span id
  constexpr int kRequests = 12;
  for (int i = 0; i < kRequests; ++i) {
    const std::string trace_id = RandomHex(rng, 16), parent = RandomHex(rng, 8);
    parent_of_trace[trace_id] = parent;
    int code = 0;
    std::string status = RunCommand(
        {"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H",
         "traceparent: 00-" + trace_id + "-" + parent + "-01",
         "http://127.0.0.1:" + std::to_string(nginx_port) + "/api/items/" + std::to_string(i)},
        &code);
    ASSERT_EQ(status, "200");
  }
  // SIGTERM makes the SDK flush and log its last export results.
  const pid_t node_pid = backend.pid();
  EXPECT_EQ(backend.Stop(std::chrono::seconds(20)), 0);
  ExportLog log = ParseExportLog(log_path);
  ASSERT_TRUE(log.shutdown) << testlib::ReadFile(log_path) << testlib::ReadFile(dir.File("backend.err"));
  EXPECT_EQ(log.failed, 0) << testlib::ReadFile(log_path);

  std::vector<trace::Span> spans;
  for (const auto& s : sink.spans()) {
    if (s.service_name == "e2e-backend") spans.push_back(s);
  }
  EXPECT_EQ(static_cast<int>(spans.size()), log.exported_ok) << "mode " << mode;
  EXPECT_GE(log.exported_ok, kRequests);

  // Each curl trace holds the backend's A SERVER span, parented by curl's span id
  // (nginx forwards traceparent unchanged), from the node process.
  std::set<std::string> traces_seen;
  for (const auto& s : spans) {
    EXPECT_EQ(s.source, trace::SpanSource::kApplication);
    EXPECT_EQ(s.pid, static_cast<uint32_t>(node_pid)) << "sender resolved from the connection";
    EXPECT_EQ(s.comm, "node");
    const std::string trace_id = Hex(s.trace_id.data(), 16);
    auto it = parent_of_trace.find(trace_id);
    if (it == parent_of_trace.end() || s.kind != trace::SpanKind::kServer) continue;
    traces_seen.insert(trace_id);
    EXPECT_EQ(Hex(s.parent_span_id.data(), 8), it->second);
    EXPECT_EQ(s.parent_reason, trace::LinkReason::kOtlpParent);
    EXPECT_EQ(s.http_status, 200);
    EXPECT_EQ(s.protocol, protocols::L7Protocol::kHttp1);
    EXPECT_EQ(s.endpoint.rfind("GET /api/items/", 0), 0u) << s.endpoint;
  }
  EXPECT_EQ(traces_seen.size(), parent_of_trace.size());
}

INSTANTIATE_TEST_SUITE_P(Exporters, OtlpNodeSdkTest,
                         ::testing::Values("grpc", "proto", "proto-gzip", "http"),
                         [](const auto& param_info) {
                           std::string n = param_info.param;
                           for (char& c : n) c = c == '-' ? '_' : c;
                           return n;
                         });

// The OTLP/HTTP status contract with curl and bodies encoded by protoc from
// the project's own .proto files (no hand-written OTLP client).
class OtlpHttpContractTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SONDE_REQUIRE(CommandExists("curl") && CommandExists("protoc") && CommandExists("gzip"),
                  "curl, protoc, gzip");
    config_.bind = {"127.0.0.1"};
    config_.grpc_port = -1;
    config_.http_port = 0;
    receiver_ = std::make_unique<OtlpReceiver>(config_);
    receiver_->AddSpanSink(&sink_);
    ASSERT_TRUE(receiver_->Start().ok());
    url_ = "http://127.0.0.1:" + std::to_string(receiver_->http_port()) + "/v1/traces";
  }
  // POSTs a file with curl; returns the HTTP status code.
  std::string CurlPost(const std::string& file, const std::vector<std::string>& headers) {
    std::vector<std::string> argv = {"curl", "-sS", "-o", dir_.File("response"), "-w", "%{http_code}"};
    for (const auto& h : headers) {
      argv.push_back("-H");
      argv.push_back(h);
    }
    argv.push_back("--data-binary");
    argv.push_back("@" + file);
    argv.push_back(url_);
    return RunCommand(argv);
  }
  std::string Shell(const std::string& command) {
    int code = 0;
    std::string out = RunCommand({"sh", "-c", command}, &code);
    EXPECT_EQ(code, 0) << command << ": " << out;
    return out;
  }

  OtlpConfig config_;
  CollectingSink sink_;
  std::unique_ptr<OtlpReceiver> receiver_;
  testlib::TempDir dir_{"sonde-otlp-contract"};
  std::string url_;
};

TEST_F(OtlpHttpContractTest, GzipProtobufFromProtocGets200MalformedGets400OversizeGets413) {
  const std::string text = dir_.File("request.txtpb");
  {
    std::ofstream out(text);
    out << R"(resource_spans {
  resource { attributes { key: "service.name" value { string_value: "protoc-client" } } }
  scope_spans { spans {
    trace_id: "\x4b\xf9\x2f\x35\x77\xb3\x4d\xa6\xa3\xce\x92\x9d\x0e\x0e\x47\x36"
    span_id: "\x00\xf0\x67\xaa\x0b\xa9\x02\xb7"
    name: "GET /checkout" kind: SPAN_KIND_SERVER
    start_time_unix_nano: 1700000000000000000 end_time_unix_nano: 1700000000002000000
    attributes { key: "http.method" value { string_value: "GET" } }
    attributes { key: "http.status_code" value { int_value: 201 } }
  } }
})";
  }
  const std::string proto_dir = std::string(SONDE_SOURCE_DIR) + "/proto";
  Shell("protoc -I'" + proto_dir +
        "' --encode=opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest "
        "opentelemetry/proto/collector/trace/v1/trace_service.proto < '" + text + "' > '" +
        dir_.File("request.pb") + "' && gzip -c '" + dir_.File("request.pb") + "' > '" +
        dir_.File("request.pb.gz") + "'");

  EXPECT_EQ(CurlPost(dir_.File("request.pb.gz"),
                     {"Content-Type: application/x-protobuf", "Content-Encoding: gzip"}),
            "200");
  auto spans = sink_.spans();
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_EQ(Hex(spans[0].trace_id.data(), 16), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(spans[0].http_status, 201);
  EXPECT_EQ(spans[0].comm, "curl");  // sender resolved from the connection

  Shell("head -c 4096 /dev/urandom > '" + dir_.File("garbage.bin") + "'");
  EXPECT_EQ(CurlPost(dir_.File("garbage.bin"), {"Content-Type: application/x-protobuf"}), "400");
  EXPECT_EQ(CurlPost(dir_.File("garbage.bin"),
                     {"Content-Type: application/x-protobuf", "Content-Encoding: gzip"}),
            "400");
  Shell("printf '{\"resourceSpans\": [{' > '" + dir_.File("bad.json") + "'");
  EXPECT_EQ(CurlPost(dir_.File("bad.json"), {"Content-Type: application/json"}), "400");
  EXPECT_NE(testlib::ReadFile(dir_.File("response")).find("\"code\":3"), std::string::npos);

  // Default limit: 64 MiB after decompression.
  Shell("head -c 67108865 /dev/zero > '" + dir_.File("big.bin") + "'");
  EXPECT_EQ(CurlPost(dir_.File("big.bin"), {"Content-Type: application/x-protobuf"}), "413");
  Shell("head -c 200000000 /dev/zero | gzip -c > '" + dir_.File("bomb.gz") + "'");
  EXPECT_EQ(CurlPost(dir_.File("bomb.gz"),
                     {"Content-Type: application/x-protobuf", "Content-Encoding: gzip"}),
            "413");
  EXPECT_EQ(receiver_->stats().rejects(RejectReason::kTooLarge), 2u);
  EXPECT_EQ(receiver_->stats().rejects(RejectReason::kBadPayload), 3u);
  // Still serving.
  EXPECT_EQ(CurlPost(dir_.File("request.pb"), {"Content-Type: application/x-protobuf"}), "200");
}

}  // namespace
}  // namespace sonde::otlp
