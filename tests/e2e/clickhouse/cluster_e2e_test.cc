// A sharded ClickHouse cluster under two sonde-server replicas, all real
// processes started by the test: two clickhouse-server processes are the two
// shards of cluster `sonde_shards` (remote_servers), each replica talks to
// its own shard node through Distributed tables over local MergeTree tables
// (span rows sharded by trace id). Spans land on both shards, either replica
// answers for every trace, a batch resent to the other replica is stored
// once, and the trace join works across replicas and shards.
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

std::string Id(uint64_t n, size_t len) { return testlib::TaggedId(n, len, 0x2e); }

using testlib::Hex;

v1::Span ServerSpan(uint64_t trace, uint64_t id, const std::string& service, uint64_t start) {
  v1::Span s;
  s.set_trace_id(Id(trace, 16));
  s.set_span_id(Id(id, 8));
  s.set_source(v1::SPAN_SOURCE_SYSTEM);
  s.set_kind(v1::SPAN_KIND_SERVER);
  s.set_service_name(service);
  s.set_endpoint("GET /items");
  s.set_name("GET /items");
  s.set_start_unix_ns(start);
  s.set_end_unix_ns(start + 1'000'000);
  s.set_http_status(200);
  return s;
}

// Client endpoint + request sequence: the exchange key of the join.
void SetExchange(v1::Span* s, uint32_t seq) {
  s->mutable_client()->set_address("10.30.0.1");
  s->mutable_client()->set_port(42000);
  s->mutable_server()->set_address("10.30.0.2");
  s->mutable_server()->set_port(80);
  s->set_request_tcp_seq(seq);
}

using testing::GetJson;

