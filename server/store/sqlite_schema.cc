// SqliteStorage: the tables, the schema version check and the upgrade from
// schema version 1.
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "server/store/sqlite_storage_internal.h"

namespace sonde::server {
namespace {

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

// Schema version 2: spans as one row per (trace id, batch), in the format of
// span_chunk.h. The small columns describe the row's spans as a whole
// (supersets used to skip rows in searches) plus the row's best root
// candidate; `data` is last, so scans that do not need it never read its
// overflow pages.
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

}  // namespace

absl::Status SqliteStorage::PrepareSchemaLocked() {
  RETURN_IF_ERROR(
      writer_->Exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"));
  {
    auto q = writer_->Prepare("SELECT value FROM meta WHERE key = 'schema_version'");
    if (!q.ok()) return q.status();
    auto row = q->Step();
    if (!row.ok()) return row.status();
    schema_version_ = *row ? std::atoi(q->Text(0).c_str()) : 0;
  }
  if (schema_version_ > kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "database ", options_.path, " has schema version ", schema_version_,
        ", newer than this server (", kSchemaVersion, "): run a newer sonde-server"));
  }
  RETURN_IF_ERROR(writer_->Exec(kCommonSchema));
  RETURN_IF_ERROR(writer_->Exec(kSpanSchemaV2));
  // The migration writes through these statements too.
  RETURN_IF_ERROR(PrepareWriteStatementsLocked());

  if (schema_version_ == 1) {
    // Version 1 stored one row per span: rewrite them as (trace, batch) rows.
    RETURN_IF_ERROR(MigrateV1Locked());
  }
  if (schema_version_ != kSchemaVersion) {
    auto ins = writer_->Prepare(
        "INSERT INTO meta(key, value) VALUES ('schema_version', ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    if (!ins.ok()) return ins.status();
    ins->Bind(1, std::to_string(kSchemaVersion));
    RETURN_IF_ERROR(ins->Run());
    schema_version_ = kSchemaVersion;
  }
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
    RETURN_IF_ERROR(ForEachRow(*read, [&](const sqlite::Statement& r) {
      last = r.Int(0);
      v1::Span s;
      if (!ParseColumn(r, 1, &s)) return true;
      spans.push_back(std::move(s));
      hosts.push_back(r.Text(2));
      return true;
    }));
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

}  // namespace sonde::server
