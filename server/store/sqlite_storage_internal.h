#pragma once
// Pieces the SqliteStorage implementation files share (see sqlite_storage.h
// for which file holds what). Not for use outside server/store.
#include <zstd.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "google/protobuf/message_lite.h"
#include "server/store/sqlite_storage.h"

namespace sonde::server {

#define RETURN_IF_ERROR(expr)  \
  do {                         \
    absl::Status _st = (expr); \
    if (!_st.ok()) return _st; \
  } while (0)

// SQLite integers are signed: clamp instead of wrapping.
inline int64_t I64(uint64_t v) { return v > INT64_MAX ? INT64_MAX : static_cast<int64_t>(v); }

// A reader connection borrowed from the pool; returned when the lease ends.
class SqliteStorage::ReadLease {
 public:
  ReadLease(SqliteStorage* owner, std::unique_ptr<sqlite::Database> db)
      : owner_(owner), db_(std::move(db)) {}
  ReadLease(ReadLease&&) = default;
  ReadLease& operator=(ReadLease&&) = default;
  ~ReadLease() {
    if (!db_) return;
    db_->ClearDeadline();
    owner_->ReleaseReader(std::move(db_));
  }
  sqlite::Database* operator->() const { return db_.get(); }

 private:
  SqliteStorage* owner_;
  std::unique_ptr<sqlite::Database> db_;
};

// The writer's persistent statements and per-batch scratch space.
struct SqliteStorage::WriteStatements {
  sqlite::Statement begin, commit, rollback;
  sqlite::Statement get_progress, put_progress;
  sqlite::Statement chunk, rollup, count_spans;
  sqlite::Statement request, red, tcp, stack, otlp, process, host;
  // Reused per batch so ingest does not allocate per span.
  std::string data, packed;
  std::vector<uint32_t> order;
  // One zstd context for all rows (its state is reused, not reallocated).
  std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx*)> zstd{ZSTD_createCCtx(), ZSTD_freeCCtx};
};

// Steps `st` through its result rows and hands each to `on_row(st)`, which
// reads the columns it needs and returns false to stop early. Every loop over
// query results goes through here.
template <typename OnRow>
absl::Status ForEachRow(sqlite::Statement& st, OnRow&& on_row) {
  for (;;) {
    auto row = st.Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
    if (!on_row(static_cast<const sqlite::Statement&>(st))) return absl::OkStatus();
  }
}

// Parses column `col` (a serialized proto) into `out`.
inline bool ParseColumn(const sqlite::Statement& st, int col, google::protobuf::MessageLite* out) {
  const std::string_view blob = st.BlobView(col);
  return out->ParseFromArray(blob.data(), static_cast<int>(blob.size()));
}

}  // namespace sonde::server
