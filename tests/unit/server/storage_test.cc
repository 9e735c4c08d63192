// SqliteStorage round trips, deduplication, restart, retention.
#include <gtest/gtest.h>

#include "server/store/sqlite_storage.h"
#include "tests/unit/server/test_util.h"

namespace sonde::server {
namespace {

using testing::MakeSpan;
using testing::SpanSpec;

constexpr uint64_t kSec = 1'000'000'000;

std::unique_ptr<SqliteStorage> OpenAt(const std::filesystem::path& dir) {
  SqliteStorage::Options o;
  o.path = (dir / "sonde.db").string();
  auto s = SqliteStorage::Open(o);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? std::move(*s) : nullptr;
}

IngestContext Ctx(const std::string& instance = "inst-1") { return {"host-a", "node-a", instance}; }

TEST(SqliteStorage, SpanRoundTripKeepsEveryField) {
  testing::TempDir dir;
  auto store = OpenAt(dir.path());
  ASSERT_TRUE(store);
  EXPECT_EQ(store->schema_version(), SqliteStorage::kSchemaVersion);
  const uint64_t t0 = 1700000000 * kSec;
  v1::Batch b;
  b.set_sequence(1);
  v1::Span s = MakeSpan({.trace = 7, .id = 1, .start_ns = t0, .end_ns = t0 + 5'000'000});
  s.set_parent_reason(v1::LINK_REASON_TRACEPARENT);
  s.set_tid(4242);
  s.mutable_client()->set_address("10.0.0.1");
  s.mutable_client()->set_port(5555);
  s.set_request_tcp_seq(123456);
  auto* h = s.add_request_headers();
  h->set_name("x-evil");
  h->set_value("<script>alert(1)</script>");
  auto* a = s.add_attributes();
  a->set_key("http.route");
  a->set_string_value("/users/{id}");
  *b.add_spans() = s;
  auto w = store->WriteBatch(Ctx(), b);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_TRUE(*w);

  auto t = store->Trace(testing::TraceId(7));
  ASSERT_TRUE(t.ok());
  ASSERT_EQ(t->size(), 1u);
  EXPECT_EQ((*t)[0].host, "host-a");
  EXPECT_EQ((*t)[0].span.SerializeAsString(), s.SerializeAsString());
  auto none = store->Trace(testing::TraceId(8));
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(SqliteStorage, ResentBatchIsStoredOnce) {
  testing::TempDir dir;
  auto store = OpenAt(dir.path());
  v1::Batch b;
  b.set_sequence(1);
  *b.add_spans() = MakeSpan({.trace = 1, .id = 1, .start_ns = 10, .end_ns = 20});
  EXPECT_TRUE(*store->WriteBatch(Ctx(), b));
  EXPECT_FALSE(*store->WriteBatch(Ctx(), b));  // same instance, same sequence
  b.set_sequence(2);
  *b.mutable_spans(0) = MakeSpan({.trace = 1, .id = 2, .start_ns = 10, .end_ns = 20});
  EXPECT_TRUE(*store->WriteBatch(Ctx(), b));
  // Another agent instance starts its own sequence.
  b.set_sequence(1);
  *b.mutable_spans(0) = MakeSpan({.trace = 1, .id = 3, .start_ns = 10, .end_ns = 20});
  EXPECT_TRUE(*store->WriteBatch(Ctx("inst-2"), b));
  EXPECT_EQ(store->Trace(testing::TraceId(1))->size(), 3u);
  EXPECT_EQ(store->Stats().duplicate_batches, 1u);
}

TEST(SqliteStorage, RestartKeepsData) {
  testing::TempDir dir;
  {
    auto store = OpenAt(dir.path());
    v1::Batch b;
    b.set_sequence(5);
    for (int i = 0; i < 100; ++i)
      *b.add_spans() = MakeSpan({.trace = 9, .id = static_cast<uint64_t>(i + 1), .start_ns = 1000, .end_ns = 2000});
    ASSERT_TRUE(store->WriteBatch(Ctx(), b).ok());
  }
  auto store = OpenAt(dir.path());
  EXPECT_EQ(store->Trace(testing::TraceId(9))->size(), 100u);
  EXPECT_EQ(store->Stats().spans, 100u);
  // The dedup state survives too: a resend after the restart is dropped.
  v1::Batch again;
  again.set_sequence(5);
  *again.add_spans() = MakeSpan({.trace = 9, .id = 999, .start_ns = 1000, .end_ns = 2000});
  EXPECT_FALSE(*store->WriteBatch(Ctx(), again));
}

TEST(SqliteStorage, SearchFilters) {
  testing::TempDir dir;
  auto store = OpenAt(dir.path());
  const uint64_t t0 = 1700000000 * kSec;
  v1::Batch b;
  b.set_sequence(1);
  // trace 1: fast 200 on /a; trace 2: slow 502 on /b with an attribute; trace 3: other service.
  *b.add_spans() = MakeSpan({.trace = 1, .id = 1, .service = "gw", .endpoint = "GET /a",
                             .start_ns = t0, .end_ns = t0 + 1'000'000});
  auto slow = MakeSpan({.trace = 2, .id = 2, .service = "gw", .endpoint = "GET /b",
                        .start_ns = t0 + kSec, .end_ns = t0 + kSec + 900'000'000, .http_status = 502});
  auto* attr = slow.add_attributes();
  attr->set_key("tenant");
  attr->set_string_value("acme");
  *b.add_spans() = slow;
  *b.add_spans() = MakeSpan({.trace = 2, .id = 3, .parent = 2, .kind = v1::SPAN_KIND_CLIENT,
                             .service = "gw", .endpoint = "GET /b", .start_ns = t0 + kSec + 1000,
                             .end_ns = t0 + kSec + 800'000'000, .http_status = 502});
  *b.add_spans() = MakeSpan({.trace = 3, .id = 4, .service = "api", .endpoint = "POST /c",
                             .start_ns = t0 + 2 * kSec, .end_ns = t0 + 2 * kSec + 10});
  ASSERT_TRUE(store->WriteBatch(Ctx(), b).ok());

  TraceQuery q;
  q.range = {t0 - kSec, t0 + 10 * kSec};
  auto all = store->SearchTraces(q);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].root_service, "api");  // newest first