TEST(ClickHouseCluster, TwoShardsTwoReplicas) {
  SONDE_REQUIRE(testing::ClickHouseInstalled(), "clickhouse-server (scripts/setup.sh)");
  const int http1 = testlib::FreeTcpPort(), tcp1 = testlib::FreeTcpPort();
  int http2 = testlib::FreeTcpPort(), tcp2 = testlib::FreeTcpPort();
  while (http2 == http1 || http2 == tcp1) http2 = testlib::FreeTcpPort();
  while (tcp2 == http1 || tcp2 == tcp1 || tcp2 == http2) tcp2 = testlib::FreeTcpPort();
  const std::string cluster = "<sonde_shards><shard><replica><host>127.0.0.1</host><port>" + std::to_string(tcp1) +
                              "</port></replica></shard><shard><replica><host>127.0.0.1</host><port>" +
                              std::to_string(tcp2) + "</port></replica></shard></sonde_shards>";
  std::string error;
  auto shard1 = testing::ClickHouseServer::Start(&error, cluster, http1, tcp1);
  ASSERT_TRUE(shard1) << error;
  auto shard2 = testing::ClickHouseServer::Start(&error, cluster, http2, tcp2);
  ASSERT_TRUE(shard2) << error;
  const std::string options = "?cluster=sonde_shards&shards=127.0.0.1:" + std::to_string(http1) +
                              ",127.0.0.1:" + std::to_string(http2);

  testlib::TempDir dir("sonde-cluster");
  struct Replica {
    testlib::Subprocess process;
    int grpc_port, http_port;
  };
  auto start = [&](const std::string& url, const std::string& name) {
    Replica r{{}, testlib::FreeTcpPort(), testlib::FreeTcpPort()};
    r.process = testlib::Subprocess::Start(
        {SONDE_SERVER_BIN, "--storage", url, "--data-dir", dir.File(name), "--grpc-listen",
         "127.0.0.1:" + std::to_string(r.grpc_port), "--http-listen", "127.0.0.1:" + std::to_string(r.http_port)},
        dir.File(name + ".out"), dir.File(name + ".err"));
    return r;
  };
  // Replica a opens the schema first (local tables on both shards), then b.
  Replica a = start("clickhouse://127.0.0.1:" + std::to_string(http1) + "/sonde" + options, "a");
  ASSERT_TRUE(testlib::WaitForTcpPort("127.0.0.1", a.http_port, std::chrono::seconds(60)))
      << testlib::ReadFile(dir.File("a.err"));
  Replica b = start("clickhouse://127.0.0.1:" + std::to_string(http2) + "/sonde" + options, "b");
  ASSERT_TRUE(testlib::WaitForTcpPort("127.0.0.1", b.http_port, std::chrono::seconds(60)))
      << testlib::ReadFile(dir.File("b.err"));
  ASSERT_TRUE(testlib::WaitForTcpPort("127.0.0.1", a.grpc_port, std::chrono::seconds(30)));
  ASSERT_TRUE(testlib::WaitForTcpPort("127.0.0.1", b.grpc_port, std::chrono::seconds(30)));

  const uint64_t t0 = NowNs() - 20'000'000'000ull;
  // Node 1 -> replica a: 40 one-span traces, and the client side of the
  // exchange with sequence 9000 (trace 100).
  v1::Batch first;
  first.set_sequence(1);
  for (uint64_t i = 1; i <= 40; ++i) *first.add_spans() = ServerSpan(i, i, "web", t0 + i * 1000);
  v1::Span client = ServerSpan(100, 100, "web", t0 + 500'000);
  client.set_kind(v1::SPAN_KIND_CLIENT);
  SetExchange(&client, 9000);
  *first.add_spans() = client;
  v1::Batch second;
  second.set_sequence(2);
  *second.add_spans() = ServerSpan(41, 41, "web", t0 + 41'000);
  {
    testing::AgentStream n1(a.grpc_port, "c1");
    ASSERT_EQ(n1.Send(first), 1u) << n1.error();
    ASSERT_EQ(n1.Send(second), 2u) << n1.error();
  }
  {
    testing::AgentStream n1(b.grpc_port, "c1");  // failover: batch 2 resent to replica b
    ASSERT_EQ(n1.Send(second), 2u) << n1.error();
  }
  // Node 2 -> replica b: the server side (trace 200, a root).
  v1::Batch server_side;
  server_side.set_sequence(1);
  v1::Span server = ServerSpan(200, 200, "api", t0 + 600'000);
  SetExchange(&server, 9000);
  *server_side.add_spans() = server;
  {
    testing::AgentStream n2(b.grpc_port, "c2");
    ASSERT_EQ(n2.Send(server_side), 1u) << n2.error();
  }

  // Stored once, spread over both shards by trace id.
  const std::string on1 = shard1->Query("SELECT toUInt64(sum(n)) FROM sonde.span_chunks_local");
  const std::string on2 = shard2->Query("SELECT toUInt64(sum(n)) FROM sonde.span_chunks_local");
  EXPECT_EQ(std::stoi(on1) + std::stoi(on2), 43) << on1 << " + " << on2;
  EXPECT_GT(std::stoi(on1), 5);
  EXPECT_GT(std::stoi(on2), 5);
  EXPECT_EQ(shard1->Query("SELECT toUInt64(sum(n)) FROM sonde.span_chunks"), "43\n");

  for (const Replica* r : {&a, &b}) {
    SCOPED_TRACE(r == &a ? "replica a" : "replica b");
    json found = GetJson(r->http_port, "/api/traces?last=1h&service=web&limit=100");
    ASSERT_TRUE(found.is_object());
    EXPECT_EQ(found["traces"].size(), 42u);  // 41 + the client's trace
    int complete = 0;
    for (uint64_t i = 1; i <= 41; ++i) {
      json t = GetJson(r->http_port, "/api/traces/" + Hex(Id(i, 16)));
      if (t.is_object() && t["span_count"] == 1) ++complete;
    }
    EXPECT_EQ(complete, 41);
    json joined = GetJson(r->http_port, "/api/traces/" + Hex(Id(100, 16)));
    ASSERT_TRUE(joined.is_object());
    EXPECT_EQ(joined["span_count"], 2);
    EXPECT_EQ(joined["roots"].size(), 1u) << joined.dump();
  }
  a.process.Stop();
  b.process.Stop();
}

}  // namespace
}  // namespace sonde
