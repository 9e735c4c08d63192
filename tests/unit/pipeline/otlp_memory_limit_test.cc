// The OTLP memory limiter (issue #17) as the agent runs it: the OTLP
// component (receivers + the pipeline's SpanInbox, whose bytes count against
// the limit) with a pipeline that does not drain -- a stalled agent. Real
// clients push far more than the limit: curl over OTLP/HTTP and the
// generated gRPC stub. Past the soft limit they get 503 + Retry-After /
// RESOURCE_EXHAUSTED + RetryInfo, and the agent's memory stays bounded.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <map>

#include "tests/testlib/peak_rss.h"
#include "agent/pipeline/otlp_component.h"
#include "agent/pipeline/pipeline.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.grpc.pb.h"

namespace sonde::pipeline {
namespace {

namespace collector = opentelemetry::proto::collector;

using sonde::testlib::PeakRssKiB;

// `spans` spans of one trace, each with a 1 KiB attribute: ~1.1 KiB per span on the wire.
otlp::ExportTraceRequest Request(int spans, int seed) {
  otlp::ExportTraceRequest request;
  auto* rs = request.add_resource_spans();
  auto* attr = rs->mutable_resource()->add_attributes();
  attr->set_key("service.name");
  attr->mutable_value()->set_string_value("load");
  auto* ss = rs->add_scope_spans();
  for (int i = 0; i < spans; ++i) {
    auto* span = ss->add_spans();
    span->set_trace_id(std::string(15, '\x01') + static_cast<char>(seed));
    std::string id(8, '\0');
    id[0] = static_cast<char>(seed);
    id[6] = static_cast<char>(i >> 8);
    id[7] = static_cast<char>(i + 1);
    span->set_span_id(id);
    span->set_name("GET /load");
    span->set_kind(opentelemetry::proto::trace::v1::Span::SPAN_KIND_SERVER);
    span->set_start_time_unix_nano(1700000000000000000ull + static_cast<uint64_t>(i));
    span->set_end_time_unix_nano(1700000000005000000ull + static_cast<uint64_t>(i));
    auto* a = span->add_attributes();
    a->set_key("payload");
    a->mutable_value()->set_string_value(std::string(1024, static_cast<char>('a' + i % 26)));
  }
  return request;
}

class OtlpMemoryLimitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    otlp::OtlpConfig config;
    config.bind = {"127.0.0.1"};
    config.grpc_port = 0;
    config.http_port = 0;
    config.ingest.resolve_sender = false;
    config.ingest.retry_after_s = 3;
    config.ingest.memory.soft_bytes = 16u << 20;
    config.ingest.memory.hard_bytes = 20u << 20;
    component_ = std::make_unique<OtlpComponent>(config, nullptr);
    OtlpComponent* component = component_.get();
    agent_.AddComponent(std::move(component_));
    component_raw_ = component;
    // The component alone (not agent_.Start/Run): nothing drains the inbox.
    ASSERT_TRUE(component->Start(agent_).ok());
  }
  void TearDown() override { component_raw_->Stop(); }

  otlp::OtlpReceiver& receiver() { return component_raw_->receiver(); }

  static PipelineOptions Quiet() {
    PipelineOptions o;
    o.print_json = false;
    return o;
  }
  Agent agent_{Quiet()};
  std::unique_ptr<OtlpComponent> component_;
  OtlpComponent* component_raw_ = nullptr;
};