  q.service = "gw";
  EXPECT_EQ(store->SearchTraces(q)->size(), 2u);
  q.min_duration_ns = 500'000'000;
  auto slow_only = store->SearchTraces(q);
  ASSERT_EQ(slow_only->size(), 1u);
  EXPECT_EQ((*slow_only)[0].trace_id, HexEncode(testing::TraceId(2)));
  EXPECT_EQ((*slow_only)[0].span_count, 2u);
  EXPECT_EQ((*slow_only)[0].error_count, 2u);
  EXPECT_EQ((*slow_only)[0].root_endpoint, "GET /b");

  TraceQuery by_status;
  by_status.range = q.range;
  by_status.status_class = 5;
  EXPECT_EQ(store->SearchTraces(by_status)->size(), 1u);
  by_status.status_class.reset();
  by_status.http_status = 200;
  EXPECT_EQ(store->SearchTraces(by_status)->size(), 2u);

  TraceQuery by_attr;
  by_attr.range = q.range;
  by_attr.attributes.push_back({"tenant", "acme"});
  EXPECT_EQ(store->SearchTraces(by_attr)->size(), 1u);
  by_attr.attributes[0].value = "acm";  // no partial matches
  EXPECT_EQ(store->SearchTraces(by_attr)->size(), 0u);
  // Text that looks like SQL is just a value.
  by_attr.attributes[0] = {"x' OR 1=1 --", "y"};
  EXPECT_EQ(store->SearchTraces(by_attr)->size(), 0u);

  TraceQuery by_endpoint;
  by_endpoint.range = q.range;
  by_endpoint.endpoint = "/c";
  EXPECT_EQ(store->SearchTraces(by_endpoint)->size(), 1u);

  TraceQuery outside;
  outside.range = {t0 + 5 * kSec, t0 + 6 * kSec};
  EXPECT_EQ(store->SearchTraces(outside)->size(), 0u);

  EndpointQuery eq;
  eq.range = q.range;
  eq.kind = v1::SPAN_KIND_SERVER;
  auto eps = store->Endpoints(eq);
  ASSERT_TRUE(eps.ok());
  uint64_t total = 0, errors = 0;
  for (const auto& e : *eps) total += e.count, errors += e.errors;
  EXPECT_EQ(total, 3u);
  EXPECT_EQ(errors, 1u);

