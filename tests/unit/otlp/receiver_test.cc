// The receivers over real sockets on loopback: HTTP (httplib client sending
// hand-made bodies) and gRPC (generated stub), status codes and bodies.
#include "tests/testlib/peak_rss.h"
#include "agent/otlp/receiver.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <spawn.h>
#include <sys/wait.h>

#include <fstream>
#include <mutex>

#include "agent/otlp/json_codec.h"
#include "agent/otlp/rpc_status.h"
#include "google/protobuf/unknown_field_set.h"
#include "opentelemetry/proto/collector/logs/v1/logs_service.grpc.pb.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.grpc.pb.h"
#include "test_util.h"

extern char** environ;

namespace sonde::otlp {
namespace {

using namespace sonde::otlp::testing;
using TraceResponse = opentelemetry::proto::collector::trace::v1::ExportTraceServiceResponse;

class CollectingSink : public trace::SpanSink, public OtlpSink {
 public:
  void OnSpan(const trace::Span& span) override {
    std::lock_guard<std::mutex> lock(mu);
    spans.push_back(span);
  }
  void OnMetrics(std::shared_ptr<const ExportMetricsRequest> m) override {
    std::lock_guard<std::mutex> lock(mu);
    metrics.push_back(std::move(m));
  }
  void OnLogs(std::shared_ptr<const ExportLogsRequest> l) override {
    std::lock_guard<std::mutex> lock(mu);
    logs.push_back(std::move(l));
  }
  size_t span_count() {
    std::lock_guard<std::mutex> lock(mu);
    return spans.size();
  }
  std::mutex mu;
  std::vector<trace::Span> spans;
  std::vector<std::shared_ptr<const ExportMetricsRequest>> metrics;
  std::vector<std::shared_ptr<const ExportLogsRequest>> logs;
};

class ReceiverTest : public ::testing::Test {
 protected:
  void StartReceiver(OtlpConfig config) {
    config.bind = {"127.0.0.1"};
    config.grpc_port = 0;
    config.http_port = 0;
    receiver_ = std::make_unique<OtlpReceiver>(std::move(config));
    receiver_->AddSpanSink(&sink_);
    receiver_->AddOtlpSink(&sink_);
    ASSERT_TRUE(receiver_->Start().ok());
    http_ = std::make_unique<httplib::Client>("127.0.0.1", receiver_->http_port());
  }
  void SetUp() override {
    OtlpConfig config;
    config.ingest.max_body_bytes = 1u << 20;
    StartReceiver(config);
  }
  httplib::Result Post(const std::string& path, const std::string& body, const std::string& type,
                       httplib::Headers headers = {}) {
    return http_->Post(path.c_str(), headers, body, type.c_str());
  }

