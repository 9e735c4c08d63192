// The ClickHouse backend against a real clickhouse-server (started by the
// test, private temp dir and ports): round trips, searches, deduplication
// across two storage instances on one database (two server replicas), batch
// claims, sequence jumps, retention by day partitions, the read-time trace
// join across replicas, hostile strings.
#include <gtest/gtest.h>

#include <set>

#include <algorithm>

#include "server/store/clickhouse_storage.h"
#include "server/store/storage.h"
#include "tests/e2e/clickhouse/clickhouse_server.h"
#include "tests/testlib/process.h"
#include "tests/unit/server/test_util.h"

namespace sonde::server {
namespace {

using testing::MakeSpan;
using testing::SpanSpec;
using testing::TraceId;

class ClickHouseStorageTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!sonde::testing::ClickHouseInstalled()) return;
    std::string error;
    server_ = sonde::testing::ClickHouseServer::Start(&error).release();
    if (!server_) start_error_ = new std::string(error);
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    SONDE_REQUIRE(sonde::testing::ClickHouseInstalled(), "clickhouse-server (scripts/setup.sh)");
    ASSERT_NE(server_, nullptr) << (start_error_ ? *start_error_ : "");
    // One database per test.
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    database_ = std::string("t_") + info->name();
    server_->Query("DROP DATABASE IF EXISTS " + database_);
  }
  std::unique_ptr<ClickHouseStorage> Open(uint64_t claim_timeout_ns = 20'000'000'000ull) {
    ClickHouseOptions o;
    o.url = server_->Url(database_);
    o.claim_timeout_ns = claim_timeout_ns;
    auto s = ClickHouseStorage::Open(o);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }
  std::string Count(const std::string& table) { return server_->Query("SELECT count() FROM " + database_ + "." + table); }

  static sonde::testing::ClickHouseServer* server_;
  static std::string* start_error_;
  std::string database_;
};
sonde::testing::ClickHouseServer* ClickHouseStorageTest::server_ = nullptr;
std::string* ClickHouseStorageTest::start_error_ = nullptr;

IngestContext Ctx(const std::string& instance, const std::string& host = "node-a") {
  IngestContext c;
  c.host = host;
  c.node_id = host + "-id";
  c.instance_id = instance;
  return c;
}

// One side of the exchange 10.0.0.1:40000 -> server, request seq `seq`.
v1::Span Side(v1::SpanKind kind, uint64_t trace, uint64_t id, uint32_t seq, uint64_t start, const char* service) {
  v1::Span s = MakeSpan({.trace = trace, .id = id, .kind = kind, .service = service, .endpoint = "GET /x",
                         .start_ns = start, .end_ns = start + 1'000'000});
  s.mutable_client()->set_address("10.0.0.1");
  s.mutable_client()->set_port(40000);
  s.mutable_server()->set_address("10.0.1.2");
  s.mutable_server()->set_port(80);
  s.set_request_tcp_seq(seq);
  return s;
}

