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

// Every span-level filter must hold on one span: a (trace, batch) row whose
// spans match the filters only between them is not a hit.
TEST(SqliteStorage, FiltersMatchOneSpanNotTheRow) {
  testing::TempDir dir;
  auto store = OpenAt(dir.path());
  const uint64_t t0 = 1700000000 * kSec;
  v1::Batch b;
  b.set_sequence(1);
  auto a = MakeSpan({.trace = 1, .id = 1, .service = "gw", .endpoint = "GET /a", .start_ns = t0,
                     .end_ns = t0 + 10, .http_status = 200});
  auto* attr = a.add_attributes();
  attr->set_key("tenant");
  attr->set_string_value("acme");
  *b.add_spans() = a;
  *b.add_spans() = MakeSpan({.trace = 1, .id = 2, .parent = 1, .service = "api", .endpoint = "GET /b",
                             .start_ns = t0 + 1, .end_ns = t0 + 2 * kSec, .http_status = 502});
  ASSERT_TRUE(store->WriteBatch(Ctx(), b).ok());
  TraceQuery q;
  q.range = {t0 - kSec, t0 + kSec};
  q.service = "gw";
  EXPECT_EQ(store->SearchTraces(q)->size(), 1u);
  q.status_class = 5;  // the 502 is api's, not gw's
  EXPECT_EQ(store->SearchTraces(q)->size(), 0u);
  q.status_class.reset();
  q.min_duration_ns = kSec;  // the slow span is api's
  EXPECT_EQ(store->SearchTraces(q)->size(), 0u);
  TraceQuery attr_q;
  attr_q.range = q.range;
  attr_q.attributes.push_back({"tenant", "acme"});
  EXPECT_EQ(store->SearchTraces(attr_q)->size(), 1u);
  attr_q.service = "api";  // the attribute is on gw's span
  EXPECT_EQ(store->SearchTraces(attr_q)->size(), 0u);
  attr_q.service = "gw";
  auto hit = store->SearchTraces(attr_q);
  ASSERT_EQ(hit->size(), 1u);
  // The summary covers the whole trace, not only the matching span.
  EXPECT_EQ((*hit)[0].span_count, 2u);
  EXPECT_EQ((*hit)[0].error_count, 1u);
  EXPECT_EQ((*hit)[0].root_service, "gw");
  EXPECT_EQ((*hit)[0].end_ns, t0 + 1 + 2 * kSec - 1);
}

// A trace whose spans arrive in several batches is one trace: summary and
// fetch combine its rows; the root is the parentless span whatever the order.
TEST(SqliteStorage, TraceAcrossBatches) {
  for (bool compress : {true, false}) {
    testing::TempDir dir;
    SqliteStorage::Options o;
    o.path = (dir.path() / "sonde.db").string();
    o.compress_spans = compress;
    auto store = std::move(*SqliteStorage::Open(o));
    const uint64_t t0 = 1700000000 * kSec;
    for (uint64_t i = 0; i < 5; ++i) {
      v1::Batch b;
      b.set_sequence(i + 1);
      // child spans first, the root last
      const uint64_t id = 5 - i;
      *b.add_spans() = MakeSpan({.trace = 3, .id = id, .parent = id == 1 ? uint64_t{0} : uint64_t{1},
                                 .service = id == 1 ? "edge" : "svc", .endpoint = "GET /x",
                                 .start_ns = t0 + id * 1000, .end_ns = t0 + 100000});
      *b.add_spans() = MakeSpan({.trace = 100 + i, .id = 100 + i, .start_ns = t0, .end_ns = t0 + 1});
      ASSERT_TRUE(store->WriteBatch(Ctx(), b).ok());
    }
    auto spans = store->Trace(testing::TraceId(3));
    ASSERT_TRUE(spans.ok());
    ASSERT_EQ(spans->size(), 5u) << compress;
    for (size_t i = 0; i < spans->size(); ++i)  // by start time
      EXPECT_EQ((*spans)[i].span.span_id(), testing::SpanId(i + 1));
    TraceQuery q;
    q.range = {t0, t0 + kSec};
    q.endpoint = "/x";
    auto found = store->SearchTraces(q);
    ASSERT_EQ(found->size(), 1u);
    EXPECT_EQ((*found)[0].span_count, 5u);
    EXPECT_EQ((*found)[0].root_service, "edge");
    EXPECT_EQ((*found)[0].start_ns, t0 + 1000);
    EXPECT_EQ(store->Stats().spans, 10u);
  }
}

