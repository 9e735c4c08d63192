#include "server/store/sqlite_db.h"

#include "absl/strings/str_cat.h"

namespace sonde::server::sqlite {

namespace {
// Set by the progress handler on the thread running the statement it stops,
// so Step can tell a deadline from any other interrupt.
struct DeadlineFired {
  bool fired = false;
  int64_t timeout_ms = 0;
};
thread_local DeadlineFired t_deadline_fired;
}  // namespace

int Database::OnProgress(void* self) {
  auto* db = static_cast<Database*>(self);
  if (Clock::now() < db->deadline_) return 0;
  t_deadline_fired = {true, static_cast<int64_t>(db->timeout_.count())};
  return 1;  // SQLITE_INTERRUPT
}

void Database::SetDeadline(Clock::time_point deadline, std::chrono::milliseconds timeout) {
  deadline_ = deadline;
  timeout_ = timeout;
  sqlite3_progress_handler(db_.get(), 4000, &Database::OnProgress, this);
}

void Database::ClearDeadline() { sqlite3_progress_handler(db_.get(), 0, nullptr, nullptr); }

absl::StatusOr<bool> Statement::Step() {
  int rc = sqlite3_step(stmt_.get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  if (rc == SQLITE_INTERRUPT && t_deadline_fired.fired) {  // our progress handler stopped it
    t_deadline_fired.fired = false;
    sqlite3_reset(stmt_.get());
    return absl::DeadlineExceededError(absl::StrCat("query stopped after ", t_deadline_fired.timeout_ms,
                                                    " ms (the server's --query-timeout)"));
  }
  return absl::InternalError(
      absl::StrCat("sqlite step: ", sqlite3_errmsg(sqlite3_db_handle(stmt_.get()))));
}

absl::Status Statement::Run() {
  absl::StatusOr<bool> r;
  do {
    r = Step();
  } while (r.ok() && *r);
  Reset();
  return r.status();
}

std::string Statement::Text(int col) const {
  const unsigned char* p = sqlite3_column_text(stmt_.get(), col);
  int n = sqlite3_column_bytes(stmt_.get(), col);
  return p ? std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n)) : std::string();
}

std::string_view Statement::BlobView(int col) const {
  const void* p = sqlite3_column_blob(stmt_.get(), col);
  int n = sqlite3_column_bytes(stmt_.get(), col);
  return p ? std::string_view(static_cast<const char*>(p), static_cast<size_t>(n)) : std::string_view();
}

std::string Statement::Blob(int col) const { return std::string(BlobView(col)); }

absl::StatusOr<std::unique_ptr<Database>> Database::Open(const std::string& path, bool read_only) {
  sqlite3* raw = nullptr;
  int flags = (read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)) |
              SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  std::unique_ptr<Database> db(new Database(raw));  // takes ownership even on error
  if (rc != SQLITE_OK) {
    return absl::UnavailableError(
        absl::StrCat("open ", path, ": ", raw ? sqlite3_errmsg(raw) : "out of memory"));
  }
  sqlite3_busy_timeout(raw, 5000);
  return db;
}

absl::Status Database::Exec(std::string_view sql) {
  char* err = nullptr;
  std::string s(sql);
  int rc = sqlite3_exec(db_.get(), s.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db_.get());
    sqlite3_free(err);
    return absl::InternalError(absl::StrCat("sqlite exec: ", msg));
  }
  return absl::OkStatus();
}

absl::StatusOr<Statement> Database::Prepare(std::string_view sql, bool persistent) {
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()),
                              persistent ? SQLITE_PREPARE_PERSISTENT : 0, &s, nullptr);
  if (rc != SQLITE_OK) {
    return absl::InvalidArgumentError(
        std::string("sqlite prepare: ") + sqlite3_errmsg(db_.get()) + " in: " + std::string(sql));
  }
  return Statement(s);
}

}  // namespace sonde::server::sqlite