TEST_F(OtlpMemoryLimitTest, PastTheSoftLimitSendersAreToldToRetryAndMemoryStaysBounded) {
  const std::string path = ::testing::TempDir() + "/otlp_load.pb";
  {
    std::ofstream out(path, std::ios::binary);
    out << Request(2000, 1).SerializeAsString();  // ~2.3 MB per request
  }
  const long before = PeakRssKiB();
  // 150 POSTs (~340 MB offered) from curl; one line per response: status and Retry-After.
  const std::string url = "http://127.0.0.1:" + std::to_string(receiver().http_port()) + "/v1/traces";
  const std::string cmd = "for i in $(seq 150); do curl -sS -o /dev/null -D - -H 'Content-Type: application/x-protobuf' "
                          "--data-binary @" + path + " " + url +
                          " | tr -d '\\r' | awk '/^HTTP/{s=$2} tolower($1)==\"retry-after:\"{r=$2} END{print s, r}'; "
                          "done";
  std::map<std::string, int> outcomes;
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char line[256];
  while (std::fgets(line, sizeof(line), p) != nullptr) {
    std::string l(line);
    while (!l.empty() && (l.back() == '\n' || l.back() == ' ')) l.pop_back();
    ++outcomes[l];
  }
  ASSERT_EQ(WEXITSTATUS(pclose(p)), 0);
  const long after = PeakRssKiB();
  const uint64_t held = receiver().memory_limiter().Held(0);
  std::printf("150 x 2.3 MB OTLP/HTTP into a stalled agent (soft 16 MiB): ");
  for (const auto& [k, n] : outcomes) std::printf("[%s] x %d  ", k.c_str(), n);
  std::printf("\nheld %llu bytes, peak RSS %ld -> %ld KiB\n", static_cast<unsigned long long>(held), before, after);

  EXPECT_GE(outcomes["200"], 1);
  EXPECT_GE(outcomes["503 3"], 100);  // refused with the Retry-After the agent was given
  EXPECT_EQ(outcomes["200"] + outcomes["503 3"], 150);
  EXPECT_LE(held, 20u << 20);  // what was admitted stays under the hard limit
  EXPECT_GT(held, 8u << 20);   // and the inbox does hold it (the gauge is real)
  EXPECT_GE(receiver().stats().rejects(otlp::RejectReason::kMemoryLimit), 100u);
  // Without the limiter the inbox would keep 100,000 spans (~150 MB) before dropping.
  EXPECT_LT(after - before, 80 * 1024);

  // gRPC: RESOURCE_EXHAUSTED with a google.rpc.Status carrying RetryInfo.
  // Once the burst is over only the inbox holds bytes, which may sit just
  // under the soft limit (an HTTP body counts while it is read, a gRPC call
  // is admitted on what is held): the stalled pipeline keeps what each
  // admitted call adds, so within a few calls the agent refuses.
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(receiver().grpc_port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = collector::trace::v1::TraceService::NewStub(channel);
  grpc::Status st;
  for (int i = 0; i < 20 && st.ok(); ++i) {
    grpc::ClientContext ctx;
    collector::trace::v1::ExportTraceServiceResponse response;
    st = stub->Export(&ctx, Request(2000, 2), &response);
  }
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
  EXPECT_NE(st.error_details().find("google.rpc.RetryInfo"), std::string::npos);

  // /metrics says why.
  const std::string metrics = agent_.metrics_server().Render();
  EXPECT_NE(metrics.find("sonde_otlp_requests_rejected_total{reason=\"memory_limit\"}"), std::string::npos);
  EXPECT_NE(metrics.find("sonde_otlp_memory_held_bytes"), std::string::npos);
  EXPECT_NE(metrics.find("sonde_otlp_memory_limit_bytes{limit=\"soft\"} 16777216"), std::string::npos);
}

TEST_F(OtlpMemoryLimitTest, OnceTheQueueDrainsRequestsAreAcceptedAgain) {
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(receiver().grpc_port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = collector::trace::v1::TraceService::NewStub(channel);
  int accepted = 0;
  grpc::Status last;
  for (int i = 0; i < 20 && last.error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED; ++i) {
    grpc::ClientContext ctx;
    collector::trace::v1::ExportTraceServiceResponse response;
    last = stub->Export(&ctx, Request(2000, i), &response);
    accepted += last.ok();
  }
  ASSERT_EQ(last.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_GE(accepted, 3);
  component_raw_->Tick(0);  // the pipeline drains the inbox
  EXPECT_EQ(receiver().memory_limiter().Held(0), 0u);
  grpc::ClientContext ctx;
  collector::trace::v1::ExportTraceServiceResponse response;
  EXPECT_TRUE(stub->Export(&ctx, Request(2000, 99), &response).ok());
}

}  // namespace
}  // namespace sonde::pipeline
