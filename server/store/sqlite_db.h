#pragma once
// Thin RAII over the SQLite C API: one Database per connection, one Statement
// per prepared statement. Values are always bound, never spliced into SQL.
#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace sonde::server::sqlite {

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalizer {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};

class Statement {
 public:
  Statement() = default;
  explicit Statement(sqlite3_stmt* s) : stmt_(s) {}

  // Binding: 1-based index, like SQLite.
  void Bind(int i, int64_t v) { sqlite3_bind_int64(stmt_.get(), i, v); }
  void Bind(int i, uint64_t v) { sqlite3_bind_int64(stmt_.get(), i, static_cast<int64_t>(v)); }
  void Bind(int i, int v) { sqlite3_bind_int64(stmt_.get(), i, v); }
  void Bind(int i, uint32_t v) { sqlite3_bind_int64(stmt_.get(), i, v); }
  void Bind(int i, double v) { sqlite3_bind_double(stmt_.get(), i, v); }
  void Bind(int i, std::string_view v) {
    sqlite3_bind_text(stmt_.get(), i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void Bind(int i, const char* v) { Bind(i, std::string_view(v)); }
  void Bind(int i, const std::string& v) { Bind(i, std::string_view(v)); }
  void BindBlob(int i, std::string_view v) {
    sqlite3_bind_blob(stmt_.get(), i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  // The bytes must stay valid until the statement is reset (no copy).
  void BindBlobNoCopy(int i, std::string_view v) {
    sqlite3_bind_blob(stmt_.get(), i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
  }
  void BindTextNoCopy(int i, std::string_view v) {
    sqlite3_bind_text(stmt_.get(), i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
  }
  void BindNull(int i) { sqlite3_bind_null(stmt_.get(), i); }

  // Step: true when a row is available, false when done.
  absl::StatusOr<bool> Step();
  // Runs to completion, then resets for reuse.
  absl::Status Run();
  void Reset() {
    sqlite3_reset(stmt_.get());
    sqlite3_clear_bindings(stmt_.get());
  }

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_.get(), col); }
  double Double(int col) const { return sqlite3_column_double(stmt_.get(), col); }
  std::string Text(int col) const;
  std::string Blob(int col) const;
  // The column's bytes without a copy: valid until the next Step or Reset.
  std::string_view BlobView(int col) const;
  bool IsNull(int col) const { return sqlite3_column_type(stmt_.get(), col) == SQLITE_NULL; }
  sqlite3_stmt* get() const { return stmt_.get(); }

 private:
  std::unique_ptr<sqlite3_stmt, StmtFinalizer> stmt_;
};

class Database {
 public:
  using Clock = std::chrono::steady_clock;
  static absl::StatusOr<std::unique_ptr<Database>> Open(const std::string& path, bool read_only);
  // Statements stop with kDeadlineExceeded once `deadline` passes (SQLite's
  // progress handler, checked every few thousand VM steps); `timeout` names
  // the limit in the error. ClearDeadline() removes it.
  void SetDeadline(Clock::time_point deadline, std::chrono::milliseconds timeout);
  void ClearDeadline();
  absl::Status Exec(std::string_view sql);
  absl::StatusOr<Statement> Prepare(std::string_view sql, bool persistent = false);
  int64_t Changes() const { return sqlite3_changes64(db_.get()); }
  sqlite3* get() const { return db_.get(); }

 private:
  explicit Database(sqlite3* db) : db_(db) {}
  static int OnProgress(void* self);
  std::unique_ptr<sqlite3, DbCloser> db_;
  Clock::time_point deadline_{};
  std::chrono::milliseconds timeout_{0};
};

}  // namespace sonde::server::sqlite
