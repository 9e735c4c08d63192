// Two stateless sonde-server replicas on one clickhouse-server, all real
// processes started by the test. Agents (here: ingest clients speaking the
// agent's gRPC protocol, so the failover is exact) connect to either
// replica; a batch whose ack was lost is resent to the other replica after a
// failover and stored once; either replica answers every query; the client
// side of an exchange shipped through one replica and its server side
// through the other form one trace, on both replicas.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "tests/e2e/clickhouse/api_json.h"
#include "tests/e2e/clickhouse/agent_stream.h"
#include "tests/e2e/clickhouse/clickhouse_server.h"
#include "tests/testlib/process.h"
#include "tests/testlib/wire_ids.h"

namespace sonde {
namespace {

using nlohmann::json;

uint64_t NowNs() { return testlib::WallClockNs(); }

std::string Id(uint64_t n, size_t len) { return testlib::TaggedId(n, len, 0x3c); }

using testlib::Hex;

v1::Span SystemSpan(uint64_t trace, uint64_t id, v1::SpanKind kind, const std::string& service, uint64_t start,
                    uint32_t seq) {
  v1::Span s;
  s.set_trace_id(Id(trace, 16));
  s.set_span_id(Id(id, 8));
  s.set_source(v1::SPAN_SOURCE_SYSTEM);
  s.set_kind(kind);
  s.set_service_name(service);
  s.set_endpoint("GET /orders");
  s.set_name("GET /orders");
  s.set_start_unix_ns(start);
  s.set_end_unix_ns(start + 2'000'000);
  s.set_http_status(200);
  s.mutable_client()->set_address("10.20.0.1");
  s.mutable_client()->set_port(41000);
  s.mutable_server()->set_address("10.20.0.2");
  s.mutable_server()->set_port(8080);
  s.set_request_tcp_seq(seq);
  return s;
}

struct Replica {
  testlib::Subprocess process;
  int grpc_port = 0, http_port = 0;
};

Replica StartReplica(const std::string& storage, const testlib::TempDir& dir, const std::string& name) {
  Replica r;
  r.grpc_port = testlib::FreeTcpPort();
  r.http_port = testlib::FreeTcpPort();
  r.process = testlib::Subprocess::Start(
      {SONDE_SERVER_BIN, "--storage", storage, "--data-dir", dir.File(name), "--grpc-listen",
       "127.0.0.1:" + std::to_string(r.grpc_port), "--http-listen", "127.0.0.1:" + std::to_string(r.http_port)},
      dir.File(name + ".out"), dir.File(name + ".err"));
  return r;
}

std::string GetText(int port, const std::string& path, int* status = nullptr) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(30, 0);
  auto res = c.Get(path.c_str());
  if (status) *status = res ? res->status : 0;
  return res ? res->body : "";
}

using testing::GetJson;

TEST(ClickHouseReplicas, FailoverResendStoredOnceAndTraceJoinAcrossReplicas) {
  SONDE_REQUIRE(testing::ClickHouseInstalled(), "clickhouse-server (scripts/setup.sh)");
  std::string error;
  auto clickhouse = testing::ClickHouseServer::Start(&error);
  ASSERT_TRUE(clickhouse) << error;
  testlib::TempDir dir("sonde-replicas");
  const std::string storage = clickhouse->Url("sonde");
  Replica a = StartReplica(storage, dir, "a");
  Replica b = StartReplica(storage, dir, "b");
  for (const Replica* r : {&a, &b}) {
    ASSERT_TRUE(testlib::WaitForTcpPort("127.0.0.1", r->http_port, std::chrono::seconds(30)))
        << testlib::ReadFile(dir.File(r == &a ? "a.err" : "b.err"));
    ASSERT_TRUE(testlib::WaitForTcpPort("127.0.0.1", r->grpc_port, std::chrono::seconds(30)));
  }

  const uint64_t t0 = NowNs() - 10'000'000'000ull;
  // Node 1's agent ships to replica a: trace 1 = the web server's request and
  // its outgoing call (client side of the exchange with sequence 4242).
  v1::Batch n1_first;
  n1_first.set_sequence(1);
  *n1_first.add_spans() = SystemSpan(1, 1, v1::SPAN_KIND_SERVER, "web", t0, 1111);
  *n1_first.add_spans() = SystemSpan(1, 2, v1::SPAN_KIND_CLIENT, "web", t0 + 100'000, 4242);
  n1_first.mutable_spans(0)->clear_request_tcp_seq();  // its own client is a browser elsewhere
  n1_first.mutable_spans(1)->set_parent_span_id(Id(1, 8));
  v1::Batch n1_second;
  n1_second.set_sequence(2);
  for (uint64_t i = 0; i < 20; ++i) {
    auto s = SystemSpan(100 + i, 100 + i, v1::SPAN_KIND_SERVER, "web", t0 + 1'000'000 * i, 0);
    s.clear_request_tcp_seq();
    *n1_second.add_spans() = s;
  }
  {
    testing::AgentStream n1(a.grpc_port, "n1");
    ASSERT_EQ(n1.Send(n1_first), 1u) << n1.error();
    ASSERT_EQ(n1.Send(n1_second), 2u) << n1.error();
  }
  // Replica a "dies" before the agent saw the ack of batch 2: the agent
  // reconnects to replica b and resends batch 2, then goes on there.
  ASSERT_EQ(a.process.Stop(), 0);
  v1::Batch n1_third;
  n1_third.set_sequence(3);
  *n1_third.add_spans() = SystemSpan(300, 300, v1::SPAN_KIND_SERVER, "web", t0 + 50'000'000, 0);
  {
    testing::AgentStream n1(b.grpc_port, "n1");
    ASSERT_EQ(n1.Send(n1_second), 2u) << n1.error();  // acked, not stored again
    ASSERT_EQ(n1.Send(n1_third), 3u) << n1.error();
  }
  // Node 2's agent ships to replica b: trace 2 = the api server's side of
  // exchange 4242 (a root: its agent never saw the client) and a database call.
  v1::Batch n2;
  n2.set_sequence(1);
  *n2.add_spans() = SystemSpan(2, 3, v1::SPAN_KIND_SERVER, "api", t0 + 300'000, 4242);
  auto db = SystemSpan(2, 4, v1::SPAN_KIND_CLIENT, "api", t0 + 400'000, 0);
  db.clear_request_tcp_seq();
  db.set_parent_span_id(Id(3, 8));
  *n2.add_spans() = db;
  {
    testing::AgentStream n2s(b.grpc_port, "n2");
    ASSERT_EQ(n2s.Send(n2), 1u) << n2s.error();
  }
  // Replica a comes back (stateless: nothing to recover).
  a = StartReplica(storage, dir, "a2");
  ASSERT_TRUE(testlib::WaitForTcpPort("127.0.0.1", a.http_port, std::chrono::seconds(30)));

  // Stored once: 2 + 20 + 1 + 2 spans.
  EXPECT_EQ(clickhouse->Query("SELECT sum(n) FROM sonde.span_chunks"), "25\n");
  EXPECT_EQ(clickhouse->Query("SELECT count() FROM sonde.batches WHERE state = 1"), "4\n");

  for (const Replica* r : {&a, &b}) {
    SCOPED_TRACE(r == &a ? "replica a" : "replica b");
    // The exchange's two sides are one trace, looked up by either trace id.
    for (uint64_t trace : {1, 2}) {
      json t = GetJson(r->http_port, "/api/traces/" + Hex(Id(trace, 16)));
      ASSERT_TRUE(t.is_object());
      EXPECT_EQ(t["span_count"], 4);
      EXPECT_EQ(t["roots"].size(), 1u) << t.dump();
      int linked = 0;
      for (const auto& s : t["spans"])
        if (s["span_id"] == Hex(Id(3, 8)) && s["parent_index"].get<int>() >= 0) ++linked;
      EXPECT_EQ(linked, 1) << t.dump();
    }
    json found = GetJson(r->http_port, "/api/traces?last=1h&service=web&limit=100");
    ASSERT_TRUE(found.is_object());
    EXPECT_EQ(found["traces"].size(), 22u);  // trace 1, 20 single-span traces, trace 300
    json services = GetJson(r->http_port, "/api/services?last=1h");
    EXPECT_NE(services.dump().find("\"api\""), std::string::npos) << services.dump();
  }

  // The replicas' own metrics: replica b dropped the resent batch and served
  // two trace lookups (its 3 writes: the resend, n1 batch 3, n2 batch 1);
  // both are ready while ClickHouse is, b is not after.
  const std::string metrics = GetText(b.http_port, "/metrics");
  EXPECT_NE(metrics.find("sonde_server_ingest_duplicate_batches_total 1\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("sonde_server_ingest_batches_total 2\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("sonde_server_storage_operations_total{op=\"trace\"} 2\n"), std::string::npos);
  EXPECT_NE(metrics.find("sonde_server_storage_seconds_count{op=\"write_batch\"} 3\n"), std::string::npos);
  int status = 0;
  GetText(a.http_port, "/api/ready", &status);
  EXPECT_EQ(status, 200);
  clickhouse.reset();  // stops clickhouse-server
  const std::string body = GetText(b.http_port, "/api/ready", &status);
  EXPECT_EQ(status, 503) << body;
  GetText(b.http_port, "/api/health", &status);
  EXPECT_EQ(status, 200);  // liveness: the process itself is fine
  a.process.Stop();
  b.process.Stop();
}

}  // namespace
}  // namespace sonde
