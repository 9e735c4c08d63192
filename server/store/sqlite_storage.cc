#include "server/store/sqlite_storage.h"

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <variant>

#include "absl/strings/str_cat.h"

namespace sonde::server {
namespace {

#define RETURN_IF_ERROR(expr)            \
  do {                                   \
    absl::Status _st = (expr);           \
    if (!_st.ok()) return _st;           \
  } while (0)

// Schema version 1. Later versions add migrations keyed on meta.schema_version.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS spans (
  trace_id BLOB NOT NULL, span_id BLOB NOT NULL, parent_id BLOB,
  source INTEGER NOT NULL, kind INTEGER NOT NULL,
  service TEXT NOT NULL, endpoint TEXT NOT NULL,
  start_ns INTEGER NOT NULL, dur_ns INTEGER NOT NULL,
  http_status INTEGER NOT NULL, is_error INTEGER NOT NULL,
  pid INTEGER NOT NULL, host TEXT NOT NULL,
  attrs TEXT NOT NULL, detail BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS spans_trace ON spans(trace_id);
CREATE INDEX IF NOT EXISTS spans_time ON spans(start_ns);
CREATE INDEX IF NOT EXISTS spans_service_endpoint ON spans(service, endpoint, start_ns);
CREATE TABLE IF NOT EXISTS requests (
  start_ns INTEGER NOT NULL, comm TEXT NOT NULL, path TEXT NOT NULL, status INTEGER NOT NULL,
  host TEXT NOT NULL, detail BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS requests_time ON requests(start_ns);
CREATE TABLE IF NOT EXISTS red (
  start_ns INTEGER NOT NULL, service TEXT NOT NULL, endpoint TEXT NOT NULL,
  host TEXT NOT NULL, detail BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS red_time ON red(start_ns);
CREATE INDEX IF NOT EXISTS red_service ON red(service, endpoint, start_ns);
CREATE TABLE IF NOT EXISTS tcp (
  start_ns INTEGER NOT NULL, server_addr TEXT NOT NULL, server_port INTEGER NOT NULL,
  host TEXT NOT NULL, detail BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS tcp_time ON tcp(start_ns);
CREATE TABLE IF NOT EXISTS stacks (
  start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL, host TEXT NOT NULL,
  pid INTEGER NOT NULL, tid INTEGER NOT NULL, comm TEXT NOT NULL, kind INTEGER NOT NULL,
  stack TEXT NOT NULL, count INTEGER NOT NULL, value INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS stacks_time ON stacks(kind, start_ns);
CREATE TABLE IF NOT EXISTS otlp (
  received_ns INTEGER NOT NULL, host TEXT NOT NULL, signal INTEGER NOT NULL, payload BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS otlp_time ON otlp(received_ns);
CREATE TABLE IF NOT EXISTS processes (
  host TEXT NOT NULL, pid INTEGER NOT NULL, last_seen_ns INTEGER NOT NULL, detail BLOB NOT NULL,
  PRIMARY KEY (host, pid));
CREATE TABLE IF NOT EXISTS hosts (
  host TEXT PRIMARY KEY, last_seen_ns INTEGER NOT NULL, detail BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS ingest_progress (
  instance_id TEXT PRIMARY KEY, node_id TEXT NOT NULL, host TEXT NOT NULL,
  last_sequence INTEGER NOT NULL, last_seen_ns INTEGER NOT NULL);
)sql";

int64_t I64(uint64_t v) { return v > INT64_MAX ? INT64_MAX : static_cast<int64_t>(v); }

bool SpanIsError(const v1::Span& s) {
  return s.status() == v1::STATUS_CODE_ERROR || s.http_status() >= 500 || s.grpc_status() > 0;
}

std::string ServiceOf(const v1::Span& s) {
  if (!s.service_name().empty()) return s.service_name();
  if (!s.comm().empty()) return s.comm();
  return "unknown";
}

std::string EndpointOf(const v1::Span& s) { return s.endpoint().empty() ? s.name() : s.endpoint(); }

// "\nkey=value\n..." so that instr(attrs, '\nkey=value\n') finds one attribute.
std::string AttributeText(const v1::Span& s) {
  std::string out = "\n";
  for (const auto& a : s.attributes()) {
    out += a.key();
    out += '=';
    switch (a.value_case()) {
      case v1::Attribute::kStringValue: out += a.string_value(); break;
      case v1::Attribute::kIntValue: out += std::to_string(a.int_value()); break;
      case v1::Attribute::kDoubleValue: {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%g", a.double_value());
        out += buf;
        break;
      }
      case v1::Attribute::kBoolValue: out += a.bool_value() ? "true" : "false"; break;
      default: break;
    }
    out += '\n';
  }
  return out;
}

bool AllZero(const std::string& b) {
  for (char c : b)
    if (c != 0) return false;
  return true;
}

// Builds "WHERE ..." clauses whose values are bound in order.
class Where {
 public:
  using Value = std::variant<int64_t, std::string>;
  void Add(std::string clause, std::vector<Value> values = {}) {
    sql_ += sql_.empty() ? " WHERE " : " AND ";
    sql_ += clause;
    for (auto& v : values) values_.push_back(std::move(v));
  }
  const std::string& sql() const { return sql_; }
  // Binds from index `first`; returns the next free index.
  int Bind(sqlite::Statement& st, int first = 1) const {
    int i = first;
    for (const auto& v : values_) {
      if (const auto* n = std::get_if<int64_t>(&v)) st.Bind(i++, *n);
      else st.Bind(i++, std::get<std::string>(v));
    }
    return i;
  }

 private:
  std::string sql_;
  std::vector<Value> values_;
};

void AddRange(Where& w, const char* column, const TimeRange& r) {
  w.Add(absl::StrCat(column, " >= ?"), {I64(r.from_ns)});
  w.Add(absl::StrCat(column, " <= ?"), {I64(r.to_ns)});
}

}  // namespace

// ----- hex ---------------------------------------------------------------

std::string HexEncode(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

bool HexDecode(std::string_view hex, std::string* out) {
  if (hex.size() % 2 != 0) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  out->clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi << 4 | lo));
  }
  return true;
}

// ----- connections -------------------------------------------------------

class SqliteStorage::ReadLease {
 public:
  ReadLease(SqliteStorage* owner, std::unique_ptr<sqlite::Database> db)
      : owner_(owner), db_(std::move(db)) {}
  ReadLease(ReadLease&&) = default;
  ReadLease& operator=(ReadLease&&) = default;
  ~ReadLease() {
    if (db_) owner_->ReleaseReader(std::move(db_));
  }
  sqlite::Database* operator->() const { return db_.get(); }

 private:
  SqliteStorage* owner_;
  std::unique_ptr<sqlite::Database> db_;
};

struct SqliteStorage::WriteStatements {
  sqlite::Statement begin, commit, rollback;
  sqlite::Statement get_progress, put_progress;
  sqlite::Statement span, request, red, tcp, stack, otlp, process, host;
};

SqliteStorage::SqliteStorage(Options options) : options_(std::move(options)) {}
SqliteStorage::~SqliteStorage() = default;

absl::StatusOr<std::unique_ptr<SqliteStorage>> SqliteStorage::Open(const Options& options) {
  std::unique_ptr<SqliteStorage> s(new SqliteStorage(options));
  RETURN_IF_ERROR(s->Init());
  return s;
}

absl::Status SqliteStorage::Init() {
  auto w = sqlite::Database::Open(options_.path, false);
  if (!w.ok()) return w.status();
  writer_ = std::move(*w);
  RETURN_IF_ERROR(writer_->Exec("PRAGMA journal_mode=WAL"));
  RETURN_IF_ERROR(writer_->Exec(options_.synchronous_full ? "PRAGMA synchronous=FULL"
                                                          : "PRAGMA synchronous=NORMAL"));
  // Bigger cache and fewer, larger checkpoints: ingest is append-mostly.
  RETURN_IF_ERROR(writer_->Exec(
      "PRAGMA temp_store=MEMORY; PRAGMA cache_size=-131072; PRAGMA wal_autocheckpoint=8192; "
      "PRAGMA mmap_size=268435456"));
  RETURN_IF_ERROR(writer_->Exec("BEGIN IMMEDIATE"));
  auto st = writer_->Exec(kSchemaV1);
  if (!st.ok()) {
    (void)writer_->Exec("ROLLBACK");
    return st;
  }
  {
    auto q = writer_->Prepare("SELECT value FROM meta WHERE key = 'schema_version'");
    if (!q.ok()) return q.status();
    auto row = q->Step();
    if (!row.ok()) return row.status();
    schema_version_ = *row ? std::stoi(q->Text(0)) : 0;
  }
  if (schema_version_ == 0) {
    auto ins = writer_->Prepare("INSERT INTO meta(key, value) VALUES ('schema_version', ?)");
    if (!ins.ok()) return ins.status();
    ins->Bind(1, std::to_string(kSchemaVersion));
    RETURN_IF_ERROR(ins->Run());
    schema_version_ = kSchemaVersion;
  } else if (schema_version_ > kSchemaVersion) {
    (void)writer_->Exec("ROLLBACK");
    return absl::FailedPreconditionError(absl::StrCat(
        "database schema version ", schema_version_, " is newer than this server (",
        kSchemaVersion, ")"));
  }
  RETURN_IF_ERROR(writer_->Exec("COMMIT"));

  stmts_ = std::make_unique<WriteStatements>();
  auto prep = [&](sqlite::Statement* out, const char* sql) -> absl::Status {
    auto p = writer_->Prepare(sql, true);
    if (!p.ok()) return p.status();
    *out = std::move(*p);
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(prep(&stmts_->begin, "BEGIN IMMEDIATE"));
  RETURN_IF_ERROR(prep(&stmts_->commit, "COMMIT"));
  RETURN_IF_ERROR(prep(&stmts_->rollback, "ROLLBACK"));
  RETURN_IF_ERROR(prep(&stmts_->get_progress,
                       "SELECT last_sequence FROM ingest_progress WHERE instance_id = ?"));
  RETURN_IF_ERROR(prep(&stmts_->put_progress,
                       "INSERT INTO ingest_progress(instance_id, node_id, host, last_sequence, "
                       "last_seen_ns) VALUES (?,?,?,?,?) ON CONFLICT(instance_id) DO UPDATE SET "
                       "last_sequence = excluded.last_sequence, last_seen_ns = excluded.last_seen_ns"));
  RETURN_IF_ERROR(prep(&stmts_->span,
                       "INSERT INTO spans(trace_id, span_id, parent_id, source, kind, service, "
                       "endpoint, start_ns, dur_ns, http_status, is_error, pid, host, attrs, detail) "
                       "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
  RETURN_IF_ERROR(prep(&stmts_->request,
                       "INSERT INTO requests(start_ns, comm, path, status, host, detail) "
                       "VALUES (?,?,?,?,?,?)"));
  RETURN_IF_ERROR(prep(&stmts_->red,
                       "INSERT INTO red(start_ns, service, endpoint, host, detail) VALUES (?,?,?,?,?)"));
  RETURN_IF_ERROR(prep(&stmts_->tcp,
                       "INSERT INTO tcp(start_ns, server_addr, server_port, host, detail) "
                       "VALUES (?,?,?,?,?)"));
  RETURN_IF_ERROR(prep(&stmts_->stack,
                       "INSERT INTO stacks(start_ns, end_ns, host, pid, tid, comm, kind, stack, "
                       "count, value) VALUES (?,?,?,?,?,?,?,?,?,?)"));
  RETURN_IF_ERROR(prep(&stmts_->otlp,
                       "INSERT INTO otlp(received_ns, host, signal, payload) VALUES (?,?,?,?)"));
  RETURN_IF_ERROR(prep(&stmts_->process,
                       "INSERT OR REPLACE INTO processes(host, pid, last_seen_ns, detail) "
                       "VALUES (?,?,?,?)"));
  RETURN_IF_ERROR(prep(&stmts_->host,
                       "INSERT OR REPLACE INTO hosts(host, last_seen_ns, detail) VALUES (?,?,?)"));

  for (int i = 0; i < options_.read_connections; ++i) {
    auto r = sqlite::Database::Open(options_.path, true);
    if (!r.ok()) return r.status();
    readers_.push_back(std::move(*r));
  }
  auto count = writer_->Prepare("SELECT COUNT(*) FROM spans");
  if (count.ok() && count->Step().value_or(false)) stats_.spans = static_cast<uint64_t>(count->Int(0));
  return absl::OkStatus();
}

absl::StatusOr<SqliteStorage::ReadLease> SqliteStorage::AcquireReader() {
  {
    std::lock_guard lock(read_mu_);
    if (!readers_.empty()) {
      auto db = std::move(readers_.back());
      readers_.pop_back();
      return ReadLease(this, std::move(db));
    }
  }
  // Pool exhausted: open one more; it joins the pool when released.
  auto db = sqlite::Database::Open(options_.path, true);
  if (!db.ok()) return db.status();
  return ReadLease(this, std::move(*db));
}

void SqliteStorage::ReleaseReader(std::unique_ptr<sqlite::Database> db) {
  std::lock_guard lock(read_mu_);
  if (readers_.size() < static_cast<size_t>(options_.read_connections) * 2)
    readers_.push_back(std::move(db));
}

// ----- writes ------------------------------------------------------------

absl::StatusOr<bool> SqliteStorage::WriteBatch(const IngestContext& ctx, const v1::Batch& batch) {
  std::lock_guard lock(write_mu_);
  auto& s = *stmts_;
  RETURN_IF_ERROR(s.begin.Run());
  if (batch.sequence() != 0 && !ctx.instance_id.empty()) {
    s.get_progress.Bind(1, ctx.instance_id);
    auto row = s.get_progress.Step();
    bool duplicate = row.ok() && *row && static_cast<uint64_t>(s.get_progress.Int(0)) >= batch.sequence();
    s.get_progress.Reset();
    if (!row.ok() || duplicate) {
      (void)s.rollback.Run();
      if (!row.ok()) return row.status();
      ++stats_.duplicate_batches;
      return false;
    }
  }
  absl::Status st = InsertBatchLocked(ctx, batch);
  if (!st.ok()) {
    (void)s.rollback.Run();
    return st;
  }
  st = s.commit.Run();
  if (!st.ok()) {
    (void)s.rollback.Run();
    return st;
  }
  ++stats_.batches;
  stats_.spans += static_cast<uint64_t>(batch.spans_size());
  return true;
}

absl::Status SqliteStorage::InsertBatchLocked(const IngestContext& ctx, const v1::Batch& batch) {
  auto& s = *stmts_;
  const uint64_t now = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::system_clock::now().time_since_epoch()).count());
  std::string detail;
  for (const auto& span : batch.spans()) {
    auto& st = s.span;
    st.BindBlob(1, span.trace_id());
    st.BindBlob(2, span.span_id());
    if (span.parent_span_id().empty() || AllZero(span.parent_span_id())) st.BindNull(3);
    else st.BindBlob(3, span.parent_span_id());
    st.Bind(4, static_cast<int>(span.source()));
    st.Bind(5, static_cast<int>(span.kind()));
    st.Bind(6, ServiceOf(span));
    st.Bind(7, EndpointOf(span));
    st.Bind(8, I64(span.start_unix_ns()));
    st.Bind(9, I64(span.end_unix_ns() > span.start_unix_ns() ? span.end_unix_ns() - span.start_unix_ns() : 0));
    st.Bind(10, span.http_status());
    st.Bind(11, SpanIsError(span) ? 1 : 0);
    st.Bind(12, span.pid());
    st.Bind(13, ctx.host);
    st.Bind(14, AttributeText(span));
    span.SerializeToString(&detail);
    st.BindBlob(15, detail);
    RETURN_IF_ERROR(st.Run());
  }
  for (const auto& r : batch.requests()) {
    auto& st = s.request;
    st.Bind(1, I64(r.start_unix_ns()));
    st.Bind(2, r.comm());
    st.Bind(3, r.path());
    st.Bind(4, r.status());
    st.Bind(5, ctx.host);
    r.SerializeToString(&detail);
    st.BindBlob(6, detail);
    RETURN_IF_ERROR(st.Run());
  }
  for (const auto& r : batch.red()) {
    auto& st = s.red;
    st.Bind(1, I64(r.window_start_unix_ns()));
    st.Bind(2, r.service_name().empty() ? r.comm() : r.service_name());
    st.Bind(3, r.endpoint());
    st.Bind(4, ctx.host);
    r.SerializeToString(&detail);
    st.BindBlob(5, detail);
    RETURN_IF_ERROR(st.Run());
  }
  for (const auto& t : batch.tcp()) {
    auto& st = s.tcp;
    st.Bind(1, I64(t.window_start_unix_ns()));
    st.Bind(2, t.server().address());
    st.Bind(3, t.server().port());
    st.Bind(4, ctx.host);
    t.SerializeToString(&detail);
    st.BindBlob(5, detail);
    RETURN_IF_ERROR(st.Run());
  }
  for (const auto& f : batch.profile().stacks()) {
    auto& st = s.stack;
    st.Bind(1, I64(f.window_start_unix_ns()));
    st.Bind(2, I64(f.window_end_unix_ns()));
    st.Bind(3, ctx.host);
    st.Bind(4, f.pid());
    st.Bind(5, f.tid());
    st.Bind(6, f.comm());
    st.Bind(7, static_cast<int>(f.kind()));
    st.Bind(8, f.stack());
    st.Bind(9, I64(f.count()));
    st.Bind(10, I64(f.value() ? f.value() : f.count()));
    RETURN_IF_ERROR(st.Run());
  }
  for (const auto& o : batch.otlp()) {
    auto& st = s.otlp;
    st.Bind(1, I64(o.received_unix_ns() ? o.received_unix_ns() : now));
    st.Bind(2, ctx.host);
    st.Bind(3, static_cast<int>(o.signal()));
    st.BindBlob(4, o.payload());
    RETURN_IF_ERROR(st.Run());
  }
  for (const auto& p : batch.processes()) {
    auto& st = s.process;
    st.Bind(1, ctx.host);
    st.Bind(2, p.pid());
    st.Bind(3, I64(now));
    p.SerializeToString(&detail);
    st.BindBlob(4, detail);
    RETURN_IF_ERROR(st.Run());
  }
  if (batch.has_host()) {
    auto& st = s.host;
    st.Bind(1, batch.host().host_name().empty() ? ctx.host : batch.host().host_name());
    st.Bind(2, I64(now));
    batch.host().SerializeToString(&detail);
    st.BindBlob(3, detail);
    RETURN_IF_ERROR(st.Run());
  }
  if (batch.sequence() != 0 && !ctx.instance_id.empty()) {
    auto& st = s.put_progress;
    st.Bind(1, ctx.instance_id);
    st.Bind(2, ctx.node_id);
    st.Bind(3, ctx.host);
    st.Bind(4, I64(batch.sequence()));
    st.Bind(5, I64(now));
    RETURN_IF_ERROR(st.Run());
  }
  return absl::OkStatus();
}

// ----- reads -------------------------------------------------------------

absl::StatusOr<std::vector<EndpointSummary>> SqliteStorage::Endpoints(const EndpointQuery& q) {
  Where w;
  AddRange(w, "start_ns", q.range);
  if (q.service) w.Add("service = ?", {*q.service});
  if (q.source) w.Add("source = ?", {int64_t{*q.source}});
  if (q.kind) w.Add("kind = ?", {int64_t{*q.kind}});
  auto db = AcquireReader();
  if (!db.ok()) return db.status();
  auto st = (*db)->Prepare(absl::StrCat(
      "SELECT service, endpoint, source, kind, COUNT(*), SUM(is_error), SUM(dur_ns), MAX(dur_ns) "
      "FROM spans", w.sql(), " GROUP BY service, endpoint, source, kind ORDER BY COUNT(*) DESC "
      "LIMIT 2000"));
  if (!st.ok()) return st.status();
  w.Bind(*st);
  std::vector<EndpointSummary> out;
  for (;;) {
    auto row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    EndpointSummary e;
    e.service = st->Text(0);
    e.endpoint = st->Text(1);
    e.source = static_cast<int>(st->Int(2));
    e.kind = static_cast<int>(st->Int(3));
    e.count = static_cast<uint64_t>(st->Int(4));
    e.errors = static_cast<uint64_t>(st->Int(5));
    e.duration_sum_ns = static_cast<uint64_t>(st->Int(6));
    e.duration_max_ns = static_cast<uint64_t>(st->Int(7));
    out.push_back(std::move(e));
  }
  return out;
}

absl::StatusOr<std::vector<TraceSummary>> SqliteStorage::SearchTraces(const TraceQuery& q) {
  Where w;
  AddRange(w, "start_ns", q.range);
  if (q.service) w.Add("service = ?", {*q.service});
  if (q.endpoint) w.Add("instr(endpoint, ?) > 0", {*q.endpoint});
  if (q.http_status) w.Add("http_status = ?", {int64_t{*q.http_status}});
  if (q.status_class)
    w.Add("http_status >= ? AND http_status < ?",
          {int64_t{*q.status_class} * 100, int64_t{*q.status_class} * 100 + 100});
  if (q.error) w.Add("is_error = ?", {int64_t{*q.error ? 1 : 0}});
  if (q.min_duration_ns) w.Add("dur_ns >= ?", {I64(*q.min_duration_ns)});
  for (const auto& a : q.attributes)
    w.Add("instr(attrs, ?) > 0", {absl::StrCat("\n", a.key, "=", a.value, "\n")});
  auto db = AcquireReader();
  if (!db.ok()) return db.status();
  auto st = (*db)->Prepare(absl::StrCat("SELECT trace_id, MIN(start_ns) AS t FROM spans", w.sql(),
                                        " GROUP BY trace_id ORDER BY t DESC LIMIT ?"));
  if (!st.ok()) return st.status();
  int next = w.Bind(*st);
  st->Bind(next, q.limit);
  std::vector<std::string> ids;
  for (;;) {
    auto row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    ids.push_back(st->Blob(0));
  }
  auto agg = (*db)->Prepare(
      "SELECT MIN(start_ns), MAX(start_ns + dur_ns), COUNT(*), SUM(is_error), "
      "group_concat(DISTINCT source) FROM spans WHERE trace_id = ?");
  auto root = (*db)->Prepare(
      "SELECT service, endpoint FROM spans WHERE trace_id = ? "
      "ORDER BY (parent_id IS NULL) DESC, start_ns ASC, dur_ns DESC LIMIT 1");
  if (!agg.ok()) return agg.status();
  if (!root.ok()) return root.status();
  std::vector<TraceSummary> out;
  for (const auto& id : ids) {
    TraceSummary t;
    t.trace_id = HexEncode(id);
    agg->BindBlob(1, id);
    if (auto r = agg->Step(); r.ok() && *r) {
      t.start_ns = static_cast<uint64_t>(agg->Int(0));
      t.end_ns = static_cast<uint64_t>(agg->Int(1));
      t.span_count = static_cast<uint64_t>(agg->Int(2));
      t.error_count = static_cast<uint64_t>(agg->Int(3));
      std::string srcs = agg->Text(4);
      for (char c : std::string("123")) {
        if (srcs.find(c) != std::string::npos) t.sources += "?ASN"[c - '0'];
      }
    }
    agg->Reset();
    root->BindBlob(1, id);
    if (auto r = root->Step(); r.ok() && *r) {
      t.root_service = root->Text(0);
      t.root_endpoint = root->Text(1);
    }
    root->Reset();
    out.push_back(std::move(t));
  }
  return out;
}

absl::StatusOr<std::vector<StoredSpan>> SqliteStorage::Trace(const std::string& trace_id) {
  auto db = AcquireReader();
  if (!db.ok()) return db.status();
  auto st = (*db)->Prepare("SELECT detail, host FROM spans WHERE trace_id = ? ORDER BY start_ns");
  if (!st.ok()) return st.status();
  st->BindBlob(1, trace_id);
  std::vector<StoredSpan> out;
  for (;;) {
    auto row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    StoredSpan s;
    const void* p = sqlite3_column_blob(st->get(), 0);
    if (!s.span.ParseFromArray(p, sqlite3_column_bytes(st->get(), 0))) continue;
    s.host = st->Text(1);
    out.push_back(std::move(s));
  }
  return out;
}

absl::StatusOr<std::vector<StoredSpan>> SqliteStorage::RequestLog(const RequestLogQuery& q) {
  Where w;
  AddRange(w, "start_ns", q.range);
  w.Add("source IN (2, 3)");  // captured exchanges: system and network spans
  if (q.service) w.Add("service = ?", {*q.service});
  if (q.endpoint) w.Add("instr(endpoint, ?) > 0", {*q.endpoint});
  if (q.status_class)
    w.Add("http_status >= ? AND http_status < ?",
          {int64_t{*q.status_class} * 100, int64_t{*q.status_class} * 100 + 100});
  if (q.kind) w.Add("kind = ?", {int64_t{*q.kind}});
  auto db = AcquireReader();
  if (!db.ok()) return db.status();
  auto st = (*db)->Prepare(
      absl::StrCat("SELECT detail, host FROM spans", w.sql(), " ORDER BY start_ns DESC LIMIT ?"));
  if (!st.ok()) return st.status();
  st->Bind(w.Bind(*st), q.limit);
  std::vector<StoredSpan> out;
  for (;;) {
    auto row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    StoredSpan s;
    const void* p = sqlite3_column_blob(st->get(), 0);
    if (!s.span.ParseFromArray(p, sqlite3_column_bytes(st->get(), 0))) continue;
    s.host = st->Text(1);
    out.push_back(std::move(s));
  }
  return out;
}

absl::StatusOr<std::vector<v1::RequestRecord>> SqliteStorage::RequestRecords(
    const RequestLogQuery& q) {
  Where w;
  AddRange(w, "start_ns", q.range);
  if (q.service) w.Add("comm = ?", {*q.service});
  if (q.endpoint) w.Add("instr(path, ?) > 0", {*q.endpoint});
  if (q.status_class)
    w.Add("status >= ? AND status < ?",
          {int64_t{*q.status_class} * 100, int64_t{*q.status_class} * 100 + 100});
  auto db = AcquireReader();
  if (!db.ok()) return db.status();
  auto st = (*db)->Prepare(
      absl::StrCat("SELECT detail FROM requests", w.sql(), " ORDER BY start_ns DESC LIMIT ?"));
  if (!st.ok()) return st.status();
  st->Bind(w.Bind(*st), q.limit);
  std::vector<v1::RequestRecord> out;
  for (;;) {
    auto row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    v1::RequestRecord r;
    const void* p = sqlite3_column_blob(st->get(), 0);
    if (r.ParseFromArray(p, sqlite3_column_bytes(st->get(), 0))) out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<std::vector<StoredRedWindow>> SqliteStorage::RedWindows(const RedQuery& q) {
  Where w;
  AddRange(w, "start_ns", q.range);
  if (q.service) w.Add("service = ?", {*q.service});
  if (q.endpoint) w.Add("endpoint = ?", {*q.endpoint});
  auto db = AcquireReader();
  if (!db.ok()) return db.status();
  auto st = (*db)->Prepare(absl::StrCat("SELECT detail, host FROM red", w.sql(),
                                        " ORDER BY start_ns LIMIT 200000"));
  if (!st.ok()) return st.status();
  w.Bind(*st);
  std::vector<StoredRedWindow> out;
  for (;;) {
    auto row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    StoredRedWindow r;
    const void* p = sqlite3_column_blob(st->get(), 0);
    if (!r.window.ParseFromArray(p, sqlite3_column_bytes(st->get(), 0))) continue;
    r.host = st->Text(1);
    out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<std::vector<SpanSample>> SqliteStorage::SpanSamples(const RedQuery& q) {
  Where w;
  AddRange(w, "start_ns", q.range);
  if (q.service) w.Add("service = ?", {*q.service});
  if (q.endpoint) w.Add("endpoint = ?", {*q.endpoint});
  if (q.kind) w.Add("kind = ?", {int64_t{*q.kind}});
  auto db = AcquireReader();
  if (!db.ok()) return db.status();
  auto st = (*db)->Prepare(absl::StrCat("SELECT start_ns, dur_ns, is_error FROM spans", w.sql(),
                                        " LIMIT 2000000"));
  if (!st.ok()) return st.status();
  w.Bind(*st);
  std::vector<SpanSample> out;
  for (;;) {
    auto row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back({static_cast<uint64_t>(st->Int(0)), static_cast<uint64_t>(st->Int(1)),
                   st->Int(2) != 0});
  }
  return out;
}

absl::StatusOr<std::vector<StoredTcpWindow>> SqliteStorage::TcpWindows(const TcpQuery& q) {
  Where w;
  AddRange(w, "start_ns", q.range);
  if (q.server_address) w.Add("server_addr = ?", {*q.server_address});
  if (q.server_port) w.Add("server_port = ?", {int64_t{*q.server_port}});
  auto db = AcquireReader();
  if (!db.ok()) return db.status();
  auto st = (*db)->Prepare(absl::StrCat("SELECT detail, host FROM tcp", w.sql(),
                                        " ORDER BY start_ns LIMIT 200000"));
  if (!st.ok()) return st.status();
  w.Bind(*st);
  std::vector<StoredTcpWindow> out;
  for (;;) {
    auto row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    StoredTcpWindow t;
    const void* p = sqlite3_column_blob(st->get(), 0);
    if (!t.window.ParseFromArray(p, sqlite3_column_bytes(st->get(), 0))) continue;
    t.host = st->Text(1);
    out.push_back(std::move(t));
  }
  return out;
}

absl::StatusOr<std::vector<StackValue>> SqliteStorage::Stacks(const ProfileQuery& q) {
  Where w;
  w.Add("kind = ?", {int64_t{q.kind}});
  // A window overlaps the range.
  w.Add("start_ns <= ?", {I64(q.range.to_ns)});
  w.Add("end_ns >= ?", {I64(q.range.from_ns)});
  if (q.pid) w.Add("pid = ?", {int64_t{*q.pid}});
  if (q.host) w.Add("host = ?", {*q.host});
  auto db = AcquireReader();
  if (!db.ok()) return db.status();
  auto st = (*db)->Prepare(
      absl::StrCat("SELECT stack, SUM(value) FROM stacks", w.sql(), " GROUP BY stack"));
  if (!st.ok()) return st.status();
  w.Bind(*st);
  std::vector<StackValue> out;
  for (;;) {
    auto row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back({st->Text(0), static_cast<uint64_t>(st->Int(1))});
  }
  return out;
}

absl::StatusOr<std::vector<ProcessRow>> SqliteStorage::Processes() {
  auto db = AcquireReader();
  if (!db.ok()) return db.status();
  auto st = (*db)->Prepare("SELECT host, detail, last_seen_ns FROM processes ORDER BY host, pid");
  if (!st.ok()) return st.status();
  std::vector<ProcessRow> out;
  for (;;) {
    auto row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    ProcessRow p;
    p.host = st->Text(0);
    const void* d = sqlite3_column_blob(st->get(), 1);
    p.info.ParseFromArray(d, sqlite3_column_bytes(st->get(), 1));
    p.last_seen_ns = static_cast<uint64_t>(st->Int(2));
    out.push_back(std::move(p));
  }
  return out;
}

// ----- retention ---------------------------------------------------------

absl::StatusOr<RetentionResult> SqliteStorage::EnforceRetention(uint64_t now_ns,
                                                               const RetentionPolicy& policy) {
  RetentionResult result;
  const int64_t span_cut = now_ns > policy.spans_ns ? I64(now_ns - policy.spans_ns) : 0;
  const int64_t metric_cut = now_ns > policy.metrics_ns ? I64(now_ns - policy.metrics_ns) : 0;
  struct Target {
    const char* table;
    const char* column;
    int64_t cut;
    bool spans;
  };
  const Target targets[] = {
      {"spans", "start_ns", span_cut, true},      {"requests", "start_ns", span_cut, false},
      {"stacks", "start_ns", span_cut, false},    {"red", "start_ns", metric_cut, false},
      {"tcp", "start_ns", metric_cut, false},     {"otlp", "received_ns", metric_cut, false},
      {"processes", "last_seen_ns", metric_cut, false},
  };
  for (const auto& t : targets) {
    // Delete in chunks so that ingest never waits long for the write lock.
    std::string sql = absl::StrCat("DELETE FROM ", t.table, " WHERE rowid IN (SELECT rowid FROM ",
                                   t.table, " WHERE ", t.column, " < ? LIMIT 20000)");
    for (;;) {
      std::lock_guard lock(write_mu_);
      auto st = writer_->Prepare(sql);
      if (!st.ok()) return st.status();
      st->Bind(1, t.cut);
      RETURN_IF_ERROR(st->Run());
      const auto n = static_cast<uint64_t>(writer_->Changes());
      if (t.spans) {
        result.spans_deleted += n;
        stats_.spans -= std::min(stats_.spans, n);
      } else {
        result.rows_deleted += n;
      }
      if (n < 20000) break;
    }
  }
  return result;
}

StorageStats SqliteStorage::Stats() {
  std::lock_guard lock(write_mu_);
  return stats_;
}

}  // namespace sonde::server