TEST(SqliteStorage, RequestLogNewestFirstWithLimitAndSamples) {
  testing::TempDir dir;
  auto store = OpenAt(dir.path());
  const uint64_t t0 = 1700000000 * kSec;
  for (uint64_t batch = 0; batch < 3; ++batch) {
    v1::Batch b;
    b.set_sequence(batch + 1);
    for (uint64_t i = 0; i < 10; ++i) {
      const uint64_t n = batch * 10 + i;
      *b.add_spans() = MakeSpan({.trace = n / 2, .id = n + 1,
                                 .source = n % 5 == 0 ? v1::SPAN_SOURCE_APPLICATION : v1::SPAN_SOURCE_SYSTEM,
                                 .kind = n % 2 ? v1::SPAN_KIND_CLIENT : v1::SPAN_KIND_SERVER,
                                 .endpoint = n % 3 ? "GET /list" : "GET /list/item",
                                 .start_ns = t0 + n * kSec / 10, .end_ns = t0 + n * kSec / 10 + 1000 * n});
    }
    ASSERT_TRUE(store->WriteBatch(Ctx(), b).ok());
  }
  RequestLogQuery q;
  q.range = {t0, t0 + 10 * kSec};
  q.limit = 7;
  auto log = store->RequestLog(q);
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(log->size(), 7u);
  // Newest first, application spans are not captured exchanges.
  std::vector<uint64_t> want;
  for (uint64_t n = 29; want.size() < 7; --n)
    if (n % 5 != 0) want.push_back(t0 + n * kSec / 10);
  for (size_t i = 0; i < 7; ++i) EXPECT_EQ((*log)[i].span.start_unix_ns(), want[i]) << i;
  q.limit = 100;
  q.kind = v1::SPAN_KIND_SERVER;
  q.endpoint = "/item";
  size_t expect = 0;
  for (uint64_t n = 0; n < 30; ++n) expect += (n % 5 != 0 && n % 2 == 0 && n % 3 == 0);
  EXPECT_EQ(store->RequestLog(q)->size(), expect);

  RedQuery rq;  // RED from spans: exact endpoint, kind, range by span start
  rq.range = {t0 + kSec, t0 + 2 * kSec};
  rq.endpoint = "GET /list";
  rq.kind = v1::SPAN_KIND_CLIENT;
  auto samples = store->SpanSamples(rq);
  ASSERT_TRUE(samples.ok());
  expect = 0;
  for (uint64_t n = 10; n <= 20; ++n) expect += (n % 3 != 0 && n % 2 == 1);
  EXPECT_EQ(samples->size(), expect);
  for (const auto& s : *samples) EXPECT_EQ(s.duration_ns, 1000 * ((s.start_ns - t0) / (kSec / 10)));

  EndpointQuery eq;  // rollup: per service/endpoint/source/kind
  eq.range = q.range;
  eq.source = v1::SPAN_SOURCE_SYSTEM;
  auto eps = store->Endpoints(eq);
  ASSERT_TRUE(eps.ok());
  uint64_t total = 0;
  for (const auto& e : *eps) total += e.count;
  EXPECT_EQ(total, 24u);
}

// More distinct endpoints in one row than its search list keeps: the row is
// marked "any" and still found (each span is checked after decoding).
TEST(SqliteStorage, ManyDistinctValuesInOneRow) {
  testing::TempDir dir;
  auto store = OpenAt(dir.path());
  const uint64_t t0 = 1700000000 * kSec;
  v1::Batch b;
  b.set_sequence(1);
  for (uint64_t i = 0; i < 400; ++i)
    *b.add_spans() = MakeSpan({.trace = 1, .id = i + 1, .endpoint = "GET /endpoint/number/" + std::to_string(i),
                               .start_ns = t0 + i, .end_ns = t0 + i + 1});
  ASSERT_TRUE(store->WriteBatch(Ctx(), b).ok());
  TraceQuery q;
  q.range = {t0, t0 + kSec};
  q.endpoint = "/number/399";
  EXPECT_EQ(store->SearchTraces(q)->size(), 1u);
  q.endpoint = "/number/400";
  EXPECT_EQ(store->SearchTraces(q)->size(), 0u);
  EXPECT_EQ(store->Trace(testing::TraceId(1))->size(), 400u);
}