  CollectingSink sink_;
  std::unique_ptr<OtlpReceiver> receiver_;
  std::unique_ptr<httplib::Client> http_;
};

TEST_F(ReceiverTest, HttpProtobufJsonAndGzipGetExactly200) {
  const std::string proto = MakeTraceRequest(3).SerializeAsString();
  auto r = Post("/v1/traces", proto, "application/x-protobuf");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/x-protobuf");
  TraceResponse response;
  EXPECT_TRUE(response.ParseFromString(r->body));
  EXPECT_FALSE(response.has_partial_success());

  r = Post("/v1/traces", PrintOtlpJson(MakeTraceRequest(2)), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(r->body, "{}");

  r = Post("/v1/traces", GzipCompress(proto), "application/x-protobuf", {{"Content-Encoding", "gzip"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  ASSERT_EQ(sink_.span_count(), 8u);
  EXPECT_EQ(sink_.spans[3].endpoint, "GET /users/42");
  EXPECT_EQ(receiver_->stats().accepted(Signal::kTraces), 8u);
}

TEST_F(ReceiverTest, PartialSuccessIsStill200) {
  ExportTraceRequest request = MakeTraceRequest(3);
  request.mutable_resource_spans(0)->mutable_scope_spans(0)->mutable_spans(1)->set_trace_id("short");
  auto r = Post("/v1/traces", PrintOtlpJson(request), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find(R"("rejectedSpans":"1")"), std::string::npos) << r->body;
  EXPECT_EQ(sink_.span_count(), 2u);
  EXPECT_EQ(receiver_->stats().rejected(Signal::kTraces), 1u);
}

// Receivers on loopback with ports the kernel picks.
OtlpConfig LoopbackEphemeralConfig() {
  OtlpConfig config;
  config.bind = {"127.0.0.1"};
  config.grpc_port = 0;
  config.http_port = 0;
  return config;
}

// `sonde-agent run` registers no OTLP metrics/logs sink: nothing would keep
// them, so they are refused in the response (all rejected, a clear message)
// and counted, not accepted and dropped.
TEST(ReceiverWithoutOtlpSink, MetricsAndLogsAreRefusedNotDropped) {
  OtlpReceiver receiver(LoopbackEphemeralConfig());
  ASSERT_TRUE(receiver.Start().ok());
  httplib::Client http("127.0.0.1", receiver.http_port());
  const std::string metrics = R"({"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"m",)"
                              R"("gauge":{"dataPoints":[{"asInt":"1"},{"asInt":"2"}]}}]}]}]})";
  auto r = http.Post("/v1/metrics", metrics, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find(R"("rejectedDataPoints":"2")"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("metrics are not stored"), std::string::npos) << r->body;
  const std::string logs = R"({"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"x"}}]}]}]})";
  r = http.Post("/v1/logs", logs, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find(R"("rejectedLogRecords":"1")"), std::string::npos) << r->body;
  EXPECT_EQ(receiver.stats().rejected(Signal::kMetrics), 2u);
  EXPECT_EQ(receiver.stats().rejected(Signal::kLogs), 1u);
  EXPECT_EQ(receiver.stats().accepted(Signal::kMetrics), 0u);
  receiver.Stop();
}

TEST_F(ReceiverTest, MalformedBodiesGet400WithRpcStatus) {
  auto r = Post("/v1/traces", "this is not protobuf \xff\xff\xff", "application/x-protobuf");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  google::protobuf::UnknownFieldSet status;
  ASSERT_TRUE(status.ParseFromString(r->body));
  EXPECT_EQ(status.field(0).varint(), 3u);  // INVALID_ARGUMENT

  r = Post("/v1/logs", "{\"resourceLogs\": [", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("\"code\":3"), std::string::npos);

  r = Post("/v1/traces", "garbage that is not gzip", "application/x-protobuf",
           {{"Content-Encoding", "gzip"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);

  r = Post("/v1/traces", "x", "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 415);
  r = Post("/v1/traces", "x", "application/json", {{"Content-Encoding", "zstd"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 415);
  EXPECT_GE(receiver_->stats().rejects(RejectReason::kBadPayload), 3u);
  EXPECT_EQ(receiver_->stats().rejects(RejectReason::kUnsupportedMedia), 2u);
}

TEST_F(ReceiverTest, OversizeAndZipBombsGet413) {
  auto r = Post("/v1/traces", std::string((1u << 20) + 10, 'a'), "application/x-protobuf");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  // 32 MiB inflating from ~32 KiB on the wire: stopped at the 1 MiB bound.
  http_ = std::make_unique<httplib::Client>("127.0.0.1", receiver_->http_port());
  r = Post("/v1/traces", GzipCompress(std::string(32u << 20, '\0')), "application/x-protobuf",
           {{"Content-Encoding", "gzip"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  google::protobuf::UnknownFieldSet status;
  ASSERT_TRUE(status.ParseFromString(r->body));
  EXPECT_EQ(status.field(0).varint(), 8u);  // RESOURCE_EXHAUSTED
  EXPECT_EQ(receiver_->stats().rejects(RejectReason::kTooLarge), 2u);
  // The receiver still works afterwards.
  http_ = std::make_unique<httplib::Client>("127.0.0.1", receiver_->http_port());
  r = Post("/v1/traces", MakeTraceRequest(1).SerializeAsString(), "application/x-protobuf");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(ReceiverTest, MetricsAndLogsReachTheOtlpSinkEnriched) {
  ExportLogsRequest logs;
  auto* record = logs.add_resource_logs()->add_scope_logs()->add_log_records();
  record->set_trace_id(kTraceId);
  record->set_span_id(kSpanId);
  record->mutable_body()->set_string_value("upstream failed");
  AddStringAttr(record->mutable_attributes(), "http.method", "GET");
  auto r = Post("/v1/logs", logs.SerializeAsString(), "application/x-protobuf");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  auto m = Post("/v1/metrics",
                R"({"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"n","gauge":{"dataPoints":[{"asDouble":1}]}}]}]}]})",
                "application/json");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 200);
  std::lock_guard<std::mutex> lock(sink_.mu);
  ASSERT_EQ(sink_.logs.size(), 1u);
  const auto& rl = sink_.logs[0]->resource_logs(0);
  EXPECT_EQ(rl.scope_logs(0).log_records(0).trace_id(), kTraceId);
  bool has_host = false, has_new_name = false;
  for (const auto& kv : rl.resource().attributes()) has_host |= kv.key() == "host.name";
  for (const auto& kv : rl.scope_logs(0).log_records(0).attributes()) {
    has_new_name |= kv.key() == "http.request.method";
  }
  EXPECT_TRUE(has_host);
  EXPECT_TRUE(has_new_name);
  ASSERT_EQ(sink_.metrics.size(), 1u);
  EXPECT_EQ(receiver_->stats().accepted(Signal::kMetrics), 1u);
}

