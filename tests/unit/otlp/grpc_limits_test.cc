// OTLP/gRPC (:4317) refuses oversize and compressed-bomb messages before they
// are held whole (issue #17): gRPC checks the wire size, the receiver inflates
// compressed messages itself, never past the body limit. Real clients: the
// generated stub, and curl speaking gRPC over HTTP/2 with a pre-compressed
// message (tests/testlib/grpc_wire.h).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <fstream>
#include <mutex>

#include "tests/testlib/peak_rss.h"
#include "agent/otlp/receiver.h"
#include "opentelemetry/proto/collector/logs/v1/logs_service.grpc.pb.h"
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.grpc.pb.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.grpc.pb.h"
#include "test_util.h"
#include "tests/testlib/grpc_wire.h"

namespace sonde::otlp {
namespace {

using namespace sonde::otlp::testing;
namespace collector = opentelemetry::proto::collector;

using sonde::testlib::PeakRssKiB;

class CountingSink : public trace::SpanSink, public OtlpSink {
 public:
  void OnSpan(const trace::Span&) override { ++spans; }
  void OnMetrics(std::shared_ptr<const ExportMetricsRequest>) override { ++metrics; }
  void OnLogs(std::shared_ptr<const ExportLogsRequest>) override { ++logs; }
  std::atomic<int> spans{0}, metrics{0}, logs{0};
};

class GrpcLimitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    OtlpConfig config;
    config.bind = {"127.0.0.1"};
    config.grpc_port = 0;
    config.http_port = -1;
    config.ingest.max_body_bytes = 64u << 20;  // the default
    receiver_ = std::make_unique<OtlpReceiver>(config);
    receiver_->AddSpanSink(&sink_);
    receiver_->AddOtlpSink(&sink_);
    ASSERT_TRUE(receiver_->Start().ok());
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(receiver_->grpc_port()),
                                   grpc::InsecureChannelCredentials());
  }
  CountingSink sink_;
  std::unique_ptr<OtlpReceiver> receiver_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(GrpcLimitsTest, GzipBombIsRefusedWhileInflating) {
  const std::string path = ::testing::TempDir() + "/otlp_grpc_bomb.bin";
  {
    std::ofstream out(path, std::ios::binary);
    out << sonde::testing::GzipBombGrpcMessage(256u << 20);  // ~256 KiB on the wire
  }
  const long before = PeakRssKiB();
  const std::string head = sonde::testing::CurlGrpc(receiver_->grpc_port(), "opentelemetry.proto.collector.trace.v1.TraceService/Export", path);
  const long after = PeakRssKiB();
  std::printf("gRPC message of 256 KiB gzip inflating to 256 MiB: %s peak RSS %ld -> %ld KiB\n",
              head.substr(head.find("grpc-status")).c_str(), before, after);
  if (head.find("HTTP/2") == std::string::npos) GTEST_SKIP() << "curl without HTTP/2: " << head;
  EXPECT_NE(head.find("grpc-status: 8"), std::string::npos) << head;  // RESOURCE_EXHAUSTED
  EXPECT_NE(head.find("exceeds"), std::string::npos) << head;
  EXPECT_LT(after - before, 100 * 1024);  // the 64 MiB limit at most, not 256 MiB (was +356 MB)
  EXPECT_EQ(receiver_->stats().rejects(RejectReason::kTooLarge), 1u);
  EXPECT_EQ(sink_.spans.load(), 0);
}

TEST_F(GrpcLimitsTest, OversizeOnTheWireIsRefusedBeforeItIsRead) {
  auto stub = collector::trace::v1::TraceService::NewStub(channel_);
  ExportTraceRequest big = MakeTraceRequest(1);
  AddStringAttr(big.mutable_resource_spans(0)->mutable_resource()->mutable_attributes(), "pad",
                std::string(65u << 20, 'x'));
  grpc::ClientContext ctx;
  collector::trace::v1::ExportTraceServiceResponse response;
  grpc::Status st = stub->Export(&ctx, big, &response);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
  EXPECT_EQ(sink_.spans.load(), 0);
}

TEST_F(GrpcLimitsTest, CompressedExportsOfEverySignalStillArrive) {
  for (bool gzip : {false, true}) {
    grpc::ClientContext t, m, l;
    if (gzip) {
      for (grpc::ClientContext* c : {&t, &m, &l}) c->set_compression_algorithm(GRPC_COMPRESS_GZIP);
    }
    collector::trace::v1::ExportTraceServiceResponse tr;
    EXPECT_TRUE(collector::trace::v1::TraceService::NewStub(channel_)->Export(&t, MakeTraceRequest(3), &tr).ok());
    ExportMetricsRequest metrics;
    auto* metric = metrics.add_resource_metrics()->add_scope_metrics()->add_metrics();
    metric->set_name("requests");
    metric->mutable_gauge()->add_data_points()->set_as_int(std::string(4096, 'a').size());
    collector::metrics::v1::ExportMetricsServiceResponse mr;
    EXPECT_TRUE(collector::metrics::v1::MetricsService::NewStub(channel_)->Export(&m, metrics, &mr).ok());
    ExportLogsRequest logs;
    logs.add_resource_logs()->add_scope_logs()->add_log_records()->mutable_body()->set_string_value(
        std::string(4096, 'l'));
    collector::logs::v1::ExportLogsServiceResponse lr;
    EXPECT_TRUE(collector::logs::v1::LogsService::NewStub(channel_)->Export(&l, logs, &lr).ok());
  }
  EXPECT_EQ(sink_.spans.load(), 6);
  EXPECT_EQ(sink_.metrics.load(), 2);
  EXPECT_EQ(sink_.logs.load(), 2);
}

}  // namespace
}  // namespace sonde::otlp