// A schema version 1 database (one row per span) is rewritten on open.
TEST(SqliteStorage, MigratesSchemaV1) {
  testing::TempDir dir;
  const auto path = (dir.path() / "sonde.db").string();
  const uint64_t t0 = 1700000000 * kSec;
  {
    auto db = std::move(*sqlite::Database::Open(path, false));
    ASSERT_TRUE(db->Exec(R"sql(
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      INSERT INTO meta VALUES ('schema_version', '1');
      CREATE TABLE spans (
        trace_id BLOB NOT NULL, span_id BLOB NOT NULL, parent_id BLOB,
        source INTEGER NOT NULL, kind INTEGER NOT NULL, service TEXT NOT NULL, endpoint TEXT NOT NULL,
        start_ns INTEGER NOT NULL, dur_ns INTEGER NOT NULL, http_status INTEGER NOT NULL,
        is_error INTEGER NOT NULL, pid INTEGER NOT NULL, host TEXT NOT NULL,
        attrs TEXT NOT NULL, detail BLOB NOT NULL);
      CREATE INDEX spans_trace ON spans(trace_id);
      CREATE TABLE ingest_progress (
        instance_id TEXT PRIMARY KEY, node_id TEXT NOT NULL, host TEXT NOT NULL,
        last_sequence INTEGER NOT NULL, last_seen_ns INTEGER NOT NULL);
      INSERT INTO ingest_progress VALUES ('inst-1', 'node-a', 'host-a', 7, 0);
    )sql").ok());
    auto ins = std::move(*db->Prepare(
        "INSERT INTO spans VALUES (?, x'00', NULL, 2, 1, 'svc', 'GET /', ?, 10, 200, 0, 1, ?, '\n', ?)"));
    ASSERT_TRUE(db->Exec("BEGIN").ok());
    for (uint64_t i = 0; i < 12000; ++i) {  // more than one migration chunk
      auto sp = MakeSpan({.trace = i % 3001, .id = i + 1, .start_ns = t0 + i, .end_ns = t0 + i + 10});
      ins.BindBlob(1, sp.trace_id());
      ins.Bind(2, sp.start_unix_ns());
      ins.Bind(3, i % 2 ? "host-a" : "host-b");
      ins.BindBlob(4, sp.SerializeAsString());
      ASSERT_TRUE(ins.Run().ok());
    }
    ASSERT_TRUE(db->Exec("COMMIT").ok());
  }
  auto store = OpenAt(dir.path());
  ASSERT_TRUE(store);
  EXPECT_EQ(store->schema_version(), 2);
  EXPECT_EQ(store->Stats().spans, 12000u);
  auto t = store->Trace(testing::TraceId(7));
  ASSERT_TRUE(t.ok());
  ASSERT_EQ(t->size(), 4u);
  EXPECT_EQ((*t)[0].span.span_id(), testing::SpanId(8));
  EXPECT_EQ((*t)[0].host, "host-a");  // rows 7, 3008, 6009, 9010: hosts alternate
  EXPECT_EQ((*t)[1].span.span_id(), testing::SpanId(3009));
  EXPECT_EQ((*t)[1].host, "host-b");
  TraceQuery q;
  q.range = {t0, t0 + kSec};
  q.limit = 1000;
  EXPECT_EQ(store->SearchTraces(q)->size(), 1000u);
  // The resend state came along too.
  v1::Batch again;
  again.set_sequence(7);
  *again.add_spans() = MakeSpan({.trace = 1, .id = 99999});
  EXPECT_FALSE(*store->WriteBatch(Ctx(), again));
  store.reset();
  auto db = std::move(*sqlite::Database::Open((dir.path() / "sonde.db").string(), true));
  auto old = std::move(*db->Prepare("SELECT COUNT(*) FROM sqlite_master WHERE name = 'spans'"));
  ASSERT_TRUE(*old.Step());
  EXPECT_EQ(old.Int(0), 0);
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