TEST_F(ReceiverTest, GrpcExportIncludingGzip) {
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(receiver_->grpc_port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = opentelemetry::proto::collector::trace::v1::TraceService::NewStub(channel);
  for (bool gzip : {false, true}) {
    grpc::ClientContext ctx;
    if (gzip) ctx.set_compression_algorithm(GRPC_COMPRESS_GZIP);
    TraceResponse response;
    grpc::Status st = stub->Export(&ctx, MakeTraceRequest(4), &response);
    EXPECT_TRUE(st.ok()) << st.error_message();
  }
  EXPECT_EQ(sink_.span_count(), 8u);
  EXPECT_EQ(receiver_->stats().requests(Transport::kGrpc, Signal::kTraces), 2u);
  // gRPC's own size limit (1 MiB here) applies after decompression.
  grpc::ClientContext ctx;
  ctx.set_compression_algorithm(GRPC_COMPRESS_GZIP);
  ExportTraceRequest big = MakeTraceRequest(1);
  AddStringAttr(big.mutable_resource_spans(0)->mutable_resource()->mutable_attributes(), "pad",
                std::string(2u << 20, 'x'));
  TraceResponse response;
  EXPECT_EQ(stub->Export(&ctx, big, &response).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

// Raw bytes to TraceService/Export, as any client could send them.
grpc::Status RawTraceExport(const std::shared_ptr<grpc::Channel>& channel, const std::string& bytes,
                            grpc::ByteBuffer* response) {
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1);
  auto call = stub.PrepareUnaryCall(&ctx, "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                                    request, &cq);
  call->StartCall();
  grpc::Status status;
  call->Finish(response, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  EXPECT_TRUE(cq.Next(&tag, &ok));
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return status;
}

TEST_F(ReceiverTest, GrpcMalformedBodyIsInvalidArgumentAndBadSpansArePartialSuccess) {
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(receiver_->grpc_port()),
                                     grpc::InsecureChannelCredentials());
  grpc::ByteBuffer response;
  const std::string body = MakeTraceRequest(2).SerializeAsString();
  grpc::Status st = RawTraceExport(channel, body.substr(0, body.size() - 5), &response);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  EXPECT_EQ(receiver_->stats().rejects(RejectReason::kBadPayload), 1u);
  EXPECT_EQ(sink_.span_count(), 0u);

  // One span with a bad trace id among three: two delivered, one counted in partial_success.
  ExportTraceRequest request = MakeTraceRequest(3);
  request.mutable_resource_spans(0)->mutable_scope_spans(0)->mutable_spans(1)->set_trace_id("short");
  st = RawTraceExport(channel, request.SerializeAsString(), &response);
  ASSERT_TRUE(st.ok()) << st.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const auto& slice : slices) bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  TraceResponse decoded;
  ASSERT_TRUE(decoded.ParseFromString(bytes));
  EXPECT_EQ(decoded.partial_success().rejected_spans(), 1);
  EXPECT_NE(decoded.partial_success().error_message().find("trace id"), std::string::npos);
  EXPECT_EQ(sink_.span_count(), 2u);
}

TEST_F(ReceiverTest, GrpcLargeBatchAcrossManySlicesArrivesIntact) {
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(receiver_->grpc_port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = opentelemetry::proto::collector::trace::v1::TraceService::NewStub(channel);
  ExportTraceRequest request = MakeTraceRequest(1500);  // ~200 KiB: several HTTP/2 frames
  for (auto& span : *request.mutable_resource_spans(0)->mutable_scope_spans(0)->mutable_spans()) {
    AddStringAttr(span.mutable_attributes(), "padding", std::string(64, 'p'));
  }
  ASSERT_GT(request.ByteSizeLong(), 150u << 10);
  grpc::ClientContext ctx;
  TraceResponse response;
  ASSERT_TRUE(stub->Export(&ctx, request, &response).ok());
  ASSERT_EQ(sink_.span_count(), 1500u);
  std::lock_guard<std::mutex> lock(sink_.mu);
  const trace::Span& last = sink_.spans.back();
  EXPECT_EQ(last.service_name, "kong");
  EXPECT_EQ(last.endpoint, "GET /users/42");
  EXPECT_EQ(last.http_status, 200);
  bool has_padding = false;
  for (const auto& a : last.attributes) has_padding |= a.key == "padding";
  EXPECT_TRUE(has_padding);
}

TEST_F(ReceiverTest, SenderProcessIsResolvedFromTheConnection) {
  const std::string path = ::testing::TempDir() + "/otlp_req.pb";
  {
    std::ofstream out(path, std::ios::binary);
    out << MakeTraceRequest(1).SerializeAsString();
  }
  const std::string url = "http://127.0.0.1:" + std::to_string(receiver_->http_port()) + "/v1/traces";
  const std::string data = "@" + path;
  const char* argv[] = {"curl", "-sS", "-o", "/dev/null", "-H", "Content-Type: application/x-protobuf",
                        "--data-binary", data.c_str(), url.c_str(), nullptr};
  pid_t pid = 0;
  if (posix_spawnp(&pid, "curl", nullptr, nullptr, const_cast<char**>(argv), environ) != 0) {
    GTEST_SKIP() << "curl not available";
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_EQ(WEXITSTATUS(status), 0);
  ASSERT_EQ(sink_.span_count(), 1u);
  EXPECT_EQ(sink_.spans[0].pid, static_cast<uint32_t>(pid));
  EXPECT_EQ(sink_.spans[0].comm, "curl");
}

TEST_F(ReceiverTest, OverloadGives503AndUnavailableWithRetryHint) {
  OtlpConfig config;
  config.ingest.max_inflight_requests = 0;  // every request is over the limit
  config.ingest.retry_after_s = 7;
  receiver_.reset();
  StartReceiver(config);
  auto r = Post("/v1/traces", MakeTraceRequest(1).SerializeAsString(), "application/x-protobuf");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->get_header_value("Retry-After"), "7");
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(receiver_->grpc_port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = opentelemetry::proto::collector::trace::v1::TraceService::NewStub(channel);
  grpc::ClientContext ctx;
  TraceResponse response;
  grpc::Status st = stub->Export(&ctx, MakeTraceRequest(1), &response);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_FALSE(st.error_details().empty());  // google.rpc.Status with RetryInfo
  EXPECT_EQ(receiver_->stats().rejects(RejectReason::kOverloaded), 2u);
  EXPECT_EQ(sink_.span_count(), 0u);
}

// curl sends "Expect: 100-continue" with bodies over 1 MiB: a shed request
// is answered 503 before the body is sent (was "100 Continue", then a 503
// and a close while curl was still sending: "Send failure: Broken pipe").
TEST_F(ReceiverTest, ShedLargeBodiesAreAnsweredBeforeTheyAreSent) {
  OtlpConfig config;
  config.ingest.max_inflight_requests = 0;  // every request is over the limit
  config.ingest.retry_after_s = 5;
  receiver_.reset();
  StartReceiver(config);
  const std::string path = ::testing::TempDir() + "/otlp_big.pb";
  {
    std::ofstream out(path, std::ios::binary);
    ExportTraceRequest big = MakeTraceRequest(1);
    AddStringAttr(big.mutable_resource_spans(0)->mutable_resource()->mutable_attributes(), "pad",
                  std::string(900u << 10, 'x'));
    AddStringAttr(big.mutable_resource_spans(0)->mutable_resource()->mutable_attributes(), "pad2",
                  std::string(900u << 10, 'y'));
    out << big.SerializeAsString();
  }
  const std::string cmd = "curl -sS -o /dev/null -D - -H 'Content-Type: application/x-protobuf' --data-binary @" +
                          path + " http://127.0.0.1:" + std::to_string(receiver_->http_port()) + "/v1/traces 2>&1";
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int rc = pclose(p);
  EXPECT_EQ(WEXITSTATUS(rc), 0) << out;
  EXPECT_NE(out.find("503"), std::string::npos) << out;
  EXPECT_EQ(out.find("100 Continue"), std::string::npos) << out;
  EXPECT_NE(out.find("Retry-After: 5"), std::string::npos) << out;
  EXPECT_EQ(sink_.span_count(), 0u);
}

TEST_F(ReceiverTest, BearerToken) {
  OtlpConfig config;
  config.bearer_token = "s3cret";
  receiver_.reset();
  StartReceiver(config);
  const std::string body = MakeTraceRequest(1).SerializeAsString();
  auto r = Post("/v1/traces", body, "application/x-protobuf");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  r = Post("/v1/traces", body, "application/x-protobuf", {{"Authorization", "Bearer wrong"}});
  EXPECT_EQ(r->status, 401);
  r = Post("/v1/traces", body, "application/x-protobuf", {{"Authorization", "Bearer s3cret"}});
  EXPECT_EQ(r->status, 200);

  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(receiver_->grpc_port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = opentelemetry::proto::collector::trace::v1::TraceService::NewStub(channel);
  TraceResponse response;
  grpc::ClientContext anonymous;
  EXPECT_EQ(stub->Export(&anonymous, MakeTraceRequest(1), &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext authorized;
  authorized.AddMetadata("authorization", "Bearer s3cret");
  EXPECT_TRUE(stub->Export(&authorized, MakeTraceRequest(1), &response).ok());
}

TEST(CaptureExclusion, ReportsPidAndPortsUnlessTracingSelf) {
  OtlpConfig config = LoopbackEphemeralConfig();
  OtlpReceiver receiver(config);
  ASSERT_TRUE(receiver.Start().ok());
  CaptureExclusion ex = receiver.capture_exclusion();
  EXPECT_EQ(ex.pid, static_cast<uint32_t>(getpid()));
  ASSERT_EQ(ex.ports.size(), 2u);
  EXPECT_EQ(ex.ports[0], receiver.grpc_port());
  EXPECT_EQ(ex.ports[1], receiver.http_port());
}

TEST(BindAddresses, DefaultIsLoopbackPlusPrimary) {
  auto addrs = DefaultBindAddresses();
  ASSERT_FALSE(addrs.empty());
  EXPECT_EQ(addrs[0], "127.0.0.1");
  for (const auto& a : addrs) EXPECT_NE(a, "0.0.0.0");
  EXPECT_EQ(ParseBindList("127.0.0.1, ::1"), (std::vector<std::string>{"127.0.0.1", "::1"}));
}

// Hostile OTLP/HTTP input (issue #17): bounded before decoding, with this
// process's peak RSS (VmHWM) before and after each input.
using sonde::testlib::PeakRssKiB;

class HostileReceiverTest : public ReceiverTest {
 protected:
  void SetUp() override {
    OtlpConfig config;
    config.ingest.max_body_bytes = 64u << 20;  // the default
    StartReceiver(config);
  }
};

TEST_F(HostileReceiverTest, EmptyAttributesAreRefusedBeforeDecoding) {
  // One span holding 15M empty attributes (field 9, length 0): 30 MiB that
  // protobuf would turn into ~800 MB of messages.
  std::string span;
  span.reserve(30u << 20);
  for (int i = 0; i < 15'000'000; ++i) span.append("\x4a\x00", 2);
  auto wrap = [](int field, const std::string& inner) {
    std::string out(1, static_cast<char>(field << 3 | 2));
    uint64_t n = inner.size();
    while (n >= 0x80) {
      out.push_back(static_cast<char>(n | 0x80));
      n >>= 7;
    }
    out.push_back(static_cast<char>(n));
    return out + inner;
  };
  std::string body = wrap(1, wrap(2, wrap(2, span)));  // resource_spans.scope_spans.spans
  std::string().swap(span);
  const long before = PeakRssKiB();
  auto r = Post("/v1/traces", body, "application/x-protobuf");
  const long after = PeakRssKiB();
  ASSERT_TRUE(r);
  std::printf("30 MiB of empty attributes: %d, peak RSS %ld -> %ld KiB\n", r->status, before, after);
  EXPECT_EQ(r->status, 400);
  EXPECT_LT(after - before, 100 * 1024);  // the body itself (30 MiB, buffered once), not 800 MB
  EXPECT_EQ(sink_.span_count(), 0u);
}

TEST_F(HostileReceiverTest, MillionsOfEmptyJsonObjectsAreRefused) {
  std::string body = R"({"resourceSpans":[)";
  for (int i = 0; i < 3'000'000; ++i) body += "{},";
  body += "{}]}";
  const long before = PeakRssKiB();
  auto r = Post("/v1/traces", body, "application/json");
  const long after = PeakRssKiB();
  ASSERT_TRUE(r);
  std::printf("9 MB of {} as JSON: %d %s, peak RSS %ld -> %ld KiB\n", r->status, r->body.substr(0, 80).c_str(),
              before, after);
  EXPECT_EQ(r->status, 400);
  EXPECT_LT(after - before, 40 * 1024);
}

TEST_F(HostileReceiverTest, BodiesOnOtherPathsAre413Unread) {
  const long before = PeakRssKiB();
  httplib::Headers chunked;
  auto r = http_->Post("/v2/anything", 512u << 20,
                       [](size_t offset, size_t length, httplib::DataSink& sink) {
                         static const std::string block(1 << 20, 'x');
                         return sink.write(block.data(), std::min(length, block.size())) || offset == 0;
                       },
                       "application/octet-stream");
  const long after = PeakRssKiB();
  std::printf("POST 512 MiB to an unknown path: %d, peak RSS %ld -> %ld KiB\n", r ? r->status : 0, before, after);
  if (r) {  // else the connection closed while the client was still sending
    EXPECT_EQ(r->status, 413);
  }
  EXPECT_LT(after - before, 16 * 1024);
}

}  // namespace
}  // namespace sonde::otlp