  RequestLogQuery rq;
  rq.range = q.range;
  rq.status_class = 5;
  EXPECT_EQ(store->RequestLog(rq)->size(), 2u);
}

TEST(SqliteStorage, MetricsProfilesAndProcesses) {
  testing::TempDir dir;
  auto store = OpenAt(dir.path());
  const uint64_t t0 = 1700000000 * kSec;
  v1::Batch b;
  b.set_sequence(1);
  auto* red = b.add_red();
  red->set_window_start_unix_ns(t0);
  red->set_window_end_unix_ns(t0 + kSec);
  red->set_service_name("gw");
  red->set_endpoint("GET /a");
  red->set_requests(10);
  auto* tcp = b.add_tcp();
  tcp->set_window_start_unix_ns(t0);
  tcp->mutable_server()->set_address("10.0.0.2");
  tcp->mutable_server()->set_port(80);
  tcp->set_retransmits(3);
  auto* st = b.mutable_profile()->add_stacks();
  st->set_stack("main;work;spin");
  st->set_count(5);
  st->set_value(5);
  st->set_pid(42);
  st->set_kind(v1::CPU_KIND_ON_CPU);
  st->set_window_start_unix_ns(t0);
  st->set_window_end_unix_ns(t0 + kSec);
  auto* proc = b.add_processes();
  proc->set_pid(42);
  proc->set_comm("nginx");
  b.mutable_host()->set_host_name("host-a");
  auto* rec = b.add_requests();
  rec->set_start_unix_ns(t0);
  rec->set_path("/a");
  rec->set_status(200);
  ASSERT_TRUE(store->WriteBatch(Ctx(), b).ok());

  RedQuery rq;
  rq.range = {t0 - kSec, t0 + kSec};
  rq.service = "gw";
  ASSERT_EQ(store->RedWindows(rq)->size(), 1u);
  EXPECT_EQ((*store->RedWindows(rq))[0].window.requests(), 10u);
  TcpQuery tq;
  tq.range = rq.range;
  tq.server_port = 80;
  EXPECT_EQ(store->TcpWindows(tq)->size(), 1u);
  tq.server_port = 81;
  EXPECT_EQ(store->TcpWindows(tq)->size(), 0u);
  ProfileQuery pq;
  pq.range = rq.range;
  pq.pid = 42;
  auto stacks = store->Stacks(pq);
  ASSERT_EQ(stacks->size(), 1u);
  EXPECT_EQ((*stacks)[0].value, 5u);
  pq.kind = v1::CPU_KIND_OFF_CPU;
  EXPECT_EQ(store->Stacks(pq)->size(), 0u);
  ASSERT_EQ(store->Processes()->size(), 1u);
  EXPECT_EQ((*store->Processes())[0].info.comm(), "nginx");
  RequestLogQuery lq;
  lq.range = rq.range;
  EXPECT_EQ(store->RequestRecords(lq)->size(), 1u);
}

TEST(SqliteStorage, RetentionDeletesOnlyExpiredRows) {
  testing::TempDir dir;
  auto store = OpenAt(dir.path());
  const uint64_t now = 1700000000 * kSec;
  const uint64_t hour = 3600 * kSec;
  v1::Batch b;
  b.set_sequence(1);
  *b.add_spans() = MakeSpan({.trace = 1, .id = 1, .start_ns = now - 73 * hour, .end_ns = now - 73 * hour + 5});
  *b.add_spans() = MakeSpan({.trace = 2, .id = 2, .start_ns = now - 71 * hour, .end_ns = now - 71 * hour + 5});
  auto* old_red = b.add_red();
  old_red->set_window_start_unix_ns(now - 8 * 24 * hour);
  auto* new_red = b.add_red();
  new_red->set_window_start_unix_ns(now - 73 * hour);  // metrics live 7 days
  ASSERT_TRUE(store->WriteBatch(Ctx(), b).ok());
  auto r = store->EnforceRetention(now, RetentionPolicy{});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->spans_deleted, 1u);
  EXPECT_EQ(r->rows_deleted, 1u);
  EXPECT_TRUE(store->Trace(testing::TraceId(1))->empty());
  EXPECT_EQ(store->Trace(testing::TraceId(2))->size(), 1u);
  RedQuery rq;
  rq.range = {0, now};
  EXPECT_EQ(store->RedWindows(rq)->size(), 1u);
  EXPECT_EQ(store->Stats().spans, 1u);
}

TEST(SqliteStorage, RefusesNewerSchema) {
  testing::TempDir dir;
  { auto store = OpenAt(dir.path()); }
  {
    auto db = sqlite::Database::Open((dir.path() / "sonde.db").string(), false);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Exec("UPDATE meta SET value = '999' WHERE key = 'schema_version'").ok());
  }
  SqliteStorage::Options o;
  o.path = (dir.path() / "sonde.db").string();
  auto s = SqliteStorage::Open(o);
  EXPECT_FALSE(s.ok());
}

}  // namespace
}  // namespace sonde::server
