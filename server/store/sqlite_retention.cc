// SqliteStorage: retention. Expired rows are deleted in chunks, each under
// the write lock on its own, so ingest never waits long.
#include <algorithm>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "server/store/sqlite_storage_internal.h"

namespace sonde::server {

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
    absl::Status st = ForEachRow(*del, [&](const sqlite::Statement& row) {
      ++rows;
      spans += static_cast<uint64_t>(row.Int(0));
      return true;
    });
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

}  // namespace sonde::server
