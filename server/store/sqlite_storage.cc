#include "server/store/sqlite_storage.h"

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <numeric>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <variant>

#include <zstd.h>

#include "absl/strings/str_cat.h"

namespace sonde::server {
namespace {

#define RETURN_IF_ERROR(expr)            \
  do {                                   \
    absl::Status _st = (expr);           \
    if (!_st.ok()) return _st;           \
  } while (0)

// Tables other than spans: identical in schema versions 1 and 2.
constexpr const char* kCommonSchema = R"sql(
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

// Schema version 2: spans as one row per (trace id, batch). The small
// columns describe the row's spans as a whole (supersets used to skip rows in
// searches: services/endpoints/attrs are "\n"-separated distinct values,
// sources/kinds/status_classes bit masks) plus the row's best root candidate;
// `data` (last, so scans that do not need it never read its overflow pages)
// is the encoded spans: 'R' + a serialized v1::Batch holding only spans, or
// 'S' + a zstd frame of the same.
// span_rollup: per second, service, endpoint, source, kind: counts and
// durations (services/endpoints lists without decoding spans).
constexpr const char* kSpanSchemaV2 = R"sql(
CREATE TABLE IF NOT EXISTS span_chunks (
  trace_id BLOB NOT NULL, start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL,
  host TEXT NOT NULL, n INTEGER NOT NULL, errors INTEGER NOT NULL,
  sources INTEGER NOT NULL, kinds INTEGER NOT NULL, status_classes INTEGER NOT NULL,
  max_dur INTEGER NOT NULL, root_parented INTEGER NOT NULL, root_start INTEGER NOT NULL,
  root_dur INTEGER NOT NULL, root_service TEXT NOT NULL, root_endpoint TEXT NOT NULL,
  services TEXT NOT NULL, endpoints TEXT NOT NULL, attrs TEXT NOT NULL, data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS span_chunks_trace ON span_chunks(trace_id);
CREATE INDEX IF NOT EXISTS span_chunks_time ON span_chunks(start_ns);
CREATE TABLE IF NOT EXISTS span_rollup (
  second INTEGER NOT NULL, service TEXT NOT NULL, endpoint TEXT NOT NULL,
  source INTEGER NOT NULL, kind INTEGER NOT NULL, count INTEGER NOT NULL,
  errors INTEGER NOT NULL, dur_sum INTEGER NOT NULL, dur_max INTEGER NOT NULL,
  PRIMARY KEY (second, service, endpoint, source, kind)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters(key, value) VALUES ('spans', 0);
)sql";

int64_t I64(uint64_t v) { return v > INT64_MAX ? INT64_MAX : static_cast<int64_t>(v); }

bool SpanIsError(const v1::Span& s) {
  return s.status() == v1::STATUS_CODE_ERROR || s.http_status() >= 500 || s.grpc_status() > 0;
}

std::string_view ServiceOf(const v1::Span& s) {
  if (!s.service_name().empty()) return s.service_name();
  if (!s.comm().empty()) return s.comm();
  return "unknown";
}

std::string_view EndpointOf(const v1::Span& s) {
  return s.endpoint().empty() ? std::string_view(s.name()) : std::string_view(s.endpoint());
}

// One attribute as "key=value" text (the form attr= filters match exactly).
void AppendAttribute(const v1::Attribute& a, std::string* out) {
  *out += a.key();
  *out += '=';
  switch (a.value_case()) {
    case v1::Attribute::kStringValue: *out += a.string_value(); break;
    case v1::Attribute::kIntValue: *out += std::to_string(a.int_value()); break;
    case v1::Attribute::kDoubleValue: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%g", a.double_value());
      *out += buf;
      break;
    }
    case v1::Attribute::kBoolValue: *out += a.bool_value() ? "true" : "false"; break;
    default: break;
  }
}

// "\nkey=value\n..." so that find("\nkey=value\n") finds one attribute.
std::string AttributeText(const v1::Span& s) {
  std::string out = "\n";
  for (const auto& a : s.attributes()) {
    AppendAttribute(a, &out);
    out += '\n';
  }
  return out;
}

// Appends `value` to a "\n"-separated list of distinct values ("\n" first).
void AddDistinct(std::string* list, std::string_view value) {
  if (list->empty()) *list = "\n";
  if (list->size() > 4096) {  // too many distinct values: mark "matches anything"
    if (list->size() < 3 || list->compare(list->size() - 3, 3, "\n*\n") != 0) *list += "*\n";
    return;
  }
  const std::string_view l(*list);
  for (size_t pos = l.find(value, 1); pos != std::string_view::npos; pos = l.find(value, pos + 1)) {
    if (l[pos - 1] == '\n' && pos + value.size() < l.size() && l[pos + value.size()] == '\n')
      return;  // already listed
  }
  list->append(value.data(), value.size());
  *list += '\n';
}

// A list that grew past 4 KiB is marked "full": it then matches any filter
// (rows are prefiltered in SQL, every span is checked exactly after decoding).
constexpr std::string_view kListFull = "\n*\n";

uint64_t DurationOf(const v1::Span& s) {
  return s.end_unix_ns() > s.start_unix_ns() ? s.end_unix_ns() - s.start_unix_ns() : 0;
}

int StatusClassBit(int http_status) {
  int c = http_status / 100;
  return (c >= 0 && c <= 9) ? 1 << c : 1 << 10;
}

bool HasParent(const v1::Span& s) {
  if (s.parent_span_id().empty()) return false;
  for (char c : s.parent_span_id())
    if (c != 0) return true;
  return false;
}

void PutVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// Decodes a span_chunks.data blob into `out` (a Batch holding only spans).
bool DecodeSpans(const void* p, int n, v1::Batch* out, std::string* scratch) {
  out->Clear();
  if (n < 1) return false;
  const auto* b = static_cast<const unsigned char*>(p);
  if (b[0] == 'R') return out->ParseFromArray(b + 1, n - 1);
  if (b[0] != 'S') return false;
  const unsigned long long raw = ZSTD_getFrameContentSize(b + 1, static_cast<size_t>(n - 1));
  if (raw == ZSTD_CONTENTSIZE_ERROR || raw == ZSTD_CONTENTSIZE_UNKNOWN || raw > (1u << 30))
    return false;
  scratch->resize(static_cast<size_t>(raw));
  const size_t got = ZSTD_decompress(scratch->data(), scratch->size(), b + 1, static_cast<size_t>(n - 1));
  if (ZSTD_isError(got) || got != raw) return false;
  return out->ParseFromArray(scratch->data(), static_cast<int>(raw));
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
  sqlite::Statement chunk, rollup, count_spans;
  sqlite::Statement request, red, tcp, stack, otlp, process, host;
  // Reused per batch so ingest does not allocate per span.
  std::string data, packed, services, endpoints, attrs, attr_line;
  std::vector<uint32_t> order;
  // One zstd context for all rows (its state is reused, not reallocated).
  std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx*)> zstd{ZSTD_createCCtx(), ZSTD_freeCCtx};
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
  // Everything below runs in this transaction: a failed upgrade leaves the
  // database as it was.
  auto fail = [&](absl::Status st) {
    (void)writer_->Exec("ROLLBACK");
    return st;
  };
  if (auto st = writer_->Exec(
          "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
      !st.ok())
    return fail(st);
  {
    auto q = writer_->Prepare("SELECT value FROM meta WHERE key = 'schema_version'");
    if (!q.ok()) return fail(q.status());
    auto row = q->Step();
    if (!row.ok()) return fail(row.status());
    schema_version_ = *row ? std::atoi(q->Text(0).c_str()) : 0;
  }
  if (schema_version_ > kSchemaVersion) {
    return fail(absl::FailedPreconditionError(absl::StrCat(
        "database ", options_.path, " has schema version ", schema_version_,
        ", newer than this server (", kSchemaVersion, "): run a newer sonde-server")));
  }
  if (auto st = writer_->Exec(kCommonSchema); !st.ok()) return fail(st);
  if (auto st = writer_->Exec(kSpanSchemaV2); !st.ok()) return fail(st);

  stmts_ = std::make_unique<WriteStatements>();
  auto prep = [&](sqlite::Statement* out, const char* sql) -> absl::Status {
    auto p = writer_->Prepare(sql, true);
    if (!p.ok()) return p.status();
    *out = std::move(*p);
    return absl::OkStatus();
  };
  absl::Status ps = [&]() -> absl::Status {
    RETURN_IF_ERROR(prep(&stmts_->begin, "BEGIN IMMEDIATE"));
    RETURN_IF_ERROR(prep(&stmts_->commit, "COMMIT"));
    RETURN_IF_ERROR(prep(&stmts_->rollback, "ROLLBACK"));
    RETURN_IF_ERROR(prep(&stmts_->get_progress,
                         "SELECT last_sequence FROM ingest_progress WHERE instance_id = ?"));
    RETURN_IF_ERROR(prep(&stmts_->put_progress,
                         "INSERT INTO ingest_progress(instance_id, node_id, host, last_sequence, "
                         "last_seen_ns) VALUES (?,?,?,?,?) ON CONFLICT(instance_id) DO UPDATE SET "
                         "last_sequence = excluded.last_sequence, last_seen_ns = excluded.last_seen_ns"));
    RETURN_IF_ERROR(prep(&stmts_->chunk,
                         "INSERT INTO span_chunks(trace_id, start_ns, end_ns, host, n, errors, "
                         "sources, kinds, status_classes, max_dur, root_parented, root_start, "
                         "root_dur, root_service, root_endpoint, services, endpoints, attrs, data) "
                         "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
    RETURN_IF_ERROR(prep(&stmts_->rollup,
                         "INSERT INTO span_rollup(second, service, endpoint, source, kind, count, "
                         "errors, dur_sum, dur_max) VALUES (?,?,?,?,?,?,?,?,?) "
                         "ON CONFLICT(second, service, endpoint, source, kind) DO UPDATE SET "
                         "count = count + excluded.count, errors = errors + excluded.errors, "
                         "dur_sum = dur_sum + excluded.dur_sum, "
                         "dur_max = max(dur_max, excluded.dur_max)"));
    RETURN_IF_ERROR(prep(&stmts_->count_spans,
                         "UPDATE counters SET value = value + ? WHERE key = 'spans'"));
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
    return absl::OkStatus();
  }();
  if (!ps.ok()) return fail(ps);

  if (schema_version_ == 1) {
    // Version 1 stored one row per span: rewrite them as (trace, batch) rows.
    if (auto st = MigrateV1Locked(); !st.ok()) return fail(st);
  }
  if (schema_version_ != kSchemaVersion) {
    auto ins = writer_->Prepare(
        "INSERT INTO meta(key, value) VALUES ('schema_version', ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    if (!ins.ok()) return fail(ins.status());
    ins->Bind(1, std::to_string(kSchemaVersion));
    if (auto st = ins->Run(); !st.ok()) return fail(st);
    schema_version_ = kSchemaVersion;
  }
  RETURN_IF_ERROR(writer_->Exec("COMMIT"));

  for (int i = 0; i < options_.read_connections; ++i) {
    auto r = sqlite::Database::Open(options_.path, true);
    if (!r.ok()) return r.status();
    readers_.push_back(std::move(*r));
  }
  auto count = writer_->Prepare("SELECT value FROM counters WHERE key = 'spans'");
  if (count.ok() && count->Step().value_or(false)) stats_.spans = static_cast<uint64_t>(count->Int(0));
  return absl::OkStatus();
}

absl::Status SqliteStorage::MigrateV1Locked() {
  auto exists = writer_->Prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'spans'");
  if (!exists.ok()) return exists.status();
  auto row = exists->Step();
  if (!row.ok()) return row.status();
  if (!*row) return absl::OkStatus();
  *exists = sqlite::Statement();  // DROP TABLE below needs no pending statement
  auto read = writer_->Prepare(
      "SELECT rowid, detail, host FROM spans WHERE rowid > ? ORDER BY rowid LIMIT 5000");
  if (!read.ok()) return read.status();
  int64_t last = 0;
  uint64_t total = 0;
  for (;;) {
    read->Bind(1, last);
    std::vector<v1::Span> spans;
    std::vector<std::string> hosts;
    for (;;) {
      auto r = read->Step();
      if (!r.ok()) return r.status();
      if (!*r) break;
      last = read->Int(0);
      v1::Span s;
      const void* p = sqlite3_column_blob(read->get(), 1);
      if (!s.ParseFromArray(p, sqlite3_column_bytes(read->get(), 1))) continue;
      spans.push_back(std::move(s));
      hosts.push_back(read->Text(2));
    }
    read->Reset();
    if (spans.empty()) break;
    // Runs of one host become one "batch".
    std::vector<const v1::Span*> ptrs;
    for (size_t i = 0; i < spans.size();) {
      size_t j = i;
      ptrs.clear();
      while (j < spans.size() && hosts[j] == hosts[i]) ptrs.push_back(&spans[j++]);
      RETURN_IF_ERROR(InsertSpansLocked(hosts[i], ptrs.data(), ptrs.size()));
      i = j;
    }
    total += spans.size();
  }
  *read = sqlite::Statement();
  stmts_->count_spans.Bind(1, I64(total));
  RETURN_IF_ERROR(stmts_->count_spans.Run());
  return writer_->Exec("DROP TABLE spans");
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
  if (batch.spans_size() > 0) {
    RETURN_IF_ERROR(InsertSpansLocked(ctx.host, batch.spans().data(),
                                      static_cast<size_t>(batch.spans_size())));
    s.count_spans.Bind(1, int64_t{batch.spans_size()});
    RETURN_IF_ERROR(s.count_spans.Run());
  }
  std::string detail;
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

// One row per trace id of the batch (spans of one trace keep the agent's
// order), and the per-second rollup aggregated in memory first.
absl::Status SqliteStorage::InsertSpansLocked(const std::string& host, const v1::Span* const* spans,
                                              size_t n) {
  auto& s = *stmts_;
  auto& order = s.order;
  order.resize(n);
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return spans[a]->trace_id() < spans[b]->trace_id();
  });

  struct RollupValue {
    int64_t second;
    std::string_view service, endpoint;
    int source, kind;
    uint64_t count = 0, errors = 0, dur_sum = 0, dur_max = 0;
  };
  std::unordered_map<std::string, RollupValue> rollup;
  std::string key;

  for (size_t i = 0; i < n;) {
    const std::string& trace_id = spans[order[i]]->trace_id();
    size_t j = i;
    while (j < n && spans[order[j]]->trace_id() == trace_id) ++j;

    s.data.clear();
    s.data.push_back('R');
    s.services.clear();
    s.endpoints.clear();
    s.attrs.clear();
    uint64_t start = UINT64_MAX, end = 0, max_dur = 0, errors = 0;
    int sources = 0, kinds = 0, status_classes = 0;
    const v1::Span* root = nullptr;
    for (size_t k = i; k < j; ++k) {
      const v1::Span& sp = *spans[order[k]];
      // Field 2 (spans) of v1::Batch, length-delimited.
      const size_t size = sp.ByteSizeLong();
      s.data.push_back(static_cast<char>((v1::Batch::kSpansFieldNumber << 3) | 2));
      PutVarint(size, &s.data);
      const size_t at = s.data.size();
      s.data.resize(at + size);
      sp.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(s.data.data() + at));

      const uint64_t dur = DurationOf(sp);
      const bool err = SpanIsError(sp);
      start = std::min(start, sp.start_unix_ns());
      end = std::max(end, sp.start_unix_ns() + dur);
      max_dur = std::max(max_dur, dur);
      errors += err ? 1 : 0;
      sources |= 1 << (static_cast<int>(sp.source()) & 15);
      kinds |= 1 << (static_cast<int>(sp.kind()) & 15);
      status_classes |= StatusClassBit(static_cast<int>(sp.http_status()));
      const std::string_view service = ServiceOf(sp), endpoint = EndpointOf(sp);
      AddDistinct(&s.services, service);
      AddDistinct(&s.endpoints, endpoint);
      for (const auto& a : sp.attributes()) {
        s.attr_line.clear();
        AppendAttribute(a, &s.attr_line);
        AddDistinct(&s.attrs, s.attr_line);
      }
      // Root candidate: no parent first, then earliest, then longest.
      if (!root) {
        root = &sp;
      } else {
        const bool rp = HasParent(*root), sp_p = HasParent(sp);
        if (rp != sp_p ? !sp_p
                       : (sp.start_unix_ns() != root->start_unix_ns()
                              ? sp.start_unix_ns() < root->start_unix_ns()
                              : dur > DurationOf(*root)))
          root = &sp;
      }

      const int64_t second = I64(sp.start_unix_ns() / 1'000'000'000);
      key.assign(reinterpret_cast<const char*>(&second), sizeof second);
      key.push_back(static_cast<char>(sp.source()));
      key.push_back(static_cast<char>(sp.kind()));
      key.append(service.data(), service.size());
      key.push_back('\0');
      key.append(endpoint.data(), endpoint.size());
      auto [it, fresh] = rollup.try_emplace(key);
      auto& r = it->second;
      if (fresh) {
        r.second = second;
        r.service = service;
        r.endpoint = endpoint;
        r.source = static_cast<int>(sp.source());
        r.kind = static_cast<int>(sp.kind());
      }
      ++r.count;
      r.errors += err ? 1 : 0;
      r.dur_sum += dur;
      r.dur_max = std::max(r.dur_max, dur);
    }
    if (s.attrs.empty()) s.attrs = "\n";

    std::string_view blob = s.data;
    if (options_.compress_spans && s.data.size() > 64 && s.zstd) {
      const std::string_view raw = std::string_view(s.data).substr(1);
      s.packed.resize(1 + ZSTD_compressBound(raw.size()));
      const size_t got = ZSTD_compressCCtx(s.zstd.get(), s.packed.data() + 1, s.packed.size() - 1,
                                           raw.data(), raw.size(), options_.zstd_level);
      if (!ZSTD_isError(got) && got + 1 < s.data.size()) {
        s.packed[0] = 'S';
        s.packed.resize(1 + got);
        blob = s.packed;
      }
    }

    auto& st = s.chunk;
    st.BindBlobNoCopy(1, trace_id);
    st.Bind(2, I64(start));
    st.Bind(3, I64(end));
    st.BindTextNoCopy(4, host);
    st.Bind(5, static_cast<int64_t>(j - i));
    st.Bind(6, I64(errors));
    st.Bind(7, sources);
    st.Bind(8, kinds);
    st.Bind(9, status_classes);
    st.Bind(10, I64(max_dur));
    st.Bind(11, HasParent(*root) ? 1 : 0);
    st.Bind(12, I64(root->start_unix_ns()));
    st.Bind(13, I64(DurationOf(*root)));
    st.BindTextNoCopy(14, ServiceOf(*root));
    st.BindTextNoCopy(15, EndpointOf(*root));
    st.BindTextNoCopy(16, s.services);
    st.BindTextNoCopy(17, s.endpoints);
    st.BindTextNoCopy(18, s.attrs);
    st.BindBlobNoCopy(19, blob);
    RETURN_IF_ERROR(st.Run());
    i = j;
  }

  for (const auto& [k, r] : rollup) {
    auto& st = s.rollup;
    st.Bind(1, r.second);
    st.BindTextNoCopy(2, r.service);
    st.BindTextNoCopy(3, r.endpoint);
    st.Bind(4, r.source);
    st.Bind(5, r.kind);
    st.Bind(6, I64(r.count));
    st.Bind(7, I64(r.errors));
    st.Bind(8, I64(r.dur_sum));
    st.Bind(9, I64(r.dur_max));
    RETURN_IF_ERROR(st.Run());
  }
  return absl::OkStatus();
}

// ----- reads -------------------------------------------------------------

namespace {

std::string Line(std::string_view v) {
  std::string out = "\n";
  out.append(v.data(), v.size());
  out += '\n';
  return out;
}

// Row prefilter: `column` lists `needle` (or is marked full).
void AddListed(Where& w, const char* column, std::string needle) {
  w.Add(absl::StrCat("(instr(", column, ", ?) > 0 OR instr(", column, ", '\n*\n') > 0)"),
        {std::move(needle)});
}

bool InRange(const v1::Span& s, const TimeRange& r) {
  return s.start_unix_ns() >= r.from_ns && s.start_unix_ns() <= r.to_ns;
}

bool StatusInClass(int status, int cls) { return status >= cls * 100 && status < cls * 100 + 100; }

// Exactly the span-level filters of a trace search.
bool MatchesTraceQuery(const v1::Span& s, const TraceQuery& q) {
  if (!InRange(s, q.range)) return false;
  if (q.service && ServiceOf(s) != *q.service) return false;
  if (q.endpoint && EndpointOf(s).find(*q.endpoint) == std::string_view::npos) return false;
  if (q.http_status && static_cast<int>(s.http_status()) != *q.http_status) return false;
  if (q.status_class && !StatusInClass(static_cast<int>(s.http_status()), *q.status_class)) return false;
  if (q.error && SpanIsError(s) != *q.error) return false;
  if (q.min_duration_ns && DurationOf(s) < *q.min_duration_ns) return false;
  if (!q.attributes.empty()) {
    const std::string text = AttributeText(s);
    for (const auto& a : q.attributes)
      if (text.find(Line(absl::StrCat(a.key, "=", a.value))) == std::string::npos) return false;
  }
  return true;
}

// Runs a chunk query whose first columns are (data, host) and hands every
// decoded span to `fn(span, host)`; fn returns false to stop.
template <typename Fn>
absl::Status ForEachChunkSpan(sqlite::Statement& st, Fn&& fn) {
  v1::Batch batch;
  std::string scratch;
  for (;;) {
    auto row = st.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    if (!DecodeSpans(sqlite3_column_blob(st.get(), 0), sqlite3_column_bytes(st.get(), 0), &batch,
                     &scratch))
      continue;
    const std::string host = st.Text(1);
    for (auto& sp : *batch.mutable_spans())
      if (!fn(sp, host)) return absl::OkStatus();
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<EndpointSummary>> SqliteStorage::Endpoints(const EndpointQuery& q) {
  // From the per-second rollup: the range is widened to whole seconds.
  Where w;
  w.Add("second >= ?", {I64(q.range.from_ns / 1'000'000'000)});
  w.Add("second <= ?", {I64(q.range.to_ns / 1'000'000'000)});
  if (q.service) w.Add("service = ?", {*q.service});
  if (q.source) w.Add("source = ?", {int64_t{*q.source}});
  if (q.kind) w.Add("kind = ?", {int64_t{*q.kind}});
  auto db = AcquireReader();
  if (!db.ok()) return db.status();
  auto st = (*db)->Prepare(absl::StrCat(
      "SELECT service, endpoint, source, kind, SUM(count) AS c, SUM(errors), SUM(dur_sum), "
      "MAX(dur_max) FROM span_rollup", w.sql(),
      " GROUP BY service, endpoint, source, kind ORDER BY c DESC LIMIT 2000"));
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
  // Rows whose first span starts in the range, newest first; rows that cannot
  // hold a matching span are skipped in SQL, the others decoded and checked
  // span by span (all filters must match one span).
  Where w;
  AddRange(w, "start_ns", q.range);
  const bool span_filters = q.service || q.endpoint || q.http_status || q.status_class ||
                            q.error || q.min_duration_ns || !q.attributes.empty();
  if (q.service) AddListed(w, "services", Line(*q.service));
  if (q.endpoint) AddListed(w, "endpoints", *q.endpoint);
  if (q.http_status)
    w.Add("(status_classes & ?) != 0", {int64_t{StatusClassBit(*q.http_status)}});
  if (q.status_class)
    w.Add("(status_classes & ?) != 0", {int64_t{StatusClassBit(*q.status_class * 100)}});
  if (q.error) w.Add(*q.error ? "errors > 0" : "errors < n");
  if (q.min_duration_ns) w.Add("max_dur >= ?", {I64(*q.min_duration_ns)});
  for (const auto& a : q.attributes) AddListed(w, "attrs", Line(absl::StrCat(a.key, "=", a.value)));
  auto db = AcquireReader();
  if (!db.ok()) return db.status();
  auto st = (*db)->Prepare(absl::StrCat("SELECT trace_id", span_filters ? ", data" : "",
                                        " FROM span_chunks", w.sql(), " ORDER BY start_ns DESC"));
  if (!st.ok()) return st.status();
  w.Bind(*st);
  std::vector<std::string> ids;
  std::unordered_set<std::string> seen;
  v1::Batch batch;
  std::string scratch;
  while (ids.size() < static_cast<size_t>(std::max(q.limit, 0))) {
    auto row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    std::string id = st->Blob(0);
    if (seen.count(id)) continue;
    if (span_filters) {
      if (!DecodeSpans(sqlite3_column_blob(st->get(), 1), sqlite3_column_bytes(st->get(), 1),
                       &batch, &scratch))
        continue;
      bool any = false;
      for (const auto& sp : batch.spans()) {
        if (MatchesTraceQuery(sp, q)) {
          any = true;
          break;
        }
      }
      if (!any) continue;
    }
    seen.insert(id);
    ids.push_back(std::move(id));
  }
  *st = sqlite::Statement();  // finalize before the next statement
  // Summaries from the rows' columns (no decoding).
  auto agg = (*db)->Prepare(
      "SELECT start_ns, end_ns, n, errors, sources, root_parented, root_start, root_dur, "
      "root_service, root_endpoint FROM span_chunks WHERE trace_id = ?");
  if (!agg.ok()) return agg.status();
  std::vector<TraceSummary> out;
  for (const auto& id : ids) {
    TraceSummary t;
    t.trace_id = HexEncode(id);
    t.start_ns = UINT64_MAX;
    int sources = 0;
    bool have_root = false;
    int64_t root_parented = 0, root_start = 0, root_dur = 0;
    agg->BindBlob(1, id);
    for (;;) {
      auto r = agg->Step();
      if (!r.ok()) return r.status();
      if (!*r) break;
      t.start_ns = std::min(t.start_ns, static_cast<uint64_t>(agg->Int(0)));
      t.end_ns = std::max(t.end_ns, static_cast<uint64_t>(agg->Int(1)));
      t.span_count += static_cast<uint64_t>(agg->Int(2));
      t.error_count += static_cast<uint64_t>(agg->Int(3));
      sources |= static_cast<int>(agg->Int(4));
      const int64_t p = agg->Int(5), s0 = agg->Int(6), d = agg->Int(7);
      if (!have_root || (p != root_parented ? p < root_parented
                                            : (s0 != root_start ? s0 < root_start : d > root_dur))) {
        have_root = true;
        root_parented = p, root_start = s0, root_dur = d;
        t.root_service = agg->Text(8);
        t.root_endpoint = agg->Text(9);
      }
    }
    agg->Reset();
    if (t.start_ns == UINT64_MAX) t.start_ns = 0;
    for (int src = 1; src <= 3; ++src)
      if (sources & (1 << src)) t.sources += "?ASN"[src];
    out.push_back(std::move(t));
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const TraceSummary& a, const TraceSummary& b) { return a.start_ns > b.start_ns; });
  return out;
}

absl::StatusOr<std::vector<StoredSpan>> SqliteStorage::Trace(const std::string& trace_id) {
  auto db = AcquireReader();
  if (!db.ok()) return db.status();
  auto st = (*db)->Prepare("SELECT data, host FROM span_chunks WHERE trace_id = ?");
  if (!st.ok()) return st.status();
  st->BindBlob(1, trace_id);
  std::vector<StoredSpan> out;
  RETURN_IF_ERROR(ForEachChunkSpan(*st, [&](v1::Span& sp, const std::string& host) {
    StoredSpan s;
    s.span.Swap(&sp);
    s.host = host;
    out.push_back(std::move(s));
    return true;
  }));
  std::stable_sort(out.begin(), out.end(), [](const StoredSpan& a, const StoredSpan& b) {
    return a.span.start_unix_ns() < b.span.start_unix_ns();
  });
  return out;
}

absl::StatusOr<std::vector<StoredSpan>> SqliteStorage::RequestLog(const RequestLogQuery& q) {
  // Captured exchanges (system and network spans), newest rows first.
  constexpr int kCaptured = (1 << v1::SPAN_SOURCE_SYSTEM) | (1 << v1::SPAN_SOURCE_NETWORK);
  Where w;
  AddRange(w, "start_ns", q.range);
  w.Add("(sources & ?) != 0", {int64_t{kCaptured}});
  if (q.service) AddListed(w, "services", Line(*q.service));
  if (q.endpoint) AddListed(w, "endpoints", *q.endpoint);
  if (q.status_class)
    w.Add("(status_classes & ?) != 0", {int64_t{StatusClassBit(*q.status_class * 100)}});
  if (q.kind) w.Add("(kinds & ?) != 0", {int64_t{1 << (*q.kind & 15)}});
  auto db = AcquireReader();
  if (!db.ok()) return db.status();
  auto st = (*db)->Prepare(
      absl::StrCat("SELECT data, host FROM span_chunks", w.sql(), " ORDER BY start_ns DESC"));
  if (!st.ok()) return st.status();
  w.Bind(*st);
  const size_t limit = static_cast<size_t>(std::max(q.limit, 0));
  std::vector<StoredSpan> out;
  RETURN_IF_ERROR(ForEachChunkSpan(*st, [&](v1::Span& sp, const std::string& host) {
    if (out.size() >= limit) return false;  // checked per span: the last row is completed
    const int src = static_cast<int>(sp.source());
    if (src != v1::SPAN_SOURCE_SYSTEM && src != v1::SPAN_SOURCE_NETWORK) return true;
    if (!InRange(sp, q.range)) return true;
    if (q.service && ServiceOf(sp) != *q.service) return true;
    if (q.endpoint && EndpointOf(sp).find(*q.endpoint) == std::string_view::npos) return true;
    if (q.status_class && !StatusInClass(static_cast<int>(sp.http_status()), *q.status_class)) return true;
    if (q.kind && static_cast<int>(sp.kind()) != *q.kind) return true;
    StoredSpan s;
    s.span.Swap(&sp);
    s.host = host;
    out.push_back(std::move(s));
    return true;
  }));
  std::stable_sort(out.begin(), out.end(), [](const StoredSpan& a, const StoredSpan& b) {
    return a.span.start_unix_ns() > b.span.start_unix_ns();
  });
  if (out.size() > limit) out.resize(limit);
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
  if (q.service) AddListed(w, "services", Line(*q.service));
  if (q.endpoint) AddListed(w, "endpoints", Line(*q.endpoint));
  if (q.kind) w.Add("(kinds & ?) != 0", {int64_t{1 << (*q.kind & 15)}});
  auto db = AcquireReader();
  if (!db.ok()) return db.status();
  auto st = (*db)->Prepare(absl::StrCat("SELECT data, host FROM span_chunks", w.sql()));
  if (!st.ok()) return st.status();
  w.Bind(*st);
  std::vector<SpanSample> out;
  RETURN_IF_ERROR(ForEachChunkSpan(*st, [&](v1::Span& sp, const std::string&) {
    if (!InRange(sp, q.range)) return true;
    if (q.service && ServiceOf(sp) != *q.service) return true;
    if (q.endpoint && EndpointOf(sp) != *q.endpoint) return true;
    if (q.kind && static_cast<int>(sp.kind()) != *q.kind) return true;
    out.push_back({sp.start_unix_ns(), DurationOf(sp), SpanIsError(sp)});
    return out.size() < 2'000'000;
  }));
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
  // Span rows (each holds one trace's spans of one batch; a row goes when its
  // first span is older than the cut), in chunks so ingest never waits long.
  for (;;) {
    std::lock_guard lock(write_mu_);
    RETURN_IF_ERROR(writer_->Exec("BEGIN IMMEDIATE"));
    auto del = writer_->Prepare(
        "DELETE FROM span_chunks WHERE rowid IN (SELECT rowid FROM span_chunks WHERE start_ns < ? "
        "LIMIT 2000) RETURNING n");
    if (!del.ok()) {
      (void)writer_->Exec("ROLLBACK");
      return del.status();
    }
    del->Bind(1, span_cut);
    uint64_t rows = 0, spans = 0;
    absl::Status st;
    for (;;) {
      auto r = del->Step();
      if (!r.ok()) {
        st = r.status();
        break;
      }
      if (!*r) break;
      ++rows;
      spans += static_cast<uint64_t>(del->Int(0));
    }
    del = sqlite::Statement();
    if (st.ok() && spans > 0) {
      stmts_->count_spans.Bind(1, -static_cast<int64_t>(spans));
      st = stmts_->count_spans.Run();
    }
    if (st.ok()) st = writer_->Exec("COMMIT");
    if (!st.ok()) {
      (void)writer_->Exec("ROLLBACK");
      return st;
    }
    result.spans_deleted += spans;
    stats_.spans -= std::min(stats_.spans, spans);
    if (rows < 2000) break;
  }
  {
    // The rollup behind /api/services and /api/endpoints: a few rows per second.
    for (;;) {
      std::lock_guard lock(write_mu_);
      auto st = writer_->Prepare(
          "DELETE FROM span_rollup WHERE second < ? AND second < "
          "(SELECT second FROM span_rollup ORDER BY second LIMIT 1) + 300");
      if (!st.ok()) return st.status();
      st->Bind(1, span_cut / 1'000'000'000);
      RETURN_IF_ERROR(st->Run());
      if (writer_->Changes() == 0) break;
    }
  }
  struct Target {
    const char* table;
    const char* column;
    int64_t cut;
  };
  const Target targets[] = {
      {"requests", "start_ns", span_cut},   {"stacks", "start_ns", span_cut},
      {"red", "start_ns", metric_cut},      {"tcp", "start_ns", metric_cut},
      {"otlp", "received_ns", metric_cut},  {"processes", "last_seen_ns", metric_cut},
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
      result.rows_deleted += n;
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