TEST_F(ClickHouseStorageTest, RoundTripAndSearches) {
  auto store = Open();
  ASSERT_TRUE(store);
  const uint64_t t0 = testing::NowNs() - 60'000'000'000ull;
  v1::Batch b;
  b.set_sequence(1);
  *b.add_spans() = MakeSpan({.trace = 1, .id = 1, .service = "gw", .endpoint = "GET /a", .start_ns = t0,
                             .end_ns = t0 + 5'000'000});
  *b.add_spans() = MakeSpan({.trace = 1, .id = 2, .parent = 1, .kind = v1::SPAN_KIND_CLIENT, .service = "gw",
                             .endpoint = "GET /api", .start_ns = t0 + 1000, .end_ns = t0 + 4'000'000});
  auto api = MakeSpan({.trace = 2, .id = 3, .service = "it's \\api", .endpoint = "POST /b", .start_ns = t0 + 10,
                       .end_ns = t0 + 90'000'000, .http_status = 502});
  auto* attr = api.add_attributes();
  attr->set_key("db.system");
  attr->set_string_value("redis");
  *b.add_spans() = api;
  auto written = store->WriteBatch(Ctx("i1"), b);
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_TRUE(*written);

  auto trace = store->Trace(TraceId(1));
  ASSERT_TRUE(trace.ok()) << trace.status();
  ASSERT_EQ(trace->size(), 2u);
  EXPECT_EQ((*trace)[0].span.span_id(), b.spans(0).span_id());
  EXPECT_EQ((*trace)[0].host, "node-a");
  EXPECT_EQ((*trace)[1].span.SerializeAsString(), b.spans(1).SerializeAsString());  // every field kept

  TraceQuery all;
  auto found = store->SearchTraces(all);
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_EQ(found->size(), 2u);
  TraceQuery q5;
  q5.status_class = 5;
  found = store->SearchTraces(q5);
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0].trace_id, HexEncode(TraceId(2)));
  EXPECT_EQ((*found)[0].root_service, "it's \\api");
  EXPECT_EQ((*found)[0].error_count, 1u);
  TraceQuery by_service;
  by_service.service = "it's \\api";  // quotes and backslashes are values, not SQL
  found = store->SearchTraces(by_service);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->size(), 1u);
  TraceQuery by_attr;
  by_attr.attributes.push_back({"db.system", "redis"});
  by_attr.min_duration_ns = 50'000'000;
  found = store->SearchTraces(by_attr);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->size(), 1u);
  TraceQuery injection;
  injection.service = "gw' OR 1=1 --";
  found = store->SearchTraces(injection);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_TRUE(found->empty());

  EndpointQuery eq;
  auto endpoints = store->Endpoints(eq);
  ASSERT_TRUE(endpoints.ok()) << endpoints.status();
  EXPECT_EQ(endpoints->size(), 3u);
  RequestLogQuery rq;
  rq.status_class = 5;
  auto log = store->RequestLog(rq);
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_EQ(log->size(), 1u);
  EXPECT_EQ(log->at(0).span.http_status(), 502u);
  RedQuery red;
  red.service = "gw";
  auto samples = store->SpanSamples(red);
  ASSERT_TRUE(samples.ok()) << samples.status();
  EXPECT_EQ(samples->size(), 2u);
  EXPECT_EQ(store->Stats().spans, 3u);
}

TEST_F(ClickHouseStorageTest, ResentBatchIsStoredOnceAcrossReplicas) {
  auto a = Open(), b = Open();
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->replica_id(), b->replica_id());
  const uint64_t t0 = testing::NowNs();
  v1::Batch batch;
  batch.set_sequence(1);
  *batch.add_spans() = MakeSpan({.trace = 7, .id = 1, .start_ns = t0, .end_ns = t0 + 10});
  auto first = a->WriteBatch(Ctx("agent-1"), batch);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(*first);
  // The ack was lost; the agent fails over to the other replica and resends.
  auto resent = b->WriteBatch(Ctx("agent-1"), batch);
  ASSERT_TRUE(resent.ok()) << resent.status();
  EXPECT_FALSE(*resent);
  EXPECT_EQ(b->Stats().duplicate_batches, 1u);
  // The next batches go on through the other replica.
  batch.set_sequence(2);
  *batch.mutable_spans(0) = MakeSpan({.trace = 7, .id = 2, .start_ns = t0 + 5, .end_ns = t0 + 10});
  auto next = b->WriteBatch(Ctx("agent-1"), batch);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_TRUE(*next);
  auto again = a->WriteBatch(Ctx("agent-1"), batch);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
  // Another instance's sequence 1 is its own.
  batch.set_sequence(1);
  auto other = a->WriteBatch(Ctx("agent-2"), batch);
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(*other);
  auto trace = b->Trace(TraceId(7));
  ASSERT_TRUE(trace.ok());
  EXPECT_EQ(trace->size(), 3u);  // span 1 once, span 2 from agent-1 and agent-2
  EXPECT_EQ(Count("span_chunks"), "3\n");
}

