// SqliteStorage: opening the database and the connections every other part
// uses (one writer, a pool of readers).
#include "server/store/sqlite_storage.h"

#include "server/store/sqlite_storage_internal.h"

namespace sonde::server {

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
  // Schema, statements and any upgrade in one transaction: a failed upgrade
  // leaves the database as it was.
  RETURN_IF_ERROR(writer_->Exec("BEGIN IMMEDIATE"));
  if (auto st = PrepareSchemaLocked(); !st.ok()) {
    (void)writer_->Exec("ROLLBACK");
    return st;
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

absl::StatusOr<SqliteStorage::ReadLease> SqliteStorage::AcquireReader() {
  std::unique_ptr<sqlite::Database> db;
  {
    std::lock_guard lock(read_mu_);
    if (!readers_.empty()) {
      db = std::move(readers_.back());
      readers_.pop_back();
    }
  }
  if (!db) {  // pool exhausted: open one more; it joins the pool when released
    auto opened = sqlite::Database::Open(options_.path, true);
    if (!opened.ok()) return opened.status();
    db = std::move(*opened);
  }
  // Every read query runs under the deadline (--query-timeout): a query that
  // would scan for minutes ends with kDeadlineExceeded instead.
  if (options_.query_timeout.count() > 0) {
    db->SetDeadline(sqlite::Database::Clock::now() + options_.query_timeout, options_.query_timeout);
  }
  return ReadLease(this, std::move(db));
}

void SqliteStorage::ReleaseReader(std::unique_ptr<sqlite::Database> db) {
  std::lock_guard lock(read_mu_);
  if (readers_.size() < static_cast<size_t>(options_.read_connections) * 2)
    readers_.push_back(std::move(db));
}

StorageStats SqliteStorage::Stats() {
  std::lock_guard lock(write_mu_);
  return stats_;
}

}  // namespace sonde::server