TEST_F(ClickHouseStorageTest, BatchClaimedByAnotherReplicaWaitsThenIsTakenOver) {
  auto a = Open(1'500'000'000ull);
  ASSERT_TRUE(a);
  // Replica "dead" claimed sequence 1 and never stored it.
  const uint64_t now = testing::NowNs();
  bool ok = false;
  server_->Query("INSERT INTO " + database_ + ".batches (day, instance_id, sequence, state, replica, at_ns) VALUES "
                 "(today(), 'agent-9', 1, 0, 'dead', " + std::to_string(now) + ")", &ok);
  ASSERT_TRUE(ok);
  v1::Batch batch;
  batch.set_sequence(1);
  *batch.add_spans() = MakeSpan({.trace = 9, .id = 1, .start_ns = now, .end_ns = now + 10});
  auto busy = a->WriteBatch(Ctx("agent-9"), batch);
  ASSERT_FALSE(busy.ok());
  EXPECT_EQ(busy.status().code(), absl::StatusCode::kUnavailable) << busy.status();
  EXPECT_EQ(Count("span_chunks"), "0\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(1700));  // the claim expires
  auto stored = a->WriteBatch(Ctx("agent-9"), batch);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_TRUE(*stored);
  EXPECT_EQ(Count("span_chunks"), "1\n");
}

TEST_F(ClickHouseStorageTest, SequenceJumpIsRefused) {
  auto a = Open();
  ASSERT_TRUE(a);
  IngestContext ctx = Ctx("agent-j");
  ctx.max_sequence_jump = 1000;
  v1::Batch batch;
  batch.set_sequence(1);
  ASSERT_TRUE(a->WriteBatch(ctx, batch).ok());
  batch.set_sequence(5000);
  auto jump = a->WriteBatch(ctx, batch);
  ASSERT_FALSE(jump.ok());
  EXPECT_EQ(jump.status().code(), absl::StatusCode::kInvalidArgument);
  batch.set_sequence(900);
  auto fine = a->WriteBatch(ctx, batch);
  ASSERT_TRUE(fine.ok()) << fine.status();
  EXPECT_TRUE(*fine);
}

TEST_F(ClickHouseStorageTest, MetricsProfilesAndProcesses) {
  auto store = Open();
  ASSERT_TRUE(store);
  const uint64_t t0 = testing::NowNs() - 30'000'000'000ull;
  v1::Batch b;
  auto* red = b.add_red();
  red->set_window_start_unix_ns(t0);
  red->set_service_name("api");
  red->set_endpoint("GET /x");
  red->set_requests(42);
  auto* tcp = b.add_tcp();
  tcp->set_window_start_unix_ns(t0);
  tcp->mutable_server()->set_address("10.1.1.1");
  tcp->mutable_server()->set_port(5432);
  auto* stack = b.mutable_profile()->add_stacks();
  stack->set_window_start_unix_ns(t0);
  stack->set_window_end_unix_ns(t0 + 10'000'000'000ull);
  stack->set_pid(11);
  stack->set_stack("main;work");
  stack->set_count(7);
  stack->set_kind(v1::CPU_KIND_ON_CPU);
  b.add_processes()->set_pid(11);
  b.mutable_processes(0)->set_comm("worker");
  auto* req = b.add_requests();
  req->set_start_unix_ns(t0);
  req->set_comm("nginx");
  req->set_path("/x");
  req->set_status(404);
  ASSERT_TRUE(store->WriteBatch(Ctx(""), b).ok());
  b.mutable_processes(0)->set_comm("worker2");  // a later report of the same process wins
  b.clear_red();
  b.clear_tcp();
  b.clear_profile();
  b.clear_requests();
  ASSERT_TRUE(store->WriteBatch(Ctx(""), b).ok());

  RedQuery rq;
  rq.service = "api";
  auto reds = store->RedWindows(rq);
  ASSERT_TRUE(reds.ok()) << reds.status();
  ASSERT_EQ(reds->size(), 1u);
  EXPECT_EQ(reds->at(0).window.requests(), 42u);
  TcpQuery tq;
  tq.server_port = 5432;
  auto tcps = store->TcpWindows(tq);
  ASSERT_TRUE(tcps.ok());
  EXPECT_EQ(tcps->size(), 1u);
  ProfileQuery pq;
  auto stacks = store->Stacks(pq);
  ASSERT_TRUE(stacks.ok()) << stacks.status();
  ASSERT_EQ(stacks->size(), 1u);
  EXPECT_EQ(stacks->at(0).value, 7u);
  auto procs = store->Processes();
  ASSERT_TRUE(procs.ok()) << procs.status();
  ASSERT_EQ(procs->size(), 1u);
  EXPECT_EQ(procs->at(0).info.comm(), "worker2");
  RequestLogQuery lq;
  lq.status_class = 4;
  auto records = store->RequestRecords(lq);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 1u);
  EXPECT_EQ(records->at(0).path(), "/x");
}

TEST_F(ClickHouseStorageTest, RetentionDropsWholeExpiredDays) {
  auto store = Open();
  ASSERT_TRUE(store);
  const uint64_t now = testing::NowNs(), day = 86'400'000'000'000ull;
  v1::Batch b;
  for (uint64_t i = 0; i < 3; ++i)
    *b.add_spans() = MakeSpan({.trace = 100 + i, .id = i + 1, .start_ns = now - 5 * day + i, .end_ns = now - 5 * day + 10});
  *b.add_spans() = MakeSpan({.trace = 200, .id = 9, .start_ns = now, .end_ns = now + 10});
  auto* red = b.add_red();
  red->set_window_start_unix_ns(now - 9 * day);
  red->set_service_name("old");
  ASSERT_TRUE(store->WriteBatch(Ctx(""), b).ok());
  RetentionPolicy policy;  // 72 h spans, 7 d metrics
  auto r = store->EnforceRetention(now, policy);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->spans_deleted, 3u);
  EXPECT_GE(r->rows_deleted, 1u);  // the old RED window (and the old traces' index rows)
  EXPECT_EQ(Count("span_chunks"), "1\n");
  EXPECT_EQ(Count("red"), "0\n");
  auto kept = store->Trace(TraceId(200));
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->size(), 1u);
  EXPECT_EQ(store->Stats().spans, 1u);
}

TEST_F(ClickHouseStorageTest, TraceJoinsAcrossReplicasAtReadTime) {
  auto a = Open(), b = Open();
  ASSERT_TRUE(a && b);
  const uint64_t t0 = testing::NowNs();
  // Node 1's agent (through replica a): the client span of trace 50.
  v1::Batch client;
  client.set_sequence(1);
  *client.add_spans() = MakeSpan({.trace = 50, .id = 1, .service = "web", .endpoint = "GET /", .start_ns = t0 - 10,
                                  .end_ns = t0 + 3'000'000});
  *client.add_spans() = Side(v1::SPAN_KIND_CLIENT, 50, 2, 777, t0, "web");
  client.mutable_spans(1)->set_parent_span_id(client.spans(0).span_id());
  // Node 2's agent (through replica b): the server span, a root of trace 60,
  // with a child of its own; and an unrelated exchange (another sequence).
  v1::Batch server;
  server.set_sequence(1);
  *server.add_spans() = Side(v1::SPAN_KIND_SERVER, 60, 3, 777, t0 + 200'000, "api");
  *server.add_spans() = MakeSpan({.trace = 60, .id = 4, .parent = 3, .kind = v1::SPAN_KIND_CLIENT,
                                  .service = "api", .start_ns = t0 + 300'000, .end_ns = t0 + 400'000});
  *server.add_spans() = Side(v1::SPAN_KIND_SERVER, 61, 5, 778, t0 + 200'000, "api");
  ASSERT_TRUE(a->WriteBatch(Ctx("n1"), client).ok());
  ASSERT_TRUE(b->WriteBatch(Ctx("n2", "node-b"), server).ok());

  for (auto* replica : {a.get(), b.get()}) {
    auto trace = replica->Trace(TraceId(50));
    ASSERT_TRUE(trace.ok()) << trace.status();
    ASSERT_EQ(trace->size(), 4u);
    for (const auto& s : *trace) EXPECT_EQ(s.span.trace_id(), TraceId(50));
    auto server_span = std::find_if(trace->begin(), trace->end(),
                                    [](const StoredSpan& s) { return s.span.span_id() == testing::SpanId(3); });
    ASSERT_NE(server_span, trace->end());
    EXPECT_EQ(server_span->span.parent_span_id(), testing::SpanId(2));
    EXPECT_EQ(server_span->span.parent_reason(), v1::LINK_REASON_TCP_SEQUENCE);
    EXPECT_EQ(server_span->host, "node-b");
  }
  // From the server side's trace: the client side joins it.
  auto from_server = a->Trace(TraceId(60));
  ASSERT_TRUE(from_server.ok());
  EXPECT_EQ(from_server->size(), 4u);
  auto unrelated = a->Trace(TraceId(61));
  ASSERT_TRUE(unrelated.ok());
  EXPECT_EQ(unrelated->size(), 1u);
  // Search lists the joined exchange once (under the client side's trace id)
  // and the unrelated one apart, from either replica.
  for (auto* replica : {a.get(), b.get()}) {
    TraceQuery q;
    q.range = {t0 - 60'000'000'000ull, t0 + 60'000'000'000ull};
    q.limit = 10;
    auto found = replica->SearchTraces(q);
    ASSERT_TRUE(found.ok()) << found.status();
    std::set<std::string> ids;
    for (const auto& t : *found) ids.insert(t.trace_id);
    EXPECT_EQ(ids, (std::set<std::string>{HexEncode(TraceId(50)), HexEncode(TraceId(61))}));
  }
}

// --query-timeout on ClickHouse: every SELECT carries max_execution_time,
// and one that runs out is kDeadlineExceeded (the API's 504); statements
// that are not reads are not limited.
TEST_F(ClickHouseStorageTest, SelectsStopAtTheQueryDeadline) {
  auto endpoint = clickhouse::ParseUrl(server_->Url("system"));
  ASSERT_TRUE(endpoint.ok());
  clickhouse::Client client(*endpoint);
  client.SetQueryTimeout(std::chrono::milliseconds(1000));
  const auto t0 = std::chrono::steady_clock::now();
  auto slow = client.Query("SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) = 7 FORMAT TSV");
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("100G-row scan with a 1 s deadline: %s after %.2f s\n", slow.status().ToString().substr(0, 120).c_str(), s);
  EXPECT_EQ(slow.status().code(), absl::StatusCode::kDeadlineExceeded) << slow.status();
  EXPECT_NE(slow.status().message().find("--query-timeout"), std::string::npos);
  EXPECT_LT(s, 10.0);
  auto quick = client.Query("SELECT 1 FORMAT TSV");
  ASSERT_TRUE(quick.ok()) << quick.status();
  EXPECT_EQ(*quick, "1\n");
}

TEST_F(ClickHouseStorageTest, OpenStorageSelectsClickHouseByUrl) {
  StorageOptions o;
  o.path = server_->Url(database_);
  auto s = OpenStorage(o);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)->schema_version(), ClickHouseStorage::kSchemaVersion);
  o.path = "clickhouse://127.0.0.1:1/x";  // nothing listens there
  EXPECT_FALSE(OpenStorage(o).ok());
  o.path = "clickhouse://127.0.0.1/bad-name;";
  auto bad = OpenStorage(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sonde::server
